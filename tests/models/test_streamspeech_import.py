"""StreamSpeech's parts imported into an echostream model compute what they computed there.

The reference is independent of our code: fairseq's own modules, which StreamSpeech's extend, built
with StreamSpeech's settings (pre-norm layers, scaled embeddings, sinusoidal positions, tied MT
output, a causal T2U, a unit decoder whose positions all get the sinusoid row 2 and whose CTC blank
is the last unit) and saved under StreamSpeech's parameter names.
"""

import argparse

import pytest
import torch
from fairseq.models.transformer import TransformerDecoder
from fairseq.modules import SinusoidalPositionalEmbedding, TransformerDecoderLayer, TransformerEncoderLayer

from echostream_fairseq.checkpoint import build_random_echostream_model
from echostream_fairseq.models.streamspeech_weights import load_streamspeech_parts, streamspeech_parts

D_ENC, D_MT, R = 144, 64, 5
D_UNIT = D_MT  # StreamSpeech's T2U reads the MT states at their size (no projection)


def _args(**sizes):
    return argparse.Namespace(
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        relu_dropout=0.0,
        activation_fn="relu",
        decoder_normalize_before=True,
        encoder_normalize_before=True,
        decoder_learned_pos=False,
        no_scale_embedding=False,
        share_decoder_input_output_embed=True,
        max_target_positions=1024,
        **sizes,
    )


@pytest.fixture(scope="module")
def streamspeech(corpus):
    """StreamSpeech's parts as fairseq modules, and their state dict under its names."""
    from fairseq.models.transformer import base_architecture

    torch.manual_seed(1)
    _, task = build_random_echostream_model("echostream_emformer_tiny", corpus)
    tgt, src, st = (task.multitask_dictionaries[k] for k in ("target_unigram", "source_unigram", "ctc_target_unigram"))
    units = len(task.target_dictionary) + 1  # its unit dictionary ends with <blank>
    mt_args = _args(
        decoder_layers=2,
        decoder_embed_dim=D_MT,
        decoder_ffn_embed_dim=96,
        decoder_attention_heads=4,
        encoder_embed_dim=D_ENC,
    )
    base_architecture(mt_args)
    embed = torch.nn.Embedding(len(tgt), D_MT, tgt.pad())
    torch.nn.init.normal_(embed.weight, std=D_MT**-0.5)
    mt = TransformerDecoder(mt_args, tgt, embed).eval()
    t2u_args = _args(encoder_embed_dim=D_UNIT, encoder_ffn_embed_dim=80, encoder_attention_heads=4)
    t2u = torch.nn.ModuleList(TransformerEncoderLayer(t2u_args) for _ in range(2)).eval()
    t2u_norm = torch.nn.LayerNorm(D_UNIT)
    unit_args = _args(
        decoder_embed_dim=D_UNIT, decoder_ffn_embed_dim=80, decoder_attention_heads=4, encoder_embed_dim=D_UNIT
    )
    unit = torch.nn.ModuleList(TransformerDecoderLayer(unit_args) for _ in range(2)).eval()
    unit_norm = torch.nn.LayerNorm(D_UNIT)
    unit_out = torch.randn(units, D_UNIT) * D_UNIT**-0.5
    asr, stc = torch.nn.Linear(D_ENC, len(src)), torch.nn.Linear(D_ENC, len(st))
    for norm in (t2u_norm, unit_norm):
        torch.nn.init.normal_(norm.weight, 1.0, 0.1)
        torch.nn.init.normal_(norm.bias, 0.0, 0.1)
    state = {f"source_unigram_decoder.proj.{k}": v for k, v in asr.state_dict().items()}
    state.update({f"ctc_target_unigram_decoder.proj.{k}": v for k, v in stc.state_dict().items()})
    state.update({f"target_unigram_decoder.{k}": v for k, v in mt.state_dict().items()})
    state.update({f"synthesizer_encoder.layers.{k}": v for k, v in t2u.state_dict().items()})
    state.update({f"synthesizer_encoder.layer_norm.{k}": v for k, v in t2u_norm.state_dict().items()})
    state.update({f"decoder.layers.{k}": v for k, v in unit.state_dict().items()})
    state.update({f"decoder.layer_norm.{k}": v for k, v in unit_norm.state_dict().items()})
    state.update({"decoder.output_projection.weight": unit_out, "decoder.embed_tokens.weight": unit_out})
    state.update({"decoder.version": torch.tensor([3.0]), "encoder.layers.0.fc1.weight": torch.zeros(1)})
    modules = dict(
        mt=mt, t2u=t2u, t2u_norm=t2u_norm, unit=unit, unit_norm=unit_norm, unit_out=unit_out, asr=asr, st=stc
    )
    return modules, state


@pytest.fixture(scope="module")
def imported(corpus, streamspeech):
    _, state = streamspeech
    flags = [
        "--st-ctc-layers", "0", "--unit-decoder-positions", "streamspeech", "--ctc-upsample-rate", str(R),
        "--mt-decoder-layers", "2", "--mt-decoder-embed-dim", str(D_MT), "--mt-decoder-ffn-embed-dim", "96",
        "--mt-decoder-attention-heads", "4", "--t2u-encoder-layers", "2", "--unit-decoder-layers", "2",
        "--unit-decoder-embed-dim", str(D_UNIT), "--unit-decoder-ffn-embed-dim", "80",
        "--unit-decoder-attention-heads", "4",
    ]  # fmt: skip
    model, task = build_random_echostream_model("echostream_emformer_tiny", corpus, flags)
    left = load_streamspeech_parts(model, state)
    return model.eval(), task, left


def test_every_part_is_placed_and_the_encoder_left(imported):
    _, _, left = imported
    assert sorted(left) == [
        "decoder.embed_tokens.weight",
        "decoder.output_projection.weight",
        "decoder.version",
        "encoder.layers.0.fc1.weight",
        "target_unigram_decoder.output_projection.weight",
        "target_unigram_decoder.version",
    ]


@torch.no_grad()
def test_the_imported_mt_decoder_equals_fairsequs(imported, streamspeech):
    model, task, _ = imported
    modules, _ = streamspeech
    eos = task.multitask_dictionaries["target_unigram"].eos()
    memory = torch.randn(9, 2, D_ENC)  # [T, B, C]
    tokens = torch.tensor([[eos, 10, 11, 12], [eos, 13, 14, 15]])
    encoder_out = {"encoder_out": [memory], "encoder_padding_mask": []}
    theirs, _ = modules["mt"](tokens, encoder_out)
    ours, _ = model.decoder(tokens, encoder_out)
    torch.testing.assert_close(ours, theirs, atol=2e-5, rtol=1e-5)


@torch.no_grad()
def test_the_imported_ctc_heads_t2u_and_unit_decoder_equal_fairsequs(imported, streamspeech):
    model, _, _ = imported
    m, _ = streamspeech
    frames = torch.randn(1, 7, D_ENC)
    torch.testing.assert_close(model.asr_ctc(frames), m["asr"](frames), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(model.st_ctc(frames), m["st"](frames), atol=1e-6, rtol=1e-6)  # a bare projection
    # T2U: causal self-attention, a final LayerNorm, no positions
    text = torch.randn(6, 1, D_UNIT)  # [L, B, C]: one utterance, as StreamSpeech's agent decodes
    causal = torch.triu(torch.ones(6, 6, dtype=torch.bool), diagonal=1)
    x = text
    for layer in m["t2u"]:
        x = layer(x, None, attn_mask=causal)
    t2u_theirs = m["t2u_norm"](x)
    t2u_ours = model.t2u_encoder(text.transpose(0, 1))
    torch.testing.assert_close(t2u_ours, t2u_theirs.transpose(0, 1), atol=2e-5, rtol=1e-5)
    # the unit decoder: states repeated R times, every position plus sinusoid row 2, causal over them
    up = t2u_theirs.repeat_interleave(R, dim=0)
    row = SinusoidalPositionalEmbedding.get_embedding(3, D_UNIT, 1)[2]
    y = up + row
    future = torch.triu(torch.full((6 * R, 6 * R), float("-inf")), diagonal=1)
    for layer in m["unit"]:
        y, _, _ = layer(y, encoder_out=t2u_theirs, encoder_padding_mask=None, self_attn_mask=future)
    theirs = torch.nn.functional.linear(m["unit_norm"](y), m["unit_out"]).transpose(0, 1)  # [1, L*R, V+1]
    ours, lengths = model.unit_decoder(t2u_ours, torch.tensor([6]))
    assert lengths.tolist() == [6 * R] and ours.shape[-1] == theirs.shape[-1] - 1
    # its blank (last) is our row 0; the specials and units keep their rows; its <s> row is dropped
    torch.testing.assert_close(ours[..., 0], theirs[..., -1], atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(ours[..., 1:], theirs[..., 1:-1], atol=2e-5, rtol=1e-5)


def test_a_checkpoint_that_does_not_fit_is_named(corpus, streamspeech):
    _, state = streamspeech
    model, _ = build_random_echostream_model("echostream_emformer_tiny", corpus)  # ST CTC layers, other sizes
    with pytest.raises(ValueError, match=r"does not fit this model's decoders: .*\(--st-ctc-layers 0"):
        load_streamspeech_parts(model, state)
    weights, _ = streamspeech_parts(state)
    assert weights["unit_decoder.proj.bias"].abs().sum() == 0


def test_the_import_command_writes_a_checkpoint_our_loaders_and_agents_read(corpus, streamspeech, tmp_path, capsys):
    from echostream_fairseq.checkpoint import CheckpointError, load_echostream_model
    from echostream_fairseq.cli.import_streamspeech import main

    modules, state = streamspeech
    sizes = dict(
        decoder_layers=2, decoder_embed_dim=D_UNIT, decoder_ffn_embed_dim=80, decoder_attention_heads=4,
        synthesizer_encoder_layers=2, ctc_upsample_rate=R, encoder_embed_dim=D_ENC, target_code_size=50,
    )  # fmt: skip
    theirs = tmp_path / "streamspeech.pt"
    history = [{"criterion_name": "x", "optimizer_name": "adam", "lr_scheduler_state": {"best": 1.0}, "num_updates": 9}]
    checkpoint = {"args": None, "cfg": {"model": argparse.Namespace(arch="streamspeech", **sizes)}, "model": state}
    torch.save({**checkpoint, "optimizer_history": history, "extra_state": {"train_iterator": {"epoch": 1}}}, theirs)
    with pytest.raises(CheckpointError, match="a StreamSpeech checkpoint; .* echostream-import-streamspeech"):
        load_echostream_model(str(theirs), str(corpus))
    out = tmp_path / "imported.pt"
    mt = ["--mt-decoder-layers", "2", "--mt-decoder-embed-dim", str(D_MT), "--mt-decoder-ffn-embed-dim", "96"]
    mt += ["--mt-decoder-attention-heads", "4"]
    common = ["--checkpoint", str(theirs), "--data-bin", str(corpus), "--config-yaml", "config.yaml"]
    common += ["--multitask-config-yaml", "config_multitask.yaml", "--arch", "echostream_emformer_tiny"]
    assert main([*common, "--out", str(out), *mt]) == 0
    assert "its encoder (1 tensors) and 5 tied or bookkeeping tensors left out" in capsys.readouterr().out
    model, task = load_echostream_model(str(out), str(corpus))
    assert model.args.unit_decoder_positions == "streamspeech" and model.args.st_ctc_layers == 0
    eos = task.multitask_dictionaries["target_unigram"].eos()
    tokens, memory = torch.tensor([[eos, 10, 11]]), torch.randn(5, 1, D_ENC)
    with torch.no_grad():
        encoder_out = {"encoder_out": [memory], "encoder_padding_mask": []}
        torch.testing.assert_close(
            model.decoder(tokens, encoder_out)[0], modules["mt"](tokens, encoder_out)[0], atol=2e-5, rtol=1e-5
        )
    # sizes that do not fit are named, and nothing is written
    assert main([*common, "--out", str(tmp_path / "bad.pt")]) == 2
    # (here the MT decoder's FFN, which its flags do not size: the YAML's, or our preset's)
    err = capsys.readouterr().err
    assert "sizes differ from this model's: ['decoder.layers.0.ffn_in.weight: (96, 64) for (576, 64)'" in err
    assert not (tmp_path / "bad.pt").exists()


def test_freeze_parts_leaves_them_out_of_training(corpus):
    model, _ = build_random_echostream_model(
        "echostream_emformer_tiny", corpus, ["--freeze-parts", "decoder,unit_decoder"]
    )
    frozen = {name.split(".")[0] for name, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {"decoder", "unit_decoder"}
    with pytest.raises(ValueError, match=r"--freeze-parts: unknown parts \['vocoder'\]; choose from encoder, asr_ctc"):
        build_random_echostream_model("echostream_emformer_tiny", corpus, ["--freeze-parts", "vocoder"])


def test_the_recipe_imports_trains_the_encoder_alone_and_evaluates(corpus, streamspeech, tmp_path):
    """examples/from_streamspeech/recipe.sh end to end on a StreamSpeech-shaped checkpoint: two
    updates train the encoder while the imported parts stay as they were, then simuleval runs."""
    import os
    import subprocess

    from cli_runs import BIN, REPO

    _, state = streamspeech
    theirs = tmp_path / "streamspeech.pt"
    sizes = argparse.Namespace(arch="streamspeech", decoder_embed_dim=D_UNIT, ctc_upsample_rate=R, target_code_size=50)
    history = [{"criterion_name": "x", "optimizer_name": "adam", "lr_scheduler_state": {"best": 1.0}, "num_updates": 9}]
    torch.save({"args": None, "cfg": {"model": sizes}, "model": state, "optimizer_history": history}, theirs)
    wavs = sorted((corpus / "audio" / "src").glob("test_*.wav"))[:2]
    (tmp_path / "source.txt").write_text("".join(f"{w}\n" for w in wavs))
    (tmp_path / "target.txt").write_text("a small dog\n" * 2)
    sizes_flags = (
        f"--mt-decoder-layers 2 --mt-decoder-embed-dim {D_MT} --mt-decoder-ffn-embed-dim 96 "
        "--mt-decoder-attention-heads 4 --t2u-encoder-layers 2 --unit-decoder-layers 2 "
        f"--unit-decoder-embed-dim {D_UNIT} "
        f"--unit-decoder-ffn-embed-dim 80 --unit-decoder-attention-heads 4 --ctc-upsample-rate {R}"
    )
    env = dict(
        os.environ,
        PYTHONWARNINGS="ignore",
        OMP_NUM_THREADS="1",
        BIN=str(BIN),
        STREAMSPEECH_CKPT=str(theirs),
        DATA=str(corpus),
        CONFIG_YAML="config.yaml",
        MULTITASK_YAML="config_multitask.yaml",
        ARCH="echostream_emformer_tiny",
        WORK=str(tmp_path / "work"),
        EXTRA_FLAGS=sizes_flags,
        TARGET_CODE_SIZE="50",
        MAX_UPDATE="2",
        MAX_TOKENS="3000",
        TRAIN_FLAGS="--cpu --num-workers 0 --warmup-updates 1",
        SOURCE_LIST=str(tmp_path / "source.txt"),
        TARGET_TEXT=str(tmp_path / "target.txt"),
        SIMULEVAL_FLAGS="--max-len 6 --quality-metrics BLEU",
    )
    r = subprocess.run(
        ["bash", str(REPO / "examples" / "from_streamspeech" / "recipe.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    work = tmp_path / "work"
    assert (work / "simuleval_test_320ms" / "scores.tsv").is_file()
    from echostream_fairseq.checkpoint import load_echostream_model

    imported, _ = load_echostream_model(str(work / "imported.pt"), str(corpus))
    trained, _ = load_echostream_model(str(work / "checkpoints" / "checkpoint_last.pt"), str(corpus))
    before, after = imported.state_dict(), trained.state_dict()
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"encoder"}  # the imported parts were frozen
