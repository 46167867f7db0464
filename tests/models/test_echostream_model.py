"""The echostream model, criterion and task in-process, on the toy corpus."""

import argparse

import pytest
import torch
from fairseq import options, tasks
from toy_corpus import write_toy_corpus

import echostream_fairseq  # noqa: F401  (registers the plugin)
from echostream_fairseq.data.audio import AudioError
from echostream_fairseq.data.manifest import ManifestError
from echostream_fairseq.tasks.configs import ConfigError


def _args(root, arch="echostream_emformer_tiny", extra=()):
    parser = options.get_training_parser()
    argv = [
        str(root),
        "--task",
        "echostream_speech_to_speech",
        "--arch",
        arch,
        "--criterion",
        "echostream_multitask",
        "--max-tokens",
        "4000",
        *extra,
    ]
    return options.parse_args_and_arch(parser, argv)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_toy_corpus(tmp_path_factory.mktemp("toy"))


def _setup(root, arch="echostream_emformer_tiny", extra=()):
    args = _args(root, arch, extra)
    task = tasks.setup_task(args)
    task.load_dataset("train")
    return args, task


@pytest.mark.parametrize("arch", ["echostream_emformer_tiny", "echostream_conformer_tiny"])
def test_loss_decreases_on_a_fixture_batch(corpus, arch):
    torch.manual_seed(0)
    args, task = _setup(corpus, arch)
    model, criterion = task.build_model(args), task.build_criterion(args)
    ds = task.datasets["train"]
    sample = ds.collater([ds[i] for i in range(8)])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    losses = []
    for _ in range(6):
        loss, sample_size, log = criterion(model, sample)
        opt.zero_grad()
        (loss / sample_size).backward()
        opt.step()
        losses.append(loss.item() / sample_size)
    assert losses[-1] < 0.6 * losses[0], losses
    for key in ("unit_ctc_loss", "mt_loss", "asr_ctc_loss", "st_ctc_loss", "asr_errors", "st_errors"):
        assert key in log


def test_architectures_have_the_documented_sizes(corpus):
    _, task = _setup(corpus)
    args = _args(corpus, "echostream_emformer")
    model = task.build_model(args)
    assert len(model.encoder.backbone.layers) == 12 and model.encoder.backbone.input_dim == 256
    assert len(model.decoder.layers) == 4 and model.decoder.embed_dim == 512
    assert len(model.st_ctc.layers) == 2 and len(model.t2u_encoder.layers) == 2
    assert len(model.unit_decoder.layers) == 2 and model.unit_decoder.upsample_rate == 25
    conformer = task.build_model(_args(corpus, "echostream_conformer"))
    assert conformer.encoder.encoder_type == "conformer"
    tiny = task.build_model(
        _args(corpus, "echostream_emformer_tiny", ["--mt-decoder-layers", "3", "--ctc-upsample-rate", "7"])
    )
    assert len(tiny.decoder.layers) == 3 and tiny.unit_decoder.upsample_rate == 7


def test_multichunk_draws_from_the_configured_lengths(corpus):
    args, task = _setup(corpus, extra=["--multichunk-lengths", "2,0"])
    model = task.build_model(args).train()
    torch.manual_seed(0)
    draws = {model.draw_chunk_length() for _ in range(50)}
    assert draws == {2, 0}
    model.eval()
    assert model.draw_chunk_length() is None
    args, task = _setup(corpus, extra=["--no-multichunk"])
    assert task.build_model(args).train().draw_chunk_length() is None


def test_multitask_yaml_decoder_args_override_the_arch(corpus, tmp_path):
    root = write_toy_corpus(tmp_path / "c")
    text = (root / "config_multitask.yaml").read_text()
    text = text.replace("  label_smoothing: 0.1\n", "  label_smoothing: 0.1\n  decoder_args: {decoder_layers: 1}\n")
    (root / "config_multitask.yaml").write_text(text)
    args, task = _setup(root)
    assert len(task.build_model(args).decoder.layers) == 1


def test_generator_writes_asr_st_mt_lines_and_unit_hypotheses(corpus, capsys):
    torch.manual_seed(0)
    args, task = _setup(corpus)
    model = task.build_model(args).eval()
    ds = task.datasets["train"]
    args.gen_subset = "train"
    sample = ds.collater([ds[i] for i in range(3)])
    generator = task.build_generator([model], argparse.Namespace(beam=2, max_len_b=5))
    hypos = task.inference_step(generator, [model], sample)
    printed = capsys.readouterr().out.splitlines()
    for index in sample["id"].tolist():
        for prefix in ("ID", "ASR", "ST", "MT"):
            assert any(line.startswith(f"{prefix}-{index}\t") for line in printed)
    h = hypos[0][0]
    assert h["tokens"][-1] == task.target_dictionary.eos()
    assert len(h["positional_scores"]) == len(h["tokens"])
    assert all(task.target_dictionary.nspecial <= t < len(task.target_dictionary) for t in h["tokens"][:-1])
    assert len(h["mt_tokens"]) <= 5


# -- bad input ----------------------------------------------------------------------------------


def _broken(tmp_path, edit):
    root = write_toy_corpus(tmp_path / "bad", num_train=4, num_dev=2)
    edit(root)
    return root


def _replace_line(path, line_no, new):
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[line_no - 1] = new
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_unit_outside_the_dictionary_names_file_and_line(tmp_path):
    def edit(root):
        lines = (root / "train.tsv").read_text().splitlines()
        f = lines[2].split("\t")
        f[3] = "1 2 999"
        _replace_line(root / "train.tsv", 3, "\t".join(f))

    root = _broken(tmp_path, edit)
    with pytest.raises(ManifestError, match=r"train\.tsv:3: unit '999' is outside the unit dictionary"):
        _setup(root)


def test_empty_transcript_names_file_and_line(tmp_path):
    def edit(root):
        lines = (root / "src_unigram" / "train.tsv").read_text().splitlines()
        _replace_line(root / "src_unigram" / "train.tsv", 2, lines[1].split("\t")[0] + "\t ")

    root = _broken(tmp_path, edit)
    with pytest.raises(
        ManifestError,
        match=r"src_unigram/train\.tsv:2: empty transcript in column 'tgt_text' \(fill it or remove the row",
    ):
        _setup(root)


def test_pieces_missing_from_the_dictionary_are_refused_or_read_as_unk(tmp_path):
    """Stricter than fairseq, which reads them as <unk>: the message says how to proceed, and
    --unknown-pieces unk does what fairseq does."""

    def edit(root):
        lines = (root / "src_unigram" / "train.tsv").read_text().splitlines()
        utt, text = lines[1].split("\t")
        _replace_line(root / "src_unigram" / "train.tsv", 2, f"{utt}\t{text} ▁nowhere")

    root = _broken(tmp_path, edit)
    with pytest.raises(
        ManifestError, match=r"train\.tsv:2: tokens not in the dictionary: \['▁nowhere'\] .*--unknown-pieces unk"
    ):
        _setup(root)
    _, task = _setup(root, extra=["--unknown-pieces", "unk"])
    target = task.datasets["train"].text_targets["source_unigram"]
    assert sum(target.dictionary.unk() in t.tolist() for t in target.tokens.values()) == 1


def test_ids_that_do_not_match_name_the_file(tmp_path):
    def edit(root):
        lines = (root / "tgt_unigram" / "train.tsv").read_text().splitlines()
        _replace_line(root / "tgt_unigram" / "train.tsv", 2, "someone_else\t" + lines[1].split("\t")[1])

    root = _broken(tmp_path, edit)
    with pytest.raises(
        ManifestError, match=r"tgt_unigram/train\.tsv: no \S+ text for ids of the manifest: \['train_000'\]"
    ):
        _setup(root)


def test_unknown_multitask_decoder_names_file_and_line(tmp_path):
    def edit(root):
        text = (root / "config_multitask.yaml").read_text()
        (root / "config_multitask.yaml").write_text(text + "speaker_id:\n  decoder_type: ctc\n")

    root = _broken(tmp_path, edit)
    with pytest.raises(ConfigError, match=r"config_multitask\.yaml:17: unknown multitask decoder 'speaker_id'"):
        _setup(root)


def test_wrong_decoder_type_and_bad_yaml_name_the_line(tmp_path):
    def edit(root):
        text = (root / "config_multitask.yaml").read_text().replace("decoder_type: transformer", "decoder_type: ctc")
        (root / "config_multitask.yaml").write_text(text)

    root = _broken(tmp_path, edit)
    with pytest.raises(
        ConfigError, match=r"config_multitask\.yaml:11: target_unigram needs decoder_type 'transformer'"
    ):
        _setup(root)
    (root / "config.yaml").write_text("input_channels: 1\nunits: [oops\n")
    with pytest.raises(ConfigError, match=r"config\.yaml:\d+: invalid YAML"):
        _setup(root)


def test_missing_audio_is_reported_with_manifest_line(tmp_path):
    root = _broken(tmp_path, lambda root: (root / "audio" / "train_001.wav").unlink())
    _, task = _setup(root)
    ds = task.datasets["train"]
    with pytest.raises(AudioError, match=r"train\.tsv:3: .*train_001\.wav"):
        ds[1]


def test_config_transforms_apply_global_cmvn_and_specaugment(tmp_path):
    import numpy as np

    root = write_toy_corpus(tmp_path / "cmvn", num_train=4, num_dev=2)
    np.savez(root / "gcmvn.npz", mean=np.full(80, 5.0, dtype=np.float32), std=np.full(80, 2.0, dtype=np.float32))
    with open(root / "config.yaml", "a") as f:
        f.write(
            "global_cmvn: {stats_npz_path: gcmvn.npz}\n"
            "specaugment: {freq_mask_F: 80, freq_mask_N: 1, time_mask_N: 0, time_mask_T: 0, time_mask_p: 1.0}\n"
            "transforms: {'*': [global_cmvn], _train: [global_cmvn, specaugment]}\n"
        )
    args, task = _setup(root)
    task.load_dataset("dev")
    from echostream_fairseq.data.audio import fbank, read_audio

    raw = fbank(read_audio(task.datasets["dev"].audio[0]))
    torch.testing.assert_close(task.datasets["dev"][0]["source"], (raw - 5.0) / 2.0)
    np.random.seed(0)
    masked = task.datasets["train"][0]["source"]
    # a frequency band is masked in training (fairseq fills it with the utterance mean)
    constant = (masked == masked[0]).all(dim=0)
    assert (
        constant.any()
        and not (task.datasets["dev"][0]["source"] == task.datasets["dev"][0]["source"][0]).all(dim=0).any()
    )
