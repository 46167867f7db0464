"""Long-form translation: sentence ends in the translator, long-form streams and scoring."""

import contextlib

import numpy as np
import pytest
import torch
from translators import make_translator, plan_to, script_policy

from echostream_fairseq.modules.ctc import CTC_BLANK, ctc_blank_run
from echostream_fairseq.streaming.policy import FINISH, PolicyConfig, PolicyState


def _logits(labels, vocab=6):
    out = torch.zeros(len(labels), vocab)
    out[torch.arange(len(labels)), torch.tensor(labels, dtype=torch.long)] = 1.0
    return out


def test_blank_run_counts_frames_since_the_last_spoken_label():
    assert ctc_blank_run(_logits([0, 0, 0])) == 3
    assert ctc_blank_run(_logits([0, 0]), run=5) == 7
    assert ctc_blank_run(_logits([3, 0, 0, 4, 0])) == 1
    assert ctc_blank_run(_logits([0, 2])) == 0
    assert ctc_blank_run(_logits([]).reshape(0, 6), run=4) == 4
    # a banned label is never the best one: here blank wins instead
    assert ctc_blank_run(_logits([5, 5]), banned=[5]) == 2


class _ScriptedASR(torch.nn.Module):
    """An ASR CTC head whose best label per encoder frame follows a script, frame after frame."""

    def __init__(self, labels, vocab):
        super().__init__()
        self.labels, self.vocab, self.position = labels, vocab, 0

    def forward(self, frames):
        n = frames.size(1)
        labels = [self.labels[min(self.position + i, len(self.labels) - 1)] for i in range(n)]
        self.position += n
        return _logits(labels, self.vocab)[None].expand(frames.size(0), -1, -1)  # every stream of a batch alike


def _translator(loaded, **cfg):
    return make_translator(loaded, **{"max_len": 8, **cfg})


def test_a_pause_after_speech_ends_the_sentence_and_restarts_the_target_side(loaded):
    model, task = loaded
    tr = _translator(loaded, sentence_pause_frames=10)
    vocab = len(tr.dictionaries.source)
    # 8 encoder frames per 320 ms chunk: speech in chunks 0-1, pause from frame 16, speech again
    # from frame 40, pause again from 56
    script = [7, 0] * 8 + [CTC_BLANK] * 24 + [9, 0] * 8 + [CTC_BLANK] * 40
    original = model.asr_ctc
    model.asr_ctc = _ScriptedASR(script, vocab)
    try:
        state = tr.initial_state()
        ends, sentences, wave = [], [], np.random.default_rng(0).uniform(-0.1, 0.1, 16000 * 4).astype(np.float32)
        for k in range(12):
            out, state = tr.step(wave[k * 5120 : (k + 1) * 5120], state, finish=False)
            ends.append(out.sentence_end)
            sentences.append(state.sentences)
            if out.sentence_end:
                assert state.asr_tokens == () and state.st_tokens == () and state.target_tokens == ()
                assert state.mt_memory is None and state.policy == PolicyState()
                assert state.t2u_caches is None and state.voiced_state_count == 0 and state.unit_last == CTC_BLANK
    finally:
        model.asr_ctc = original
    # blank run reaches 10 in chunk 3 (frames 16..31 blank = 16) and, after the second sentence, in chunk 8
    assert [i for i, e in enumerate(ends) if e] == [3, 8]
    assert sentences == [0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2]


def _states_with_memories_and_prefixes(loaded, corpus, chunks=6):
    """Three streams stepped with scripted writing (a subword a chunk or more): MT memories and
    written prefixes of different lengths, one tuple of states per chunk."""
    from test_translator import _source

    tr = _translator(loaded, force_writing=True)
    script_policy(
        tr,
        lambda state, target, finish: (
            max(len(state.target_tokens) + 1, state.encoder_frames // 6) if state.mt_memory else None
        ),
    )
    states, seen = [tr.initial_state() for _ in range(3)], []
    for k in range(chunks):
        sizes = [2560, 3200, 3840]
        pieces = [_source(corpus, s).numpy()[k * n : (k + 1) * n] for s, n in enumerate(sizes)]
        states = [st for _, st in tr.step_batch([(p, st, False) for p, st in zip(pieces, states)])]
        seen.append([st for st in states if st.target_tokens])
    return seen


@pytest.mark.parametrize("whole_word", [False, True])
def test_a_known_sentence_end_written_at_once_equals_writing_to_the_target_then_finishing(loaded, corpus, whole_word):
    """A sentence known to end before the writes (a mark, a long pause) is written straight to its
    end: the subwords, text states and caches equal writing to the policy's target first and then
    finishing, as the translator did in two batches (targets within the sentence's limit; beyond
    it, the limit now holds)."""
    tr = _translator(loaded, policy=PolicyConfig(whole_word=whole_word), sentence_pause_frames=10)
    compared = 0
    with torch.inference_mode():
        for states in _states_with_memories_and_prefixes(loaded, corpus):
            # long-form mode: a sentence's subwords in all are bounded by its limit
            states = [st for st in states if tr.sentence_ends.finish_limit(st) >= 4]
            if len(states) < 2:
                continue
            targets = [len(st.target_tokens) + 2 + r for r, st in enumerate(states)]
            at_once = tr.mt.write_batch([plan_to(tr, st, FINISH) for st in states])
            first = tr.mt.write_batch([plan_to(tr, st, t) for st, t in zip(states, targets)])
            then = tr.mt.write_batch([plan_to(tr, w.state, FINISH) for w in first])
            for w, w1, w2 in zip(at_once, first, then):
                (new, text, state), (new1, text1), (new2, text2, state2) = (
                    (w.target_new, w.text_states, w.state),
                    (w1.target_new, w1.text_states),
                    (w2.target_new, w2.text_states, w2.state),
                )
                assert new == new1 + new2 and state.target_tokens == state2.target_tokens
                joined = text2 if text1 is None else torch.cat([text1, text2], dim=1)
                assert text.shape == joined.shape and torch.allclose(text, joined, atol=1e-5)
                for c, c2 in zip(state.mt_memory, state2.mt_memory):
                    assert torch.allclose(c.self_key, c2.self_key, atol=1e-5)
                compared += 1
    assert compared >= 6


@contextlib.contextmanager
def _eos_biased(model, eos, bias):
    """The MT decoder's score for the end of sentence raised by ``bias`` (the toy model never ends
    a sentence by itself)."""
    output_layer = model.decoder.output_layer

    def biased(features):
        logits = output_layer(features)
        logits[..., eos] += bias
        return logits

    model.decoder.output_layer = biased
    try:
        yield
    finally:
        del model.decoder.output_layer  # the class's method again


def test_a_short_pause_is_confirmed_by_the_look_ahead_of_the_write(loaded, corpus):
    """A stream in a short pause asks whether the MT decoder, fed its last subword, would end the
    sentence: the look ahead of a write (alone, or after the policy's subwords) is that question,
    asked for many streams in one batch as for one alone. Its decoder state is the first text state
    of a write to FINISH, and where the answer is yes that write adds no subword, so the translator
    takes the state and writes no more."""
    model, _ = loaded
    tr = _translator(loaded, max_len=12, sentence_pause_frames=10, sentence_confirmed_pause_frames=4)
    seen = _states_with_memories_and_prefixes(loaded, corpus)
    yes = no = 0
    for eos_bias in [0.0, 50.0]:
        with _eos_biased(model, tr.dictionaries.target.eos(), eos_bias), torch.inference_mode():
            for states in seen:
                if len(states) < 2:
                    continue
                looks = tr.mt.write_batch([plan_to(tr, st, len(st.target_tokens)) for st in states])
                finishing = tr.mt.write_batch([plan_to(tr, st, FINISH) for st in states])
                for state, look, w in zip(states, looks, finishing):
                    new, text = w.target_new, w.text_states
                    assert look.target_new == [] and look.text_states is None
                    assert look.state.target_tokens == state.target_tokens
                    scores, eos_state = look.look_ahead
                    alone_scores, alone_state = tr.mt.write(plan_to(tr, state, len(state.target_tokens))).look_ahead
                    assert torch.allclose(scores, alone_scores, atol=1e-4)
                    assert torch.allclose(eos_state, alone_state, atol=1e-5)
                    assert torch.allclose(eos_state, text[:, :1], atol=1e-5)
                    confirmed = tr.sentence_ends.confirmed(_in_short_pause(tr, state), look.look_ahead, False)
                    assert (confirmed is not None) == (eos_bias > 0)
                    if confirmed is not None:
                        assert new == [] and text.shape == (1, 1, model.decoder.embed_dim)
                        yes += 1
                    else:
                        assert new
                        no += 1
    assert yes >= 6 and no >= 6


def _in_short_pause(tr, state):
    """``state`` with a short pause after enough recognised speech (and no long one)."""
    from dataclasses import replace

    cfg = tr.config
    state = replace(
        state,
        asr_tokens=(7,) * cfg.sentence_min_tokens,
        sentence_marks=(),
        asr_blank_frames=cfg.sentence_confirmed_pause_frames,
    )
    assert tr.sentence_ends.before_write(state, False) is None
    return state


def _speaking_translator(loaded, corpus, **cfg):
    """A long-form translator with speech output (the corpus's Griffin-Lim vocoder)."""
    from echostream_fairseq.streaming.loading import load_vocoder

    vocoder = load_vocoder(str(corpus / "units" / "kmeans.pt"), None, "griffin_lim", True)
    return make_translator(loaded, vocoder=vocoder, max_len=8, sentence_pause_frames=10, **cfg)


def _alone_and_together(tr, script, waves, chunks, before_chunk=lambda: None):
    """Each wave stepped alone, then all as one batch, chunk by chunk, the ASR head following
    ``script``: the outputs per stream and chunk (alone) and per chunk and stream (together)."""
    model = tr.model
    original = model.asr_ctc
    try:
        alone = []
        for wave in waves:
            model.asr_ctc = _ScriptedASR(script, len(tr.dictionaries.source))
            state, outs = tr.initial_state(), []
            for k in range(chunks):
                before_chunk()
                out, state = tr.step(wave[k * 5120 : (k + 1) * 5120], state)
                outs.append(out)
            alone.append(outs)
        model.asr_ctc = _ScriptedASR(script, len(tr.dictionaries.source))
        states, together = [tr.initial_state() for _ in waves], []
        for k in range(chunks):
            before_chunk()
            stepped = tr.step_batch([(w[k * 5120 : (k + 1) * 5120], st, False) for w, st in zip(waves, states)])
            together.append([out for out, _ in stepped])
            states = [st for _, st in stepped]
    finally:
        model.asr_ctc = original
    return alone, together


def test_sentences_ending_in_one_tick_share_one_vocoder_call(loaded, corpus):
    """Three streams stepped as one batch end their sentences in the same ticks: the speech of
    those sentences' last units is one vocoder call, and each stream equals itself stepped alone."""
    tr = _speaking_translator(loaded, corpus)
    vocoder = tr.vocoder
    script = [7, 0] * 8 + [CTC_BLANK] * 24 + [9, 0] * 8 + [CTC_BLANK] * 40
    rng = np.random.default_rng(1)
    waves = [rng.uniform(-0.1, 0.1, 16000 * 4).astype(np.float32) for _ in range(3)]
    step_batch = vocoder.step_batch
    calls = []

    def counting(requests):
        calls[-1].append(len(requests))
        return step_batch(requests)

    vocoder.step_batch = counting
    try:
        alone, together = _alone_and_together(tr, script, waves, 12, lambda: calls.append([]))
    finally:
        vocoder.step_batch = step_batch
    assert [k for k in range(12) if together[k][0].sentence_end] == [3, 8]
    assert all(out.sentence_end == together[k][0].sentence_end for k in range(12) for out in together[k])
    # one call for every stream's speech in every tick, a sentence's last units included
    assert calls[-12:] == [[3] for k in range(12)]
    for s in range(3):
        for k in range(12):
            a, b = alone[s][k], together[k][s]
            assert (a.target_tokens, a.units, a.sentence_end) == (b.target_tokens, b.units, b.sentence_end), (s, k)
            assert a.audio.shape == b.audio.shape and torch.allclose(a.audio, b.audio, atol=1e-4), (s, k)


def test_short_pauses_confirmed_in_a_batch_end_each_stream_as_alone(loaded, corpus):
    """Three streams stepped as one batch reach a short pause (8 blank encoder frames: more than
    the 4 that ask the MT decoder, fewer than the 10 that end a sentence by themselves) in the same
    chunk; the decoder, biased to end sentences, confirms it through the writes' look ahead. Each
    stream ends its sentence there, its translation marked as advanced, and its subwords, units
    and speech equal the stream stepped alone."""
    model, _ = loaded
    tr = _speaking_translator(loaded, corpus, sentence_confirmed_pause_frames=4)
    # the toy model's ST CTC writes little: a subword a chunk is asked for
    script_policy(tr, lambda state, target, finish: len(state.target_tokens) + 1 if state.mt_memory else None)
    # speech in chunks 0-1, a short pause in chunk 2 (8 blank frames), speech in chunk 3, then a long pause
    script = [7, 0] * 8 + [CTC_BLANK] * 8 + [9, 0] * 4 + [CTC_BLANK] * 40
    rng = np.random.default_rng(2)
    waves = [rng.uniform(-0.1, 0.1, 16000 * 3).astype(np.float32) for _ in range(3)]
    with _eos_biased(model, tr.dictionaries.target.eos(), 50.0):
        alone, together = _alone_and_together(tr, script, waves, 7)
    # each short pause ends a sentence: chunk 2, and chunk 4 (8 blank frames again, before 10)
    assert [k for k in range(7) if together[k][0].sentence_end] == [2, 4]
    for s in range(3):
        assert together[2][s].sentence_end and together[2][s].wrote and not together[2][s].target_tokens
        assert [len(t[s].target_tokens) for t in together[:2]] == [1, 0]  # the end of sentence comes next
        for k in range(7):
            a, b = alone[s][k], together[k][s]
            assert (a.target_tokens, a.units, a.sentence_end, a.wrote) == (
                b.target_tokens,
                b.units,
                b.sentence_end,
                b.wrote,
            ), (s, k)
            assert a.audio.shape == b.audio.shape and torch.allclose(a.audio, b.audio, atol=1e-4), (s, k)


def test_long_form_off_keeps_one_sentence_per_stream(loaded):
    model, _ = loaded
    tr = _translator(loaded)
    original = model.asr_ctc
    model.asr_ctc = _ScriptedASR([7, 0] * 4 + [CTC_BLANK] * 200, len(tr.dictionaries.source))
    try:
        state = tr.initial_state()
        wave = np.zeros(16000 * 3, dtype=np.float32)
        for k in range(9):
            out, state = tr.step(wave[k * 5120 : (k + 1) * 5120], state)
            assert not out.sentence_end
    finally:
        model.asr_ctc = original
    assert state.sentences == 0 and state.asr_blank_frames >= 60 and state.asr_tokens == (7, 7, 7, 7)


def test_bad_streams_stay_sane_in_long_form(loaded, corpus):
    """Silence, noise, a sentence that never pauses, sentences back to back, a stop mid-word."""
    from test_translator import _source, _state_bytes, _stream

    tr = _translator(loaded, sentence_pause_frames=12, sentence_confirmed_pause_frames=6, mt_source_window=100)
    chunk = 5120

    def check(outs, state):
        assert state.finished and all(torch.isfinite(o.audio).all() for o in outs)
        assert len(state.target_tokens) <= 8  # max_len: no sentence runs away
        memory = state.mt_memory[0].cross_key.size(-2) if state.mt_memory else 0
        assert memory <= 100  # the MT source window bounds the memory however long a sentence runs

    # a minute of silence: nothing is written, no sentence ends, the state does not grow
    state, sizes = tr.initial_state(), []
    for k in range(190):
        out, state = tr.step(np.zeros(chunk, dtype=np.float32), state)
        assert not out.target_tokens and not out.sentence_end
        if k in (50, 189):
            sizes.append(_state_bytes(state))
    assert sizes[0] == sizes[1] and state.sentences == 0
    out, state = tr.step(np.zeros(chunk, dtype=np.float32), state, finish=True)
    assert state.finished and len(out.target_tokens) <= 8
    # half a minute of loud noise
    noise = np.random.default_rng(0).normal(0, 0.1, 16000 * 30).astype(np.float32)
    check(*_stream(tr, noise, chunk))
    # 20 s of speech without a pause (utterances trimmed of their silences, back to back), and the
    # same four utterances back to back with their own short silences
    pieces = [_source(corpus, k % 4).numpy() for k in range(40)]
    voiced = np.concatenate(
        [p[np.flatnonzero(np.abs(p) > 0.01)[0] : np.flatnonzero(np.abs(p) > 0.01)[-1]] for p in pieces]
    )[: 16000 * 20]
    assert len(voiced) == 16000 * 20
    check(*_stream(tr, voiced, chunk))
    check(*_stream(tr, np.concatenate(pieces[:4]), chunk))  # (what a trained model writes: docs/longform.md)
    # a stream that stops in the middle of a word: finished, its translation flushed
    cut = pieces[0][: int(len(pieces[0]) * 0.6)]
    outs, state = _stream(tr, cut, chunk)
    check(outs, state)
    assert outs[-1].finished
