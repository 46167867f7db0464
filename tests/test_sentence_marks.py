"""Sentence-end marks: transcripts of several sentences, the masked target side in training, the
ASR CTC's mark in greedy decoding, and the translator ending a sentence at it."""

import copy
import shutil

import numpy as np
import pytest
import torch
from fairseq import options, tasks
from fairseq.data import Dictionary

import echostream_fairseq  # noqa: F401  (registers the plugin)
from echostream_fairseq.data.concat import ConcatOptions, build_concat_split
from echostream_fairseq.data.manifest import ManifestError, read_tsv
from echostream_fairseq.data.speech_to_unit_dataset import SENTENCE_MARK, _encode
from echostream_fairseq.modules.ctc import CTC_BLANK, ctc_greedy_marks
from test_longform import _ScriptedASR, _logits, _translator, loaded  # noqa: F401  (the fixture)


def _dictionary():
    d = Dictionary()
    for piece in ("▁a", "▁b", "▁c"):
        d.add_symbol(piece)
    return d


def test_marks_end_each_sentence_with_eos_or_are_dropped():
    d = _dictionary()
    a, b, c, eos = d.index("▁a"), d.index("▁b"), d.index("▁c"), d.eos()
    text = f"▁a ▁b {SENTENCE_MARK} ▁c"
    assert _encode(d, text, "x", sentence_ends=True).tolist() == [a, b, eos, c, eos]
    assert _encode(d, text, "x", sentence_ends=False).tolist() == [a, b, c]
    assert _encode(d, f"▁a {SENTENCE_MARK}", "x", sentence_ends=True).tolist() == [a, eos]  # a final mark
    assert _encode(d, "▁c", "x", sentence_ends=True).tolist() == [c, eos]
    with pytest.raises(ManifestError, match=r"f.tsv:3: an empty sentence between </s> marks"):
        _encode(d, f"▁a {SENTENCE_MARK} {SENTENCE_MARK} ▁b", "f.tsv:3", sentence_ends=True)
    with pytest.raises(ManifestError, match="f.tsv:4: empty transcript"):
        _encode(d, SENTENCE_MARK, "f.tsv:4", sentence_ends=True)


def test_greedy_marks_returns_tokens_without_marks_and_where_the_last_mark_was():
    mark = 2  # eos
    # labels: 4 4 blank MARK MARK blank 5 blank -> tokens 4 5; the mark after 1 token, 4 frames after it
    tokens, last, found = ctc_greedy_marks(_logits([4, 4, 0, 2, 2, 0, 5, 0]), CTC_BLANK, [1, 2, 3], mark)
    assert (tokens, last, found) == ([4, 5], 0, (1, 4))
    # a mark repeated across the chunk boundary is the same mark: not found again
    assert ctc_greedy_marks(_logits([2, 0, 4]), 2, [1, 2, 3], mark) == ([4], 4, None)
    # the last of two marks
    assert ctc_greedy_marks(_logits([4, 2, 5, 2, 0]), CTC_BLANK, [], mark) == ([4, 5], 0, (2, 1))
    assert ctc_greedy_marks(_logits([]).reshape(0, 6), 3, [], mark) == ([], 3, None)


@pytest.fixture(scope="module")
def marked(corpus, tmp_path_factory):
    """The test corpus with a concatenated split, its task set up with --asr-sentence-ends."""
    root = tmp_path_factory.mktemp("marked") / "corpus"
    shutil.copytree(corpus, root)
    assert build_concat_split(ConcatOptions(str(root), count=4, seed=2), progress=False) == 4
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [
        str(root), "--task", "echostream_speech_to_speech", "--arch", "echostream_emformer_tiny",
        "--criterion", "echostream_multitask", "--max-tokens", "4000", "--dropout", "0", "--asr-sentence-ends"])
    task = tasks.setup_task(args)
    task.load_dataset("train_concat_mix")
    return root, args, task


def test_concat_split_marks_sentences_and_its_mix_holds_both(marked):
    root, _, task = marked
    train = {r["id"]: r["tgt_text"] for r in read_tsv(str(root / "src_unigram" / "train.tsv"), ("id", "tgt_text"))}
    joined = read_tsv(str(root / "src_unigram" / "train_concat.tsv"), ("id", "tgt_text"))
    for row in joined:  # every sentence between the marks is one train transcript
        sentences = [s.strip() for s in row["tgt_text"].split(SENTENCE_MARK)]
        assert 2 <= len(sentences) <= 3 and all(s in train.values() for s in sentences)
    mix = [r["id"] for r in read_tsv(str(root / "train_concat_mix.tsv"), ("id",))]
    assert mix == list(train) + [r["id"] for r in joined]
    ds = task.datasets["train_concat_mix"]
    sample = ds.collater([ds[i] for i in range(len(ds))])
    counts = [len(s.split(SENTENCE_MARK)) for s in train.values()] + \
        [len(r["tgt_text"].split(SENTENCE_MARK)) for r in joined]
    assert sample["sentences"].tolist() == counts
    eos = task.multitask_dictionaries["source_unigram"].eos()
    asr = sample["multitask"]["source_unigram"]
    # --asr-sentence-ends: every ASR CTC target ends each of its sentences with eos
    assert [int((row[:n] == eos).sum()) for row, n in zip(asr["target"], asr["target_lengths"])] == counts


def test_examples_of_several_sentences_train_only_the_encoder_and_ctc_heads(marked):
    _, args, task = marked
    torch.manual_seed(0)
    model, criterion = task.build_model(args), task.build_criterion(args)
    model.train()
    ds = task.datasets["train_concat_mix"]
    n_single = sum(1 for i in range(len(ds)) if not ds.ids[i].startswith("train_concat"))
    picks = [0, 1, len(ds) - 1]  # two single sentences, one concatenation
    assert n_single >= 2 and picks[-1] >= n_single
    sample = ds.collater([ds[i] for i in picks])

    def losses(batch):
        torch.manual_seed(1)  # the same training chunk sizes for every call
        return criterion(model, batch)[2]

    log = losses(sample)
    # the concatenation's MT and unit targets, replaced, change nothing of those terms
    other = copy.deepcopy(sample)  # (collating again would draw new SpecAugment masks)
    mt = other["multitask"]["target_unigram"]
    d = task.multitask_dictionaries["target_unigram"]
    row = mt["target"][2]
    row[(row != d.pad()) & (row != d.eos())] = d.nspecial
    other["target"][2, : other["target_lengths"][2]] = 7
    log2 = losses(other)
    for key in ("mt_loss", "mt_nll_loss", "unit_ctc_loss"):
        assert float(log2[key]) == pytest.approx(float(log[key]), rel=1e-6)
    assert log["tgt_ntokens"] == int(mt["target_lengths"][:2].sum())
    assert log["unit_ntokens"] == int(sample["target_lengths"][:2].sum())
    # while its ASR CTC target counts
    other["multitask"]["source_unigram"]["target"][2, 0] = 5
    log3 = losses(other)
    assert float(log3["asr_ctc_loss"]) != pytest.approx(float(log["asr_ctc_loss"]), rel=1e-6)


def test_the_asr_mark_ends_the_sentence_and_what_follows_starts_the_next(loaded):  # noqa: F811
    model, task = loaded
    tr = _translator(loaded, sentence_pause_frames=30, asr_sentence_ends=True)
    eos = tr.src_dict.eos()
    vocab = len(tr.src_dict)
    # 8 frames per chunk: 4 subwords; the mark at frame 12 (chunk 1), 3 frames after it, two of
    # them the next sentence's first subwords; a stray mark after 2 subwords (chunk 3) is not
    # enough for a sentence; a mark after 4 (chunk 4) is
    script = [7, 0, 8, 0, 7, 0, 9, 0] + [0, 0, 0, 0, eos, 0, 10, 11] + [0] * 8 + [eos] + [0] * 7 + \
        [12, 0, 13, 0, eos, 0, 0, 0] + [0] * 8
    original = model.asr_ctc
    model.asr_ctc = _ScriptedASR(script, vocab)
    try:
        state = tr.initial_state()
        wave = np.random.default_rng(0).uniform(-0.1, 0.1, 16000 * 3).astype(np.float32)
        ends, tokens = [], []
        for k in range(6):
            out, state = tr.step(wave[k * 5120:(k + 1) * 5120], state)
            ends.append(out.sentence_end)
            tokens.append(state.asr_tokens)
            if k == 1:
                # the next sentence holds the subwords after the mark, its MT memory the 3 frames after it
                assert state.sentences == 1 and state.target_tokens == ()
                assert state.mt_memory is not None and state.mt_memory[0].cross_key.size(-2) == 3
    finally:
        model.asr_ctc = original
    assert ends == [False, True, False, False, True, False]
    assert tokens == [(7, 8, 7, 9), (10, 11), (10, 11), (10, 11), (), ()]
    assert state.sentences == 2 and state.asr_blank_frames == 13  # the mark counts as a pause frame
