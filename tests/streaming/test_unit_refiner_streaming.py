"""The unit refiner in the stream: it leaves confident units alone, predicts the others again
before they are voiced, and is refused where it cannot run; echostream-train-refiner trains and
scores one."""

import json

import pytest
import torch
from cli_runs import BIN, run_cli

from echostream_fairseq.checkpoint import load_echostream_model
from echostream_fairseq.data.audio import read_audio
from echostream_fairseq.models.unit_refiner import RefinerSizes, UnitRefiner
from echostream_fairseq.streaming.loading import load_translator, load_vocoder
from echostream_fairseq.streaming.options import TranslatorOptions

CHUNK = 5120  # 320 ms


@pytest.fixture(scope="module")
def checkpoint(writing, tmp_path_factory):
    """The ``writing`` checkpoint with a random, large unit projection, so that its units vary
    along the text (after 6 updates it says one unit everywhere) at mixed confidences."""
    from echostream_fairseq.tasks.checkpoint_configs import allow_fairseq_checkpoint_configs

    allow_fairseq_checkpoint_configs()
    save, _ = writing
    state = torch.load(save / "checkpoint_last.pt", weights_only=True)
    weight = state["model"]["unit_decoder.proj.weight"]
    state["model"]["unit_decoder.proj.weight"] = 6.0 * torch.randn(
        weight.shape, generator=torch.Generator().manual_seed(0)
    )
    state["model"]["unit_decoder.proj.bias"].zero_()
    out = tmp_path_factory.mktemp("varied_units") / "checkpoint_last.pt"
    torch.save(state, out)
    return str(out)


@pytest.fixture(scope="module")
def vocoder(corpus):
    return load_vocoder(str(corpus / "units" / "kmeans.pt"), None, "griffin_lim", True)


def _rigged_refiner(checkpoint, corpus, path, answer):
    """A refiner for the checkpoint's units that always answers unit ``answer``."""
    model, task = load_echostream_model(checkpoint, str(corpus))
    sizes = RefinerSizes(len(task.target_dictionary), model.unit_decoder.embed_dim, 16, 32, 1, 2)
    refiner = UnitRefiner(sizes, 0.0)
    with torch.no_grad():
        refiner.proj.weight.zero_()
        refiner.proj.bias.fill_(-5.0)
        refiner.proj.bias[answer] = 5.0
    refiner.save(str(path))
    return str(path)


def _units(translator, wave):
    # every stage on every chunk (no end of sentence, no unit blank): many units to refine
    translator = translator.with_config(force_writing=True)
    state, units = translator.initial_state(), []
    for start in range(0, len(wave), CHUNK):
        out, state = translator.step(wave[start : start + CHUNK], state, finish=start + CHUNK >= len(wave))
        units.append(out.units)
    return units


def test_the_refiner_replaces_exactly_the_units_under_its_threshold(checkpoint, corpus, vocoder, tmp_path):
    wave = read_audio(sorted((corpus / "audio" / "src").glob("test_*.wav"))[0])
    options = dict(output="speech", max_len=8, sentence_pause_ms=0)
    plain = _units(load_translator(checkpoint, str(corpus), TranslatorOptions(**options), vocoder), wave)
    assert sum(len(u) for u in plain) >= 10
    _, task = load_echostream_model(checkpoint, str(corpus))
    answer = task.target_dictionary.nspecial + 3
    refiner = _rigged_refiner(checkpoint, corpus, tmp_path / "r.pt", answer)

    def refined(threshold):
        opts = TranslatorOptions(**options, unit_refiner=refiner, unit_refiner_threshold=threshold)
        return _units(load_translator(checkpoint, str(corpus), opts, vocoder), wave)

    # threshold 0: no unit is below it, so the units are the CTC's
    assert refined(0.0) == plain
    # threshold 1: every new unit is predicted again (the CTC still decides how many, and when)
    assert refined(1.0) == [[answer] * len(u) for u in plain]
    # in between: each unit is the CTC's or the refiner's, chunk by chunk
    middle = refined(0.5)
    assert [len(u) for u in middle] == [len(u) for u in plain]
    assert all(m in (p, answer) for ms, ps in zip(middle, plain) for m, p in zip(ms, ps))


def test_the_refiner_is_refused_where_it_cannot_run(checkpoint, corpus, vocoder, tmp_path):
    refiner = _rigged_refiner(checkpoint, corpus, tmp_path / "r.pt", 5)
    with pytest.raises(ValueError, match="--unit-refiner refines the units of speech output; this output is text"):
        TranslatorOptions(output="text", unit_refiner=refiner)
    with pytest.raises(ValueError, match=r"not --runtime onnx or --reencode"):
        TranslatorOptions(unit_refiner=refiner, runtime="onnx")
    with pytest.raises(ValueError, match="--unit-refiner-threshold is a probability, got 1.5"):
        TranslatorOptions(unit_refiner=refiner, unit_refiner_threshold=1.5)
    other = UnitRefiner(RefinerSizes(7, 12, 16, 32, 1, 2))
    other.save(str(tmp_path / "other.pt"))
    with pytest.raises(ValueError, match="was trained for 7 units and T2U states of size 12; this model has"):
        load_translator(checkpoint, str(corpus), TranslatorOptions(unit_refiner=str(tmp_path / "other.pt")), vocoder)


def test_train_refiner_trains_saves_and_scores(checkpoint, corpus, tmp_path):
    save = tmp_path / "refiner.pt"
    proc = run_cli(
        [
            BIN / "echostream-train-refiner",
            "--model-path",
            checkpoint,
            "--data-bin",
            corpus,
            "--save",
            save,
            "--max-updates",
            "4",
            "--max-tokens",
            "3000",
            "--log-interval",
            "2",
            "--threads",
            "1",
            "--embed-dim",
            "16",
            "--ffn-dim",
            "32",
            "--heads",
            "2",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "update 2: masked-unit loss" in proc.stderr and "update 4: masked-unit loss" in proc.stderr
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    assert record["updates"] == 4 and record["valid_subset"] == "dev"
    assert set(record["unit_error"]) == {"ctc", "refined_0.5", "refined_0.7", "refined_0.9"}
    shares = [record["masked_share"][t] for t in ("0.5", "0.7", "0.9")]
    assert 0 <= shares[0] <= shares[1] <= shares[2] <= 100  # a lower threshold masks a subset
    assert UnitRefiner.load(str(save)).sizes.embed_dim == 16
    bad = run_cli(
        [
            BIN / "echostream-train-refiner",
            "--model-path",
            tmp_path / "none.pt",
            "--data-bin",
            corpus,
            "--save",
            tmp_path / "x.pt",
        ]
    )
    assert bad.returncode == 2 and "model checkpoint not found" in bad.stderr and not (tmp_path / "x.pt").exists()
