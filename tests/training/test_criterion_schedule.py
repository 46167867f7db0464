"""The criterion's loss schedule (terms switched on at stated updates), its gate, and its dev MT BLEU."""

import math

import pytest
import sacrebleu
import torch
from toy_corpus import toy_training_task, write_toy_corpus

import echostream_fairseq  # noqa: F401  (registers the plugin)
from echostream_fairseq.criterions.multitask import (
    EchoStreamMultitaskCriterion,
    parse_loss_gate,
    parse_loss_schedule,
    schedule_factor,
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = write_toy_corpus(tmp_path_factory.mktemp("toy"))
    return lambda *extra: toy_training_task(root, *extra)


def test_parse_and_factor():
    schedule = parse_loss_schedule(["asr_ctc:0", "mt:200:100", "unit_ctc:400"])
    assert schedule == {"asr_ctc": (0, 0), "mt": (200, 100), "unit_ctc": (400, 0)}
    assert [schedule_factor(schedule, "mt", n) for n in (0, 199, 200, 249, 299, 300, 5000)] == [
        0.0,
        0.0,
        0.01,
        0.5,
        1.0,
        1.0,
        1.0,
    ]
    assert [schedule_factor(schedule, "unit_ctc", n) for n in (399, 400)] == [0.0, 1.0]
    assert schedule_factor(schedule, "st_ctc", 0) == 1.0  # not scheduled: full weight throughout


@pytest.mark.parametrize(
    "items, message",
    [
        (["mt"], "is not TERM:START[:RAMP]"),
        (["ctc:10"], "is not TERM:START[:RAMP] with TERM one of unit_ctc, mt, asr_ctc, st_ctc"),
        (["mt:ten"], "START and RAMP must be integers"),
        (["mt:-1"], "must not be negative"),
        (["mt:1", "mt:2"], "mt is given twice"),
        (["mt:1", "unit_ctc:1", "asr_ctc:1", "st_ctc:1"], "the first updates would train nothing"),
    ],
)
def test_bad_schedules_are_named(items, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_loss_schedule(items)


def test_schedule_switches_terms_at_the_stated_update(setup):
    torch.manual_seed(0)
    args, task = setup("--loss-schedule", "mt:100", "unit_ctc:50:50")
    model, criterion = task.build_model(args), task.build_criterion(args)
    assert isinstance(criterion, EchoStreamMultitaskCriterion)
    ds = task.datasets["train"]
    sample = ds.collater([ds[i] for i in range(4)])
    model.train()
    model.args.multichunk = False  # one chunk length for every call: the losses are comparable

    def loss_at(update):
        criterion.set_num_updates(update)
        torch.manual_seed(1)
        loss, _, log = criterion(model, sample)
        return float(loss), {k: float(log[k]) for k in ("unit_ctc_loss", "mt_loss", "asr_ctc_loss", "st_ctc_loss")}

    (l0, t), (l75, _), (l100, _), (l99, _) = loss_at(0), loss_at(74), loss_at(100), loss_at(99)
    ctc = 4 * t["asr_ctc_loss"] + 4 * t["st_ctc_loss"]
    assert l0 == pytest.approx(ctc, rel=1e-5)  # before update 50 neither unit CTC nor MT counts
    assert l75 == pytest.approx(ctc + 0.5 * t["unit_ctc_loss"], rel=1e-5)  # halfway up the ramp
    assert l99 == pytest.approx(ctc + t["unit_ctc_loss"], rel=1e-5)
    assert l100 == pytest.approx(ctc + t["unit_ctc_loss"] + 8 * t["mt_loss"], rel=1e-5)
    model.eval()  # validation weighs every term fully, whatever the update
    criterion.set_num_updates(0)
    loss, _, log = criterion(model, sample)
    full = log["unit_ctc_loss"] + 8 * log["mt_loss"] + 4 * log["asr_ctc_loss"] + 4 * log["st_ctc_loss"]
    assert float(loss) == pytest.approx(float(full), rel=1e-5)


def test_unit_ctc_weight_scales_the_unit_term_only(setup):
    torch.manual_seed(0)
    args, task = setup("--unit-ctc-weight", "3")
    model, criterion = task.build_model(args), task.build_criterion(args)
    assert criterion.term_weights() == {"unit_ctc": 3.0, "mt": 8.0, "asr_ctc": 4.0, "st_ctc": 4.0}
    ds = task.datasets["train"]
    sample = ds.collater([ds[i] for i in range(4)])
    model.eval()
    loss, _, log = criterion(model, sample)
    full = 3 * log["unit_ctc_loss"] + 8 * log["mt_loss"] + 4 * log["asr_ctc_loss"] + 4 * log["st_ctc_loss"]
    assert float(loss) == pytest.approx(float(full), rel=1e-5)
    for bad in ("0", "-1", "nan"):
        args, task = setup("--unit-ctc-weight", bad)
        with pytest.raises(ValueError, match=f"--unit-ctc-weight must be a positive number, got {float(bad)}"):
            task.build_criterion(args)


@pytest.mark.parametrize(
    "text, message",
    [
        ("six", "is not BITS[:LATEST]"),
        ("6:1:2", "is not BITS[:LATEST]"),
        ("0", "BITS must be positive"),
        ("6:-5", "LATEST not negative"),
    ],
)
def test_bad_gates_are_named(text, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_loss_gate(text)
    assert parse_loss_gate("6.5:900") == (6.5, 900) and parse_loss_gate("6") == (6.0, None)


def _train_updates(criterion, model, sample, updates, first=0):
    """Run ``updates`` training forwards as fairseq numbers them; the weights in force at each."""
    model.train()
    weights, bits = [], []
    for n in range(first, first + updates):
        criterion.set_num_updates(n)
        weights.append(criterion.term_weights())
        torch.manual_seed(n)
        _, _, log = criterion(model, sample)
        bits.append(float(log["asr_ctc_loss"]) / float(log["src_ntokens"]) / math.log(2))
    return weights, bits


def test_gate_holds_the_schedule_until_the_asr_ctc_loss_is_low(setup):
    torch.manual_seed(0)
    args, task = setup("--loss-schedule", "mt:2:2", "--loss-schedule-gate", "1000")
    model, criterion = task.build_model(args), task.build_criterion(args)
    ds = task.datasets["train"]
    sample = ds.collater([ds[i] for i in range(4)])
    model.args.multichunk = False
    weights, bits = _train_updates(criterion, model, sample, 6)
    # any loss is below 1000 bits: the gate opens once update 0 is done, the clock starts at 1
    assert criterion.gate_update == 1 and criterion.running_asr_ctc == pytest.approx(bits[0])
    assert [w["mt"] for w in weights] == [0.0, 0.0, 0.0, 4.0, 8.0, 8.0]
    assert all(w["asr_ctc"] == 4.0 and w["unit_ctc"] == 1.0 for w in weights)  # unscheduled: always full

    # a threshold no loss reaches: closed until LATEST, with the running loss an average of ten updates
    args, task = setup("--loss-schedule", "mt:0:2", "--loss-schedule-gate", "0.001:4")
    criterion = task.build_criterion(args)
    weights, bits = _train_updates(criterion, model, sample, 7)
    assert criterion.gate_update == 4
    assert [w["mt"] for w in weights] == [0.0, 0.0, 0.0, 0.0, 4.0, 8.0, 8.0]
    running = bits[0]
    for b in bits[1:4]:
        running = 0.9 * running + 0.1 * b
    assert criterion.running_asr_ctc == pytest.approx(running)
    _, _, log = criterion(model, sample)
    assert log["loss_gate_open"] == 1.0

    # a resumed run (its first update is not 0) past the plateau counts the schedule from update 0
    args, task = setup("--loss-schedule", "mt:2:2", "--loss-schedule-gate", "1000")
    criterion = task.build_criterion(args)
    weights, _ = _train_updates(criterion, model, sample, 2, first=500)
    assert criterion.gate_update == 0 and weights[0]["mt"] == 0.0 and weights[1]["mt"] == 8.0
    args, task = setup("--loss-schedule-gate", "6")
    with pytest.raises(ValueError, match="needs a --loss-schedule"):
        task.build_criterion(args)


def test_fairseq_trainer_tells_the_criterion_the_update(setup):
    from fairseq.trainer import Trainer

    args, task = setup("--loss-schedule", "mt:3", "--cpu", "--optimizer", "adam", "--lr", "1e-3")
    model, criterion = task.build_model(args), task.build_criterion(args)
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    trainer = Trainer(convert_namespace_to_omegaconf(args), task, model, criterion)
    ds = task.datasets["train"]
    sample = ds.collater([ds[i] for i in range(4)])
    for _ in range(3):
        trainer.train_step([sample])
    # the criterion weighs each step by the updates done before it
    assert (criterion.num_updates, trainer.get_num_updates()) == (2, 3)


def test_validation_reports_greedy_mt_bleu(setup):
    torch.manual_seed(0)
    args, task = setup()
    model, criterion = task.build_model(args), task.build_criterion(args)
    ds = task.datasets["train"]
    sample = ds.collater([ds[i] for i in range(6)])
    model.eval()
    _, _, log = criterion(model, sample)
    assert log["mt_bleu_ref_len"] == sum(len(r) for r in _references(task, sample))
    # the summed statistics give sacreBLEU's corpus score of the same hypotheses
    hyps = _greedy(model, criterion, sample)
    expected = sacrebleu.corpus_bleu(hyps, [[" ".join(r) for r in _references(task, sample)]])
    assert log["mt_bleu_sys_len"] == expected.sys_len
    assert [log[f"mt_bleu_counts_{i}"] for i in range(4)] == expected.counts
    args, task = setup("--no-mt-bleu")
    _, _, log = task.build_criterion(args)(model, sample)
    assert "mt_bleu_ref_len" not in log


def _references(task, sample):
    from echostream_fairseq.data.text import pieces_to_words

    d = task.multitask_dictionaries["target_unigram"]
    target = sample["multitask"]["target_unigram"]["target"]
    return [pieces_to_words(d, [t for t in row if t not in (d.eos(), d.pad())]) for row in target.tolist()]


@torch.no_grad()
def _greedy(model, criterion, sample):
    """An independent greedy decoder: one utterance at a time, stopping at eos."""
    from echostream_fairseq.data.text import pieces_to_words

    d = criterion.tgt_dict
    net = sample["net_input"]
    out = []
    for b in range(net["src_tokens"].size(0)):
        n = int(net["src_lengths"][b])
        enc = model.encoder(net["src_tokens"][b : b + 1, :n], net["src_lengths"][b : b + 1])
        tokens = [d.eos()]
        for _ in range(sample["multitask"]["target_unigram"]["target"].size(1) + 10):
            logits, _ = model.decoder(torch.tensor([tokens]), enc)
            logits = logits[0, -1].float()
            logits[[d.pad(), d.unk(), 0]] = -math.inf
            tokens.append(int(logits.argmax()))
            if tokens[-1] == d.eos():
                break
        out.append(" ".join(pieces_to_words(d, [t for t in tokens[1:] if t != d.eos()])))
    return out
