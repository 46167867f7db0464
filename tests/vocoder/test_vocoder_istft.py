"""The iSTFT generator: its overlap-add inverts an STFT, padded rows equal each row alone, its
config is checked, and it trains, loads and streams as the HiFi-GANs do."""

import json

import pytest
import torch
from test_vocoder_padded import ragged_streams
from vocoders import step_together, stream

from echostream_fairseq.cli.train_vocoder import main as train_main
from echostream_fairseq.vocoder import CodeHiFiGANUnitVocoder, build_generator, preset_config
from echostream_fairseq.vocoder.config import VocoderError, check_vocoder_config, frame_hop
from echostream_fairseq.vocoder.incremental import IncrementalVocoder
from echostream_fairseq.vocoder.istft_generator import frame_conv


def small_config(units=16, **changes):
    config = preset_config("tiny", units, generator="istft")
    config.update(
        {
            "istft_channels": 32,
            "istft_layers": 2,
            "embedding_dim": 8,
            "model_in_dim": 8,
            "dur_predictor_params": {
                "encoder_embed_dim": 8,
                "var_pred_hidden_dim": 8,
                "var_pred_kernel_size": 3,
                "var_pred_dropout": 0.5,
            },
        }
    )
    config.update(changes)
    return config


def random_istft_vocoder(folder, **changes):
    torch.manual_seed(0)
    config = small_config(**changes)
    torch.save({"generator": build_generator(config).state_dict()}, folder / "g.pt")
    return CodeHiFiGANUnitVocoder(str(folder / "g.pt"), config).eval()


@pytest.mark.parametrize("groups", [1, 6])
def test_frame_conv_equals_the_convolution(groups):
    """The generator's convolutions on time-last frames (full and depthwise) equal ``nn.Conv1d``."""
    torch.manual_seed(2)
    conv = torch.nn.Conv1d(6 if groups > 1 else 4, 6, 7, padding=3, groups=groups)
    x = torch.randn(3, 11, conv.in_channels)
    expected = conv(x.transpose(1, 2)).transpose(1, 2)
    torch.testing.assert_close(frame_conv(x, conv), expected, atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="full or depthwise convolutions, not 2 groups"):
        frame_conv(torch.randn(1, 5, 4), torch.nn.Conv1d(4, 6, 3, padding=1, groups=2))
    with pytest.raises(
        ValueError,
        match="odd kernels at stride 1 with same-length padding, got kernel 3, stride 1, dilation 1, padding 0",
    ):
        frame_conv(torch.randn(1, 5, 4), torch.nn.Conv1d(4, 6, 3))


@pytest.mark.parametrize("n_fft", [640, 960, 1280])
def test_the_overlap_add_inverts_a_short_time_fourier_transform(n_fft):
    """Frames cut from a signal with the Hann window, each centred on its own hop, come back as the
    signal wherever every window over a sample is present."""
    generator = build_generator(small_config(istft_n_fft=n_fft))
    hop, frames = 320, 12
    torch.manual_seed(3)
    signal = torch.randn(frames * hop)
    start = (n_fft - hop) // 2
    padded = torch.nn.functional.pad(signal, (start, n_fft))
    cut = torch.stack([padded[t * hop : t * hop + n_fft] for t in range(frames)]) * generator.window
    spectra = torch.fft.rfft(cut)
    audio = generator._overlap_add(torch.fft.irfft(spectra, n=n_fft)[None] * generator.window)
    assert audio.shape == (1, frames * hop)
    inner = slice(n_fft, frames * hop - n_fft)
    assert torch.allclose(audio[0, inner], signal[inner], atol=1e-5)


def test_padded_rows_equal_each_row_alone_and_end_in_zeros(tmp_path):
    vocoder = random_istft_vocoder(tmp_path)
    assert vocoder.istft and vocoder.batches_padded and vocoder.frame_hop == 320
    torch.manual_seed(1)
    frames = torch.randint(0, 16, (4, 40))
    lengths = torch.tensor([40, 17, 5, 33])
    padded = vocoder.synthesize_frames_padded(frames, lengths)
    assert padded.shape == (4, 40 * 320)
    for row, n in enumerate(lengths.tolist()):
        alone = vocoder.synthesize_frames(frames[row, :n])
        assert alone.shape == (n * 320,) and alone.abs().max() > 1e-3
        assert torch.allclose(padded[row, : n * 320], alone, rtol=0, atol=1e-6), row
        assert not padded[row, n * 320 :].any()
    # without the masks the padding reaches into a shorter row's last samples
    plain = vocoder.synthesize_frames_batch(frames)
    assert (plain[1, : 17 * 320] - vocoder.synthesize_frames(frames[1, :17])).abs().max() > 1e-4


@pytest.mark.parametrize("n_fft", [1280, 2560])
def test_packed_rows_equal_each_row_alone(tmp_path, monkeypatch, n_fft):
    """Rows laid end to end, zeroed frames between them, give each row's samples alone: the gap is
    half a kernel (no convolution reads across it) or, with a longer window, the window's reach."""
    vocoder = random_istft_vocoder(tmp_path, istft_n_fft=n_fft)
    generator = vocoder.istft_generator
    assert vocoder.batches_packed and generator.packing_gap == {1280: 3, 2560: 4}[n_fft]
    torch.manual_seed(1)
    calls = [torch.randint(0, 16, (n,)) for n in (40, 1, 17, 5, 33)]
    packed = vocoder.synthesize_frames_packed(calls)
    for call, audio in zip(calls, packed):
        alone = vocoder.synthesize_frames(call)
        assert audio.shape == alone.shape == (call.numel() * 320,)
        assert torch.allclose(audio, alone, rtol=0, atol=1e-6)
    # a gap one frame short lets neighbouring rows reach each other
    gap = generator.packing_gap
    monkeypatch.setattr(type(generator), "packing_gap", property(lambda self: gap - 1))
    short = vocoder.synthesize_frames_packed(calls)
    assert max((a - b).abs().max() for a, b in zip(short, packed)) > 1e-4


def test_shared_calls_are_one_packed_run_per_step(tmp_path):
    vocoder = random_istft_vocoder(tmp_path)
    streams, sizes = ragged_streams()
    inc = IncrementalVocoder(vocoder, dur_prediction=False, max_batch=4, max_padding=16)
    runs, packed = [], vocoder.synthesize_frames_packed
    vocoder.synthesize_frames_packed = lambda calls: runs.append(len(calls)) or packed(calls)
    out = inc.step_batch([(s[: n[0]], inc.initial_state(), False) for s, n in zip(streams, sizes)])
    assert runs == [4, 1]  # five streams speak: runs of at most max_batch, no padding groups
    assert all(wave.numel() for wave, _ in out)


def test_streams_in_shared_calls_equal_each_stream_alone(tmp_path):
    vocoder = random_istft_vocoder(tmp_path)
    streams, sizes = ragged_streams()
    alone = [stream(vocoder, s, n, dur_prediction=False)[1] for s, n in zip(streams, sizes)]
    inc = IncrementalVocoder(vocoder, dur_prediction=False, max_batch=4, max_padding=16)
    assert inc.length_bucket == 1 and inc.warm_up() == 0  # any length: nothing to prepare
    step_together(inc, streams, sizes, alone)


def test_a_bf16_generator_stays_close_to_fp32(tmp_path):
    """--model-dtype bf16 runs the layers in bfloat16; the spectrum and overlap-add stay fp32."""
    vocoder = random_istft_vocoder(tmp_path)
    frames = torch.randint(0, 16, (2, 24))
    reference = vocoder.synthesize_frames_batch(frames)
    low = vocoder.to(torch.bfloat16)
    assert low.generator.conv_pre.weight.dtype == torch.bfloat16
    assert low.generator.window.dtype == torch.float32 and low.generator.inverse_power.dtype == torch.float32
    audio = low.synthesize_frames_batch(frames)
    assert audio.dtype == torch.float32
    assert float((audio - reference).norm() / reference.norm()) < 0.05
    padded = low.synthesize_frames_padded(frames, torch.tensor([24, 9]))
    assert padded[1, 9 * 320 :].abs().max() == 0 and torch.isfinite(padded).all()


def test_bf16_runs_the_vocoder_in_bf16_only_where_onednn_can(tmp_path):
    """Without oneDNN's bf16 convolutions the vocoder stays fp32 under --model-dtype bf16 (ATen's bf16
    convolutions are slower than fp32 there); int8 and fp32 keep it fp32 everywhere."""
    from echostream_fairseq.common.cpu import cpu_capabilities

    vocoder = random_istft_vocoder(tmp_path)
    for dtype in ("fp32", "int8"):
        assert vocoder.for_model_dtype(dtype).generator.conv_pre.weight.dtype == torch.float32
    expected = torch.bfloat16 if cpu_capabilities().onednn_bf16 else torch.float32
    assert [vocoder.dtype_for(d) for d in ("fp32", "int8", "bf16")] == [torch.float32, torch.float32, expected]
    assert vocoder.for_model_dtype("bf16").generator.conv_pre.weight.dtype == expected


def test_one_shot_synthesis_predicts_durations(tmp_path):
    vocoder = random_istft_vocoder(tmp_path)
    units = torch.tensor([3, 7, 1, 9])
    durations = vocoder.durations(units)
    audio = vocoder(units, dur_prediction=True)
    assert audio.shape == (int(durations.sum()) * 320,)
    assert torch.allclose(audio, vocoder.synthesize_frames(torch.repeat_interleave(units, durations)))


def test_config_errors_name_the_field():
    assert frame_hop(small_config()) == 320 and "upsample_rates" not in small_config()
    with pytest.raises(VocoderError, match="istft_n_fft 1000 must be an even multiple of code_hop_size 320"):
        check_vocoder_config(small_config(istft_n_fft=1000))
    with pytest.raises(
        VocoderError, match="istft_n_fft 320 must be an even multiple of code_hop_size 320, at least twice"
    ):
        check_vocoder_config(small_config(istft_n_fft=320))
    with pytest.raises(VocoderError, match="istft_n_fft 15 must be an even multiple of code_hop_size 5"):
        check_vocoder_config(small_config(istft_n_fft=15, code_hop_size=5))  # odd: n_fft + 2 numbers would not split
    with pytest.raises(VocoderError, match="istft_kernel_size 6 must be odd"):
        check_vocoder_config(small_config(istft_kernel_size=6))
    with pytest.raises(VocoderError, match="field istft_layers must be a positive integer, got 0"):
        check_vocoder_config(small_config(istft_layers=0))
    with pytest.raises(VocoderError, match="no causal form"):
        check_vocoder_config(small_config(causal=True))
    with pytest.raises(VocoderError, match="no causal form"):
        check_vocoder_config(small_config(lookahead_frames=2))
    missing = small_config()
    del missing["istft_channels"]
    with pytest.raises(VocoderError, match="missing field istft_channels"):
        check_vocoder_config(missing)
    with pytest.raises(VocoderError, match="generator 'wavenet' is not one of hifigan, istft"):
        check_vocoder_config(small_config(generator="wavenet"))


def test_a_hifigan_checkpoint_with_an_istft_config_is_refused(tmp_path):
    config = preset_config("tiny", 16)
    torch.save({"generator": build_generator(config).state_dict()}, tmp_path / "g.pt")
    with pytest.raises(VocoderError, match="checkpoint does not match its config"):
        CodeHiFiGANUnitVocoder(str(tmp_path / "g.pt"), small_config())


def test_cli_trains_an_istft_generator_that_loads(corpus, tmp_path, capsys):
    save = tmp_path / "v"
    args = [
        "--data",
        str(corpus),
        "--save-dir",
        str(save),
        "--no-progress",
        "--threads",
        "1",
        "--max-updates",
        "2",
        "--batch-size",
        "2",
        "--generator",
        "istft",
    ]
    assert train_main(args) == 0
    written = json.loads((save / "config.json").read_text())
    assert written["generator"] == "istft" and written["istft_channels"] == 256 and "resblock" not in written
    vocoder = CodeHiFiGANUnitVocoder.from_files(str(save / "generator.pt"), str(save / "config.json"))
    assert vocoder.istft and vocoder.synthesize_frames(torch.tensor([1, 2, 3])).shape == (960,)
    config = tmp_path / "hifigan.json"
    config.write_text(json.dumps(preset_config("tiny", 50)))
    assert (
        train_main(
            [
                "--data",
                str(corpus),
                "--save-dir",
                str(tmp_path / "w"),
                "--config",
                str(config),
                "--max-updates",
                "1",
                "--generator",
                "istft",
            ]
        )
        == 2
    )
    assert "generator 'hifigan' but --generator istft" in capsys.readouterr().err
