"""Vocoder files and bad input: echostream-vocode, configs and checkpoints that do not fit, unit
sequences out of range."""

import json
import os

import pytest
import soundfile as sf
import torch
from vocoders import (
    HOP,
    micro_config,
    write_fairseq_vocoder,
)

from echostream_fairseq.cli.vocode import main as vocode_main
from echostream_fairseq.vocoder import (
    CodeHiFiGANUnitVocoder,
    GriffinLimUnitVocoder,
    IncrementalVocoder,
    VocoderError,
    load_vocoder_config,
)


def test_vocode_cli_writes_one_wav_per_line(hifigan, tmp_path, capsys):
    _, ckpt, cfg, _ = hifigan
    codes = tmp_path / "units.txt"
    codes.write_text("1 2 3 4\n5 6 7 8 9 10\n0\n")
    out = tmp_path / "wavs"
    assert (
        vocode_main(["--in-code-file", str(codes), "--vocoder", ckpt, "--vocoder-cfg", cfg, "--results-path", str(out)])
        == 0
    )
    assert sorted(os.listdir(out)) == ["0_pred.wav", "1_pred.wav", "2_pred.wav"]
    assert [sf.info(str(out / f"{i}_pred.wav")).frames for i in range(3)] == [4 * HOP, 6 * HOP, HOP]
    assert sf.info(str(out / "0_pred.wav")).samplerate == 16000


def test_vocode_cli_reads_fairseq_generate_logs_with_durations(hifigan, tmp_path):
    vocoder, ckpt, cfg, _ = hifigan
    log = tmp_path / "generate-test.txt"
    log.write_text("S-4\tx\nT-4\t1 2\nH-4\t-0.1\t1 2 3\nD-4\t-0.1\t1 2 3\nP-4\t-0.1 -0.2\nD-0\t-0.3\t7 8\n")
    out = tmp_path / "wavs"
    assert (
        vocode_main(
            [
                "--in-code-file",
                str(log),
                "--vocoder",
                ckpt,
                "--vocoder-cfg",
                cfg,
                "--results-path",
                str(out),
                "--dur-prediction",
            ]
        )
        == 0
    )
    assert sorted(os.listdir(out)) == ["0_pred.wav", "4_pred.wav"]
    expected = int(vocoder.durations(torch.tensor([1, 2, 3])).sum()) * HOP
    assert sf.info(str(out / "4_pred.wav")).frames == expected


def test_vocode_cli_griffin_lim(speech_units, tmp_path):
    model, _ = speech_units
    torch.save(model, tmp_path / "kmeans.pt")
    codes = tmp_path / "units.txt"
    codes.write_text("1 2 3\n4 4 5\n")
    out = tmp_path / "wavs"
    assert (
        vocode_main(
            [
                "--in-code-file",
                str(codes),
                "--vocoder-type",
                "griffin_lim",
                "--vocoder",
                str(tmp_path / "kmeans.pt"),
                "--results-path",
                str(out),
                "--dur-prediction",
            ]
        )
        == 0
    )
    durations = torch.round(model["mean_duration"]).long().clamp(min=1)
    assert sf.info(str(out / "0_pred.wav")).frames == int(durations[[1, 2, 3]].sum()) * HOP


def test_unit_ids_out_of_range(hifigan):
    vocoder = hifigan[0]
    with pytest.raises(VocoderError, match=r"unit id 20 at position 2 is outside the vocoder's range 0\.\.19"):
        vocoder([1, 2, 20, 3])
    with pytest.raises(VocoderError, match=r"unit id -1 at position 0"):
        vocoder([-1, 2])
    with pytest.raises(VocoderError, match="outside the vocoder's range"):
        IncrementalVocoder(vocoder, dur_prediction=False).step([99], IncrementalVocoder(vocoder).initial_state())


def test_empty_and_malformed_unit_sequences(hifigan):
    vocoder = hifigan[0]
    with pytest.raises(VocoderError, match="empty unit sequence"):
        vocoder([])
    with pytest.raises(VocoderError, match="expected integer unit ids, got dtype torch.float32"):
        vocoder(torch.tensor([1.0, 2.0]))
    with pytest.raises(VocoderError, match=r"expected a 1-D sequence of unit ids, got shape \(2, 2\)"):
        vocoder(torch.zeros(2, 2, dtype=torch.long))


def test_checkpoint_that_does_not_match_its_config(tmp_path):
    ckpt, _, _ = write_fairseq_vocoder(str(tmp_path))
    with pytest.raises(VocoderError, match="checkpoint has 20 unit embeddings, the config num_embeddings=30"):
        CodeHiFiGANUnitVocoder(ckpt, micro_config(num_embeddings=30))
    with pytest.raises(
        VocoderError,
        match=r"does not match its config: 109 difference.*"
        r"conv_pre\.weight_v: checkpoint \(32, 8, 7\), config \(64, 8, 7\)",
    ):
        CodeHiFiGANUnitVocoder(ckpt, micro_config(upsample_initial_channel=64))
    state = torch.load(ckpt, weights_only=True)
    del state["generator"]["dur_predictor.conv1.0.weight"]
    torch.save(state, ckpt)
    with pytest.raises(VocoderError, match=r"missing dur_predictor\.conv1\.0\.weight \(8, 8, 3\)"):
        CodeHiFiGANUnitVocoder(ckpt, micro_config())


def test_not_a_checkpoint(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(VocoderError, match="cannot read the vocoder checkpoint"):
        CodeHiFiGANUnitVocoder(str(bad), micro_config())
    torch.save({"model": {}}, bad)
    with pytest.raises(VocoderError, match="no 'generator' entry"):
        CodeHiFiGANUnitVocoder(str(bad), micro_config())
    with pytest.raises(VocoderError, match="vocoder checkpoint not found"):
        CodeHiFiGANUnitVocoder(str(tmp_path / "missing.pt"), micro_config())


@pytest.mark.parametrize(
    "change, message",
    [
        ({"upsample_rates": None}, "missing field"),
        ({"upsample_kernel_sizes": [11, 8]}, "must be non-empty and of equal length"),
        ({"upsample_initial_channel": 33}, "must be divisible by 2\\*\\*5"),
        ({"code_hop_size": 256}, "code_hop_size 256 but the upsample rates multiply to 320"),
        ({"f0": True}, "f0=True needs inputs EchoStream does not produce"),
        ({"model_in_dim": 80}, "model_in_dim 80 must equal embedding_dim 8"),
        ({"num_embeddings": "1000"}, "field num_embeddings must be a int"),
    ],
)
def test_config_errors_name_the_field(tmp_path, change, message):
    config = micro_config(**change)
    config = {k: v for k, v in config.items() if v is not None}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    with pytest.raises(VocoderError, match=message):
        load_vocoder_config(str(path))


def test_config_missing_field_and_bad_json(tmp_path):
    config = micro_config()
    del config["resblock_kernel_sizes"], config["embedding_dim"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    with pytest.raises(VocoderError, match=f"{path}: missing field\\(s\\) resblock_kernel_sizes, embedding_dim"):
        load_vocoder_config(str(path))
    path.write_text('{"upsample_rates": [5, 4,\n')
    with pytest.raises(VocoderError, match=f"{path}:2: not valid JSON"):
        load_vocoder_config(str(path))


def test_griffin_lim_needs_log_mel_units(speech_units):
    model, _ = speech_units
    with pytest.raises(VocoderError, match="Griffin-Lim needs log-mel k-means units"):
        GriffinLimUnitVocoder({**model, "extractor": "hubert"})


def test_vocode_cli_checks_every_line_before_writing(hifigan, tmp_path, capsys):
    _, ckpt, cfg, _ = hifigan
    codes = tmp_path / "units.txt"
    codes.write_text("1 2 3\n4 5 6\n7 25 8\n")
    out = tmp_path / "wavs"
    assert (
        vocode_main(["--in-code-file", str(codes), "--vocoder", ckpt, "--vocoder-cfg", cfg, "--results-path", str(out)])
        == 2
    )
    err = capsys.readouterr().err
    assert f"error: {codes}:3: unit id 25 at position 1 is outside the vocoder's range 0..19" in err
    assert not out.exists()
    codes.write_text("1 2 3\n\n4\n")
    assert (
        vocode_main(["--in-code-file", str(codes), "--vocoder", ckpt, "--vocoder-cfg", cfg, "--results-path", str(out)])
        == 2
    )
    assert f"error: {codes}:2: empty unit sequence" in capsys.readouterr().err
    codes.write_text("1 x 3\n")
    assert (
        vocode_main(["--in-code-file", str(codes), "--vocoder", ckpt, "--vocoder-cfg", cfg, "--results-path", str(out)])
        == 2
    )
    assert f"error: {codes}:1: 'x' is not a unit id" in capsys.readouterr().err
    assert vocode_main(["--in-code-file", str(codes), "--vocoder", ckpt, "--results-path", str(out)]) == 2
    assert "--vocoder-cfg is required" in capsys.readouterr().err


def test_incremental_step_names_a_swapped_state(hifigan):
    inc = IncrementalVocoder(hifigan[0])
    with pytest.raises(VocoderError, match=r"state must be a VocoderState \(units first, then the state\), got list"):
        inc.step(inc.initial_state(), [1, 2])
