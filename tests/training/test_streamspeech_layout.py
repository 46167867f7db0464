"""StreamSpeech's prepared data folder trains here unchanged: its zipped features by byte range,
its data config without 'units:', its multitask YAML as it ships."""

import numpy as np
import pytest
import torch
from cli_runs import BIN, TRAIN_FLAGS, run_cli

from echostream_fairseq.data.audio import AudioError, StoredFeatures, read_stored_features, stored_features
from echostream_fairseq.data.manifest import read_tsv
from echostream_fairseq.tasks.checkpoint_configs import allow_fairseq_checkpoint_configs
from echostream_fairseq.tasks.configs import ConfigError, MultitaskConfig


def test_a_byte_range_of_the_zip_is_the_utterances_features(corpus, streamspeech_data):
    from streamspeech_layout import _features

    theirs = read_tsv(streamspeech_data / "dev.tsv", ("id", "src_audio", "src_n_frames"))
    ours = {r["id"]: r for r in read_tsv(corpus / "dev.tsv", ("id", "src_audio"))}
    for row in theirs:
        stored = stored_features(row["src_audio"])
        features = read_stored_features(stored)
        assert features.shape == (int(row["src_n_frames"]), 80)
        np.testing.assert_array_equal(features, _features(corpus, ours[row["id"]]["src_audio"]))
    assert stored_features("audio/train_0.wav") is None and stored_features("f/x.npy") is None
    assert stored_features("feats.zip:10:20", streamspeech_data) == StoredFeatures(
        streamspeech_data / "feats.zip", 10, 20
    )


def test_a_bad_byte_range_is_named(streamspeech_data, tmp_path):
    row = read_tsv(streamspeech_data / "dev.tsv", ("id", "src_audio"))[0]
    stored = stored_features(row["src_audio"])
    with pytest.raises(AudioError, match=r"not a stored \.npy array"):
        read_stored_features(StoredFeatures(stored.zip_path, stored.offset + 3, stored.length))
    with pytest.raises(AudioError, match="the zip ends before this byte range"):
        read_stored_features(StoredFeatures(stored.zip_path, stored.offset, 10**9))
    with pytest.raises(AudioError, match="missing.zip:0:10: feature zip not found"):
        read_stored_features(StoredFeatures(tmp_path / "missing.zip", 0, 10))


def test_their_multitask_yaml_maps_or_reports_every_key(streamspeech_data):
    config = MultitaskConfig.load(streamspeech_data / "config_mtl_asr_st_ctcst.yaml")
    assert config.tasks["target_unigram"].decoder_args == {
        "decoder_layers": 4,
        "decoder_embed_dim": 512,
        "decoder_ffn_embed_dim": 2048,
        "decoder_attention_heads": 8,
    }
    # the CTC entries' decoder_args (decoder_layers: 0 among them) are not applied to our heads
    assert config.tasks["ctc_target_unigram"].decoder_args == {} and config.tasks["source_unigram"].decoder_args == {}
    assert "ctc_target_unigram.decoder_args.decoder_layers" in config.ignored
    assert "target_unigram.rdrop_alpha" in config.ignored
    assert "source_unigram.label_smoothing (a CTC loss is not smoothed)" in config.ignored


def test_their_multitask_yaml_with_r_drop_or_an_unknown_key_is_refused(streamspeech_data, tmp_path):
    text = (streamspeech_data / "config_mtl_asr_st_ctcst.yaml").read_text()
    (tmp_path / "rdrop.yaml").write_text(text.replace("rdrop_alpha: 0.0", "rdrop_alpha: 5.0", 1))
    with pytest.raises(
        ConfigError, match="target_unigram rdrop_alpha 5.0: R-Drop is not implemented here; set it to 0"
    ):
        MultitaskConfig.load(tmp_path / "rdrop.yaml")
    (tmp_path / "unknown.yaml").write_text(text.replace("loss_weight: 8.0", "loss_weight: 8.0\n   beam: 3", 1))
    with pytest.raises(ConfigError, match=r"unknown.yaml:1: target_unigram has unknown keys \['beam'\]"):
        MultitaskConfig.load(tmp_path / "unknown.yaml")


def _train_flags(data, *extra):
    return [
        BIN / "fairseq-train",
        data,
        *TRAIN_FLAGS,
        "--config-yaml",
        "config_gcmvn.yaml",
        "--multitask-config-yaml",
        "config_mtl_asr_st_ctcst.yaml",
        *extra,
    ]


def test_fairseq_train_runs_on_their_folder_with_their_yamls_unchanged(streamspeech_data, tmp_path):
    save = tmp_path / "ckpt"
    r = run_cli(
        _train_flags(streamspeech_data, "--target-is-code", "--target-code-size", "50", "--max-update", "3")
        + ["--save-dir", save]
    )
    assert r.returncode == 0, r.stderr[-3000:]
    log = r.stdout + r.stderr
    assert "StreamSpeech's settings that mean nothing here, ignored: target_unigram.rdrop_alpha" in log
    assert "num_updates=3" in log or "num_updates 3" in log
    allow_fairseq_checkpoint_configs()
    ckpt = torch.load(save / "checkpoint_last.pt", map_location="cpu", weights_only=True)
    model = ckpt["cfg"]["model"]
    assert model.mt_decoder_layers == 4 and model.mt_decoder_embed_dim == 512  # their MT decoder's sizes
    assert model.st_ctc_layers != 0  # their CTC entries' decoder_layers: 0 was not applied


def test_their_config_without_units_needs_the_unit_count(streamspeech_data, tmp_path):
    r = run_cli(_train_flags(streamspeech_data, "--max-update", "1", "--save-dir", tmp_path))
    assert r.returncode != 0
    assert "units needs 'dict' or 'num_units', or give --target-code-size K" in r.stderr


# StreamSpeech's train.simul-s2st.sh, its sizes shrunk for a CPU test and its GPU flags left out
STREAMSPEECH_TRAIN = (
    "--config-yaml config_gcmvn.yaml --multitask-config-yaml config_mtl_asr_st_ctcst.yaml "
    "--task speech_to_speech_ctc --target-is-code --target-code-size 50 --vocoder code_hifigan "
    "--criterion speech_to_unit_2pass_ctc_asr_st --label-smoothing 0.1 --rdrop-alpha 0.0 "
    "--arch streamspeech --share-decoder-input-output-embed "
    "--encoder-layers 2 --encoder-embed-dim 64 --encoder-ffn-embed-dim 128 --encoder-attention-heads 4 "
    "--translation-decoder-layers 2 --synthesizer-encoder-layers 1 "
    "--decoder-layers 1 --decoder-embed-dim 64 --decoder-ffn-embed-dim 128 --decoder-attention-heads 4 "
    "--k1 0 --k2 0 --n1 1 --n2 -1 --chunk-size 8 --multichunk --uni-encoder "
    "--dropout 0.1 --attention-dropout 0.1 --relu-dropout 0.1 --train-subset train --valid-subset dev "
    "--ctc-upsample-rate 25 --lr 0.001 --lr-scheduler inverse_sqrt --warmup-init-lr 1e-7 --warmup-updates 4 "
    "--optimizer adam --adam-betas (0.9,0.98) --clip-norm 1.0 --max-tokens 3000 --max-target-positions 1200 "
    "--attn-type espnet --pos-enc-type rel_pos --seed 1"
).split()


def test_their_training_command_runs_here(streamspeech_data, tmp_path):
    from cli_runs import REPO

    save = tmp_path / "ckpt"
    cmd = [BIN / "fairseq-train", streamspeech_data, "--user-dir", REPO / "echostream_fairseq", *STREAMSPEECH_TRAIN]
    r = run_cli(
        cmd + ["--cpu", "--num-workers", "0", "--max-update", "2", "--save-dir", save, "--log-format", "simple"]
    )
    assert r.returncode == 0, r.stderr[-3000:]
    allow_fairseq_checkpoint_configs()
    model = torch.load(save / "checkpoint_last.pt", map_location="cpu", weights_only=True)["cfg"]["model"]
    assert (model.arch, model.encoder_type, model.encoder_layers) == ("streamspeech", "conformer", 2)
    # their names reached ours; their flags size the MT decoder over the YAML's decoder_args, as there
    assert (model.t2u_encoder_layers, model.unit_decoder_layers, model.unit_decoder_embed_dim) == (1, 1, 64)
    assert (model.chunk_length, model.activation_dropout) == (8, 0.1)
    assert (model.mt_decoder_layers, model.mt_decoder_embed_dim, model.mt_decoder_attention_heads) == (2, 64, 4)
    assert model.mt_decoder_ffn_embed_dim == 2048  # the YAML's: --decoder-ffn-embed-dim sizes the unit decoder only


@pytest.mark.parametrize(
    "change, message",
    [
        (("--rdrop-alpha", "0.0", "--rdrop-alpha", "1.0"), "--rdrop-alpha 1.0: R-Drop is not implemented here"),
        (("--label-smoothing", "0.1", "--label-smoothing", "0.2"), "the MT smoothing is the multitask YAML's here"),
        (("--pos-enc-type", "rel_pos", "--pos-enc-type", "abs"), "invalid choice: 'abs'"),
    ],
)
def test_their_flags_with_another_meaning_are_refused(streamspeech_data, tmp_path, change, message):
    from cli_runs import REPO

    old, old_value, new, new_value = change
    flags = list(STREAMSPEECH_TRAIN)
    flags[flags.index(old) + 1] = new_value
    cmd = [BIN / "fairseq-train", streamspeech_data, "--user-dir", REPO / "echostream_fairseq", *flags]
    r = run_cli(cmd + ["--cpu", "--num-workers", "0", "--max-update", "1", "--save-dir", tmp_path])
    assert r.returncode != 0 and message in r.stderr, r.stderr[-2000:]


def test_fairseq_generate_decodes_their_folder_with_their_task_name(streamspeech_data, streamspeech_trained, tmp_path):
    from cli_runs import REPO

    cmd = [BIN / "fairseq-generate", streamspeech_data, "--user-dir", REPO / "echostream_fairseq"]
    cmd += "--config-yaml config_gcmvn.yaml --multitask-config-yaml config_mtl_asr_st_ctcst.yaml".split()
    cmd += "--task speech_to_speech_ctc --target-is-code --target-code-size 50 --gen-subset test".split()
    cmd += ["--path", streamspeech_trained / "checkpoint_last.pt", "--beam", "2", "--max-tokens", "5000", "--cpu"]
    r = run_cli(cmd + ["--results-path", tmp_path])
    assert r.returncode == 0, r.stderr[-3000:]
    log = (tmp_path / "generate-test.txt").read_text()
    n = len(read_tsv(streamspeech_data / "test.tsv", ("id",)))
    assert sum(line.startswith("D-") for line in log.splitlines()) == n


def test_a_ctc_entry_with_a_mistyped_key_is_refused_not_ignored(streamspeech_data, tmp_path):
    text = (streamspeech_data / "config_mtl_asr_st_ctcst.yaml").read_text()
    ours = text.replace("      decoder_embed_dim: 512\n      decoder_ffn_embed_dim: 2048\n", "      decoder_layer: 3\n")
    (tmp_path / "typo.yaml").write_text(ours)
    with pytest.raises(ConfigError, match=r"decoder_args has unknown keys \['decoder_layer'\]"):
        MultitaskConfig.load(tmp_path / "typo.yaml")
