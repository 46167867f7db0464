"""Sentence-end marks: transcripts of several sentences, the masked target side in training, the
ASR CTC's mark in greedy decoding, and the translator ending a sentence at it."""

import shutil

import numpy as np
import pytest
import torch
from fairseq import options, tasks
from fairseq.data import Dictionary
from test_longform import _logits, _ScriptedASR, _translator
from translators import make_translator

import echostream_fairseq  # noqa: F401  (registers the plugin)
from echostream_fairseq.data.concat import ConcatOptions, build_concat_split
from echostream_fairseq.data.manifest import ManifestError, read_tsv
from echostream_fairseq.data.speech_to_unit_dataset import SENTENCE_MARK, _encode
from echostream_fairseq.modules.ctc import CTC_BLANK, CTCMark, ctc_greedy_marks, ctc_lead_frames
from echostream_fairseq.modules.masks import counts_from


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


def test_greedy_marks_returns_tokens_without_marks_and_where_each_mark_was():
    mark = 2  # eos
    # labels: 4 4 blank MARK MARK blank 5 blank -> tokens 4 5; the mark after 1 token, 4 frames
    # after it, 2 of them (the mark repeated, a blank) before the next token
    tokens, last, found = ctc_greedy_marks(_logits([4, 4, 0, 2, 2, 0, 5, 0]), CTC_BLANK, [1, 2, 3], mark)
    assert (tokens, last, found) == ([4, 5], 0, (CTCMark(1, 4, 2),))
    # a mark repeated across the chunk boundary is the same mark: not found again
    assert ctc_greedy_marks(_logits([2, 0, 4]), 2, [1, 2, 3], mark) == ([4], 4, ())
    # two marks, each with its pause
    assert ctc_greedy_marks(_logits([4, 2, 5, 2, 0]), CTC_BLANK, [], mark) == (
        [4, 5],
        0,
        (CTCMark(1, 3, 0), CTCMark(2, 1, 1)),
    )
    # marks with only blanks between are one mark, whose pause runs through the second
    assert ctc_greedy_marks(_logits([4, 2, 0, 2, 0, 5]), CTC_BLANK, [], mark) == ([4, 5], 5, (CTCMark(1, 4, 3),))
    # a token right after the mark: no pause
    assert ctc_greedy_marks(_logits([4, 2, 5, 0]), CTC_BLANK, [], mark) == ([4, 5], 0, (CTCMark(1, 2, 0),))
    assert ctc_greedy_marks(_logits([]).reshape(0, 6), 3, [], mark) == ([], 3, ())


@pytest.fixture(scope="module")
def marked(corpus, tmp_path_factory):
    """The test corpus with a concatenated split, its task set up with --asr-sentence-ends."""
    root = tmp_path_factory.mktemp("marked") / "corpus"
    shutil.copytree(corpus, root)
    assert build_concat_split(ConcatOptions(str(root), count=4, seed=2), progress=False) == 4
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(
        parser,
        [
            str(root),
            "--task",
            "echostream_speech_to_speech",
            "--arch",
            "echostream_emformer_tiny",
            "--criterion",
            "echostream_multitask",
            "--max-tokens",
            "4000",
            "--dropout",
            "0",
            "--asr-sentence-ends",
        ],
    )
    task = tasks.setup_task(args)
    task.load_dataset("train_concat_mix")
    return root, args, task


def test_concat_split_marks_sentences_and_its_mix_holds_both(marked):
    root, _, task = marked
    train = {r["id"]: r["tgt_text"] for r in read_tsv(str(root / "src_unigram" / "train.tsv"), ("id", "tgt_text"))}
    train_mt = {r["id"]: r["tgt_text"] for r in read_tsv(str(root / "tgt_unigram" / "train.tsv"), ("id", "tgt_text"))}
    units = {r["id"]: r["units"] for r in read_tsv(str(root / "units" / "train.tsv"), ("id", "units"))}
    joined = read_tsv(str(root / "src_unigram" / "train_concat.tsv"), ("id", "tgt_text"))
    joined_mt = read_tsv(str(root / "tgt_unigram" / "train_concat.tsv"), ("id", "tgt_text"))
    manifest = read_tsv(str(root / "train_concat.tsv"), ("id", "src_n_frames", "tgt_audio", "last_sentence_frame"))
    for row, mt_row, entry in zip(joined, joined_mt, manifest):
        # every sentence between the marks is one train transcript; the units are the last one's
        sentences = [s.strip() for s in row["tgt_text"].split(SENTENCE_MARK)]
        assert 2 <= len(sentences) <= 3 and all(s in train.values() for s in sentences)
        last = [k for k, v in train_mt.items() if v == mt_row["tgt_text"].split(SENTENCE_MARK)[-1].strip()]
        assert any(units[k] == entry["tgt_audio"] for k in last)
        assert 0 < int(entry["last_sentence_frame"]) < int(entry["src_n_frames"])
    mix = read_tsv(str(root / "train_concat_mix.tsv"), ("id", "last_sentence_frame"))
    assert [r["id"] for r in mix] == list(train) + [r["id"] for r in joined]
    assert all(r["last_sentence_frame"] == "0" for r in mix[: len(train)])
    ds = task.datasets["train_concat_mix"]
    picks = [0, len(ds) - 1]
    sample = ds.collater([ds[i] for i in picks])
    assert sample["net_input"]["last_sentence_frame"].tolist() == [0, int(manifest[-1]["last_sentence_frame"])]
    d = task.multitask_dictionaries["target_unigram"]
    # the MT target is the last sentence only; the ST CTC target is every sentence, unmarked;
    # --asr-sentence-ends: the ASR CTC target ends each sentence with eos
    mt = sample["multitask"]["target_unigram"]
    n = int(mt["target_lengths"][1])
    assert d.string(mt["target"][1, : n - 1]) == joined_mt[-1]["tgt_text"].split(SENTENCE_MARK)[-1].strip()
    st = sample["multitask"]["ctc_target_unigram"]
    assert int((st["target"][1] == d.eos()).sum()) == 0
    asr = sample["multitask"]["source_unigram"]
    eos = task.multitask_dictionaries["source_unigram"].eos()
    counts = [int((row[:k] == eos).sum()) for row, k in zip(asr["target"], asr["target_lengths"])]
    assert counts == [1, len(joined[-1]["tgt_text"].split(SENTENCE_MARK))]


def test_a_bad_last_sentence_frame_is_named(marked, tmp_path):
    from echostream_fairseq.data.speech_to_unit_dataset import SpeechToUnitDataset

    root, _, task = marked
    lines = (root / "train_concat.tsv").read_text().splitlines()
    head, row = lines[0], lines[1].split("\t")
    row[-1] = row[2]  # the source's length: past its last frame
    bad = tmp_path / "bad.tsv"
    bad.write_text(head + "\n" + "\t".join(row) + "\n")
    with pytest.raises(
        ManifestError,
        match=rf"bad.tsv:2: last_sentence_frame must be a frame of the source "
        rf"\(0 <= frame < {row[2]}\), got '{row[2]}'",
    ):
        SpeechToUnitDataset(bad, task.target_dictionary, {})


def test_counts_restart_at_the_last_sentence():
    counts = torch.tensor([[0, 1, 1, 2, 3, 3], [1, 1, 2, 2, 2, 3]])
    assert counts_from(counts, torch.tensor([3, 0])).tolist() == [[0, 0, 0, 1, 2, 2], [1, 1, 2, 2, 2, 3]]


def test_the_mt_decoder_attends_only_to_the_last_sentence(marked):
    _, args, task = marked
    torch.manual_seed(0)
    model = task.build_model(args).eval()
    ds = task.datasets["train_concat_mix"]
    sample = ds.collater([ds[0], ds[len(ds) - 1]])
    net_input = sample["net_input"]
    start_fbank = int(net_input["last_sentence_frame"][1])

    def mt_logits(disturb: bool, with_start: bool):
        def hook(module, inputs, out):
            if disturb:  # change the encoder states before the last sentence
                enc = out["encoder_out"][0].clone()
                frames = int(start_fbank * int(out["src_lengths"][0][1]) // int(net_input["src_lengths"][1]))
                enc[:frames, 1] += 5.0
                out = {**out, "encoder_out": [enc]}
            return out

        handle = model.encoder.register_forward_hook(hook)
        try:
            kwargs = (
                dict(net_input) if with_start else {k: v for k, v in net_input.items() if k != "last_sentence_frame"}
            )
            with torch.no_grad():
                return model(**kwargs)["mt_logits"]
        finally:
            handle.remove()

    base = mt_logits(False, True)
    torch.testing.assert_close(mt_logits(True, True), base)  # what came before is not attended
    assert (mt_logits(True, False)[1] - mt_logits(False, False)[1]).abs().max() > 1e-3  # without: it is


def test_the_asr_mark_ends_the_sentence_and_what_follows_starts_the_next(loaded):
    model, task = loaded
    tr = _translator(loaded, sentence_pause_frames=30, asr_sentence_ends=True)
    eos = tr.dictionaries.source.eos()
    vocab = len(tr.dictionaries.source)
    # 8 frames per chunk: 4 subwords; the mark at frame 12 (chunk 1), 3 frames after it, two of
    # them the next sentence's first subwords; a stray mark after 2 subwords (chunk 3) is not
    # enough for a sentence; a mark after 4 (chunk 4) is
    script = (
        [7, 0, 8, 0, 7, 0, 9, 0]
        + [0, 0, 0, 0, eos, 0, 10, 11]
        + [0] * 8
        + [eos]
        + [0] * 7
        + [12, 0, 13, 0, eos, 0, 0, 0]
        + [0] * 8
    )
    original = model.asr_ctc
    model.asr_ctc = _ScriptedASR(script, vocab)
    try:
        state = tr.initial_state()
        wave = np.random.default_rng(0).uniform(-0.1, 0.1, 16000 * 3).astype(np.float32)
        ends, tokens = [], []
        for k in range(6):
            out, state = tr.step(wave[k * 5120 : (k + 1) * 5120], state)
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


def test_a_mark_inside_a_word_is_not_a_sentence_end(loaded):
    """ "aujour <mark> d'hui": where the ASR subword after the mark continues a word, the mark is
    ignored and the sentence goes on; after a word-starting subword it ends the sentence."""
    model, _ = loaded
    tr = _translator(loaded, sentence_pause_frames=30, asr_sentence_ends=True)
    source = tr.dictionaries.source
    eos, vocab = source.eos(), len(source)
    pieces = range(source.nspecial, vocab)
    word = next(i for i in pieces if source[i].startswith("\u2581"))
    inside = next(i for i in pieces if not source[i].startswith("\u2581"))

    def ends(after):
        script = [word, 0] * 4 + [0, 0, 0, 0, eos, 0, after, 0] + [0] * 8
        original = model.asr_ctc
        model.asr_ctc = _ScriptedASR(script, vocab)
        try:
            state, found = tr.initial_state(), []
            wave = np.random.default_rng(0).uniform(-0.1, 0.1, 16000).astype(np.float32)
            for k in range(3):
                out, state = tr.step(wave[k * 5120 : (k + 1) * 5120], state)
                found.append(out.sentence_end)
        finally:
            model.asr_ctc = original
        return found, state

    found, state = ends(inside)
    assert found == [False, False, False] and state.sentences == 0 and state.asr_tokens == (word,) * 4 + (inside,)
    found, state = ends(word)
    assert found == [False, True, False] and state.sentences == 1 and state.asr_tokens == (word,)


def test_lead_frames_count_what_comes_before_the_first_new_token():
    assert ctc_lead_frames([0, 2, 0, 5, 0], CTC_BLANK, 2) == 3  # blank, the mark, blank
    assert ctc_lead_frames([5, 5, 0, 6], 5) == 3  # 5 continues from the chunk before
    assert ctc_lead_frames([5, 5, 0, 6], CTC_BLANK) == 0
    assert ctc_lead_frames([0, 2, 2], CTC_BLANK, 2) is None
    assert ctc_lead_frames([]) is None


def _mark_pause_run(loaded, chunks, mark_pause_frames):
    """Step a translator whose ASR CTC head follows ``chunks`` (8 labels each, one per encoder
    frame of a 320 ms chunk; -1 is the mark): each chunk's sentence end, and the last state."""
    model, _ = loaded
    tr = _translator(
        loaded, sentence_pause_frames=30, asr_sentence_ends=True, sentence_mark_pause_frames=mark_pause_frames
    )
    eos, vocab = tr.dictionaries.source.eos(), len(tr.dictionaries.source)
    original = model.asr_ctc
    model.asr_ctc = _ScriptedASR([eos if label == -1 else label for chunk in chunks for label in chunk], vocab)
    try:
        state, ends, memory = tr.initial_state(), [], []
        wave = np.random.default_rng(0).uniform(-0.1, 0.1, 5120 * len(chunks)).astype(np.float32)
        for k in range(len(chunks)):
            out, state = tr.step(wave[k * 5120 : (k + 1) * 5120], state)
            ends.append(out.sentence_end)
            memory.append(None if state.mt_memory is None else state.mt_memory[0].cross_key.size(-2))
    finally:
        model.asr_ctc = original
    return ends, memory, state


def test_a_mark_ends_the_sentence_only_after_its_pause(loaded):
    """--sentence-mark-pause-ms: a mark ends the sentence once the ASR CTC stays blank for that
    long after it, in its chunk or in later ones; a mark that the next subword follows sooner is
    not a sentence end ("grises <mark> aujourd'hui")."""
    word = 7  # a word-starting subword of the toy dictionary
    assert _translator(loaded).dictionaries.source[word].startswith("\u2581")
    speech = [word, 0] * 4
    late_mark = [0] * 6 + [-1, 0]  # 1 frame of pause in its chunk
    # 1 + 3 frames of pause: the sentence ends in the chunk after the mark; the next sentence's
    # MT memory is that whole chunk (the mark's chunk after it is pause)
    ends, memory, state = _mark_pause_run(loaded, [speech, late_mark, [0, 0, 0, word, 0, 0, 0, 0]], 4)
    assert ends == [False, False, True] and memory[2] == 8
    assert state.sentences == 1 and state.asr_tokens == (word,)
    # 1 + 1: the sentence goes on, and the mark is forgotten once the subword after it is heard
    ends, _, state = _mark_pause_run(loaded, [speech, late_mark, [0, word, 0, 0, 0, 0, 0, 0], [0] * 8], 4)
    assert ends == [False, False, False, False] and state.sentences == 0 and state.sentence_marks == ()
    assert state.asr_tokens == (word,) * 5
    # the mark and its pause in one chunk: the MT memory holds the 7 frames after the mark
    ends, memory, state = _mark_pause_run(loaded, [speech, [-1, 0, 0, 0, 0, word, 0, 0]], 4)
    assert ends == [False, True] and memory[1] == 7 and state.asr_tokens == (word,)
    # without the rule (0) the mark ends the sentence in its own chunk
    ends, _, _ = _mark_pause_run(loaded, [speech, late_mark, [0, word, 0, 0, 0, 0, 0, 0]], 0)
    assert ends == [False, True, False]


def test_the_first_mark_with_its_pause_ends_the_sentence_and_a_later_one_waits_in_the_next(loaded):
    """A mark that earns its pause in the chunk where a later mark comes ends the sentence; the
    later mark, still waiting for its pause, moves to the next sentence; and of two marks in one
    chunk the first, with its pause, wins over the second, without one."""
    word = 7
    speech = [word, 0] * 4
    ends, _, state = _mark_pause_run(
        loaded, [[word, 0, word, 0, word, 0, -1, 0], [0, 0, 0, 0, word, 0, -1, 0], [0] * 8], 4
    )
    assert ends == [False, True, False] and state.sentences == 1 and state.asr_tokens == (word,)
    # one subword before it, fewer than a sentence needs: it waits on (1 + 8 frames heard after it)
    assert state.sentence_marks == (CTCMark(1, 9, 9),)
    ends, memory, state = _mark_pause_run(loaded, [speech, [-1, 0, 0, 0, 0, word, -1, word]], 4)
    assert ends == [False, True] and memory[1] == 7 and state.asr_tokens == (word, word)
    assert state.sentence_marks == ()


def test_a_pause_ends_the_sentence_with_all_it_heard_after_a_rejected_mark(loaded):
    word = 7
    chunks = [[word, 0] * 4, [-1, word, 0, 0, 0, 0, 0, 0]] + [[0] * 8] * 3  # 30 blank frames after the subword
    ends, memory, state = _mark_pause_run(loaded, chunks, 4)
    assert ends == [False, False, False, False, True]
    assert state.sentences == 1 and state.asr_tokens == () and state.sentence_marks == () and memory[-1] is None


def test_a_short_remainder_after_a_sentence_is_not_padded_out(loaded):
    """At the end of the stream, the rest of a sentence cut short (fewer ASR subwords than a
    sentence needs, or the tail of a word) gets no more subwords; a first sentence, or a longer
    rest, does."""
    from dataclasses import replace

    tr = _translator(loaded, sentence_pause_frames=30, asr_sentence_ends=True)
    ends = tr.sentence_ends
    source = tr.dictionaries.source
    pieces = range(source.nspecial, len(source))
    word = next(i for i in pieces if source[i].startswith("\u2581"))
    inside = next(i for i in pieces if not source[i].startswith("\u2581"))
    state = replace(tr.initial_state(), sentences=1, asr_tokens=(word,))
    assert ends.finish_limit(state) == 0
    assert ends.finish_limit(replace(state, asr_tokens=(inside,) * 4)) == 0  # the tail of a word
    assert ends.finish_limit(replace(state, asr_tokens=(word, inside, inside))) > 0
    assert ends.finish_limit(replace(state, sentences=0)) > 0


class _PrefixScriptedASR(torch.nn.Module):
    """An ASR CTC head for --reencode: frame t of the prefix gets label ``labels[t]``."""

    def __init__(self, labels, vocab):
        super().__init__()
        self.labels, self.vocab = labels, vocab

    def forward(self, frames):
        n = frames.size(1)
        return _logits([self.labels[min(i, len(self.labels) - 1)] for i in range(n)], self.vocab)[None]


def _two_chunks_with_a_mark(tr, model):
    """Step ``tr`` (``--reencode``) over two 320 ms chunks whose ASR CTC writes three subwords, a
    sentence-end mark, then two more: ``(outputs, last state)``."""
    eos = tr.dictionaries.source.eos()
    script = [7, 0, 8, 0, 7, 0, 9, 0] + [0, 0, 0, 0, eos, 0, 10, 11] + [0] * 64
    original = model.asr_ctc
    model.asr_ctc = _PrefixScriptedASR(script, len(tr.dictionaries.source))
    try:
        state = tr.initial_state()
        wave = np.random.default_rng(0).uniform(-0.1, 0.1, 16000 * 2).astype(np.float32)
        outs = []
        for k in range(2):
            out, state = tr.step(wave[k * 5120 : (k + 1) * 5120], state)
            outs.append(out)
    finally:
        model.asr_ctc = original
    return outs, state


def test_reencode_restarts_its_prefix_after_the_mark(loaded):
    model, task = loaded
    tr = _translator(loaded, sentence_pause_frames=30, asr_sentence_ends=True, reencode=True)
    assert model.encoder.right_context_length == 0
    outs, state = _two_chunks_with_a_mark(tr, model)
    assert [o.sentence_end for o in outs] == [False, True] and state.sentences == 1
    assert state.asr_searched == 3  # the 3 frames after the mark, kept in the prefix, were searched
    # the prefix starts again with the audio of the 3 encoder frames after the mark (40 ms each)
    assert state.source_samples.numel() == 3 * 640 and state.asr_tokens == () and state.encoder_frames == 0


def test_reencode_waits_for_the_pause_after_the_mark(loaded):
    model, _ = loaded
    # the mark at frame 12 has 1 frame of pause before the next subword (frame 14)
    for mark_pause_frames, ends in ((1, [False, True]), (2, [False, False])):
        tr = _translator(
            loaded,
            sentence_pause_frames=30,
            asr_sentence_ends=True,
            reencode=True,
            sentence_mark_pause_frames=mark_pause_frames,
        )
        outs, state = _two_chunks_with_a_mark(tr, model)
        assert [o.sentence_end for o in outs] == ends
        assert state.sentences == ends.count(True)


def test_reencode_speaks_the_ended_sentence_before_its_units_start_afresh(loaded, corpus):
    """--reencode with speech output: the tick that ends a sentence speaks its last units (from the
    sentence's units, which the next sentence then starts afresh)."""
    from echostream_fairseq.streaming.loading import load_vocoder

    model, _ = loaded
    vocoder = load_vocoder(str(corpus / "units" / "kmeans.pt"), None, "griffin_lim", True)
    tr = make_translator(
        loaded,
        vocoder=vocoder,
        reencode=True,
        max_len=8,
        sentence_pause_frames=30,
        asr_sentence_ends=True,
        force_writing=True,
    )
    outs, state = _two_chunks_with_a_mark(tr, model)
    assert [o.sentence_end for o in outs] == [False, True] and state.all_units == ()
    assert outs[1].units and outs[1].audio.numel() > 0 and bool(torch.isfinite(outs[1].audio).all())
