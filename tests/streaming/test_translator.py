"""The simultaneous translator on a tiny trained checkpoint: each incremental stage equals its
offline computation, the state is explicit, and long or odd input is handled."""

import dataclasses

import numpy as np
import pytest
import torch
from translators import RecordingUnits, make_translator, script_policy

from echostream_fairseq.checkpoint import CheckpointError, load_echostream_model
from echostream_fairseq.data.audio import fbank, read_audio
from echostream_fairseq.data.speech_to_unit_dataset import read_word_sentences
from echostream_fairseq.modules.ctc import ctc_greedy
from echostream_fairseq.modules.ctc_lexicon import lexicon_decoder_from_text
from echostream_fairseq.streaming.features import load_global_cmvn
from echostream_fairseq.streaming.policy import PolicyConfig
from echostream_fairseq.streaming.translator import STAGES
from echostream_fairseq.streaming.units import UnitRequest
from echostream_fairseq.vocoder.griffin_lim import GriffinLimUnitVocoder
from echostream_fairseq.vocoder.incremental import IncrementalVocoder


def _translator(loaded, corpus, **cfg):
    """The translator under test: speech output through the corpus's Griffin-Lim vocoder unless
    ``speech_output=False``; at most 20 subwords unless ``max_len`` says otherwise."""
    speech = cfg.pop("speech_output", True)
    voc = IncrementalVocoder(GriffinLimUnitVocoder.from_file(str(corpus / "units" / "kmeans.pt"))) if speech else None
    return make_translator(loaded, vocoder=voc, **{"max_len": 20, **cfg})


def _stream(translator, wave, chunk, rate=16000):
    state = translator.initial_state(rate)
    outs, i = [], 0
    while True:
        last = i + chunk >= len(wave)
        out, state = translator.step(wave[i : i + chunk], state, finish=last)
        outs.append(out)
        i += chunk
        if last:
            return outs, state


def _source(corpus, k=0):
    return read_audio(sorted((corpus / "audio" / "src").glob("test_*.wav"))[k])


@pytest.mark.parametrize("chunk_ms", [160, 320, 640, 2000])
def test_incremental_encoder_and_ctc_equal_offline(loaded, corpus, chunk_ms):
    model, task = loaded
    tr = _translator(loaded, corpus, source_segment_size=chunk_ms, speech_output=False)
    wave = _source(corpus)
    outs, state = _stream(tr, wave.numpy(), 16 * chunk_ms)
    frames = torch.cat([o.encoder_out for o in outs if o.encoder_out is not None], dim=1)
    mean, std = load_global_cmvn(task.data_cfg.global_cmvn_stats)
    feats = ((fbank(wave) - mean) / std).unsqueeze(0)
    with torch.no_grad():
        ref = model.encoder(feats, torch.tensor([feats.size(1)]))["encoder_out"][0].transpose(0, 1)
        lengths = torch.tensor([ref.size(1)])
        asr = ctc_greedy(model.asr_ctc(ref), lengths, tr.setup.rules.source_banned)[0]
        st = ctc_greedy(model.st_ctc(ref), lengths, tr.setup.rules.st_banned)[0]
    assert frames.shape == ref.shape
    assert (frames - ref).abs().max() <= 1e-5
    assert list(state.asr_tokens) == asr and list(state.st_tokens) == st
    assert sum(len(o.asr_tokens) for o in outs) == len(asr)


def test_the_encoder_keeps_its_trained_chunk_unless_the_source_chunk_is_shorter(loaded, corpus):
    model, _ = loaded
    assert model.args.chunk_length == model.encoder.trained_chunk_length == 8  # 320 ms, as trained
    chunk = {
        ms: _translator(loaded, corpus, source_segment_size=ms, speech_output=False).chunk_length
        for ms in (40, 160, 320, 640, 2000)
    }
    assert chunk == {40: 1, 160: 4, 320: 8, 640: 8, 2000: 8}
    tr = _translator(loaded, corpus, source_segment_size=2000, encoder_chunk_ms=640, speech_output=False)
    assert tr.chunk_length == 16 and model.encoder.backbone.chunk_length == 16
    # a 2000 ms source chunk is encoded as whole 8-frame steps (six: 48 frames; the rest of the
    # chunk waits for the next one), all of them before the policy decides once
    wave = next(w for w in (_source(corpus, k).numpy() for k in range(8)) if len(w) > 32000)
    outs, _ = _stream(_translator(loaded, corpus, source_segment_size=2000, speech_output=False), wave, 32000)
    assert outs[0].encoder_out.size(1) == 48
    for bad in (0.5, 100, -40):
        with pytest.raises(
            ValueError,
            match=rf"--encoder-chunk-ms must be a positive multiple of 40 ms \(one encoder "
            rf"frame\), got {bad}",
        ):
            _translator(loaded, corpus, encoder_chunk_ms=bad, speech_output=False)


class _NoisyASR(torch.nn.Module):
    """An ASR CTC head that spells training sentences, with noise: frame ``t`` of the stream gets
    row ``t`` of ``logits`` (``prefix``: every call starts at frame 0, as under --reencode)."""

    def __init__(self, logits, prefix=False):
        super().__init__()
        self.logits, self.prefix, self.position = logits, prefix, 0

    def forward(self, frames):
        n = frames.size(1)
        first = 0 if self.prefix else self.position
        self.position = first + n
        return self.logits[first : first + n][None]


def _noisy_spelling(d, rows, frames):
    """``[frames, V]`` scores: the pieces of ``rows`` one after another (two frames each, then a
    blank), plus Gaussian noise."""
    labels = []
    for row in rows:
        for piece in row:
            labels += [d.index(piece)] * 2 + [0]
    torch.manual_seed(0)
    logits = torch.randn(frames, len(d)) * 1.5
    for t, label in enumerate(labels[:frames]):
        logits[t, label] += 4.0
    logits[len(labels) :, 0] += 6.0
    return logits


def test_streamed_asr_lexicon_search_equals_one_pass(loaded, corpus):
    """The source transcript of ``--asr-beam``, chunk by chunk (incremental and re-encoding), against
    the search over the same ASR CTC scores in one pass; then the default rule writes early."""
    model, task = loaded
    d = task.multitask_dictionaries["source_unigram"]
    pieces, banned = [d[i] for i in range(len(d))], [d.pad(), d.eos(), d.unk()]
    sentences = read_word_sentences(corpus / "src_unigram" / "train.tsv")
    lexicon = {w for sentence in sentences for w in sentence}
    rows = [
        line.split("\t")[1].split() for line in (corpus / "src_unigram" / "train.tsv").read_text().splitlines()[1:4]
    ]
    wave = _source(corpus, 2).numpy()
    frames = _stream(_translator(loaded, corpus, speech_output=False), wave, 5120)[1].encoder_frames
    logits = _noisy_spelling(d, rows, frames)
    # every hypothesis must agree before a word is final, and none is forced: the one-pass result
    exact = lexicon_decoder_from_text(pieces, sentences, beam=4, banned=banned, commit_mass=1.0, max_pending=10**6)
    expected = exact.decode(logits.log_softmax(dim=-1))
    assert len(expected) >= 5 and set(expected) <= lexicon
    original = model.asr_ctc
    try:
        for reencode in (False, True):
            model.asr_ctc = _NoisyASR(logits, prefix=reencode)
            tr = _translator(loaded, corpus, speech_output=False, reencode=reencode, asr_decoder=exact)
            outs, _ = _stream(tr, wave, 5120)
            assert sum((o.asr_words for o in outs), []) == expected
        model.asr_ctc = _NoisyASR(logits)
        default = lexicon_decoder_from_text(pieces, sentences, beam=4, banned=banned)
        outs, state = _stream(_translator(loaded, corpus, speech_output=False, asr_decoder=default), wave, 5120)
    finally:
        model.asr_ctc = original
    words = sum((o.asr_words for o in outs), [])
    assert set(words) <= lexicon and sum(len(o.asr_words) for o in outs[:-1]) >= len(words) // 2
    assert len(state.asr_search.hypotheses) <= 4
    plain = _translator(loaded, corpus, speech_output=False)
    assert _stream(plain, wave, 5120)[0][0].asr_words is None


def test_reencode_mode_gives_the_same_encoder_and_ctc_prefixes(loaded, corpus):
    wave = _source(corpus, 1).numpy()
    _, inc = _stream(_translator(loaded, corpus, speech_output=False), wave, 5120)
    _, ree = _stream(_translator(loaded, corpus, speech_output=False, reencode=True), wave, 5120)
    assert inc.asr_tokens == ree.asr_tokens and inc.st_tokens == ree.st_tokens
    assert inc.encoder_frames == ree.encoder_frames


def test_stage_times_come_with_the_step_only_when_asked(loaded, corpus):
    wave = _source(corpus).numpy()
    quiet, _ = _stream(_translator(loaded, corpus), wave, 5120)
    assert all(o.stage_seconds == {} for o in quiet)
    tr = _translator(loaded, corpus, time_stages=True)
    state = tr.initial_state()
    import time

    for k in range(3):
        t0 = time.perf_counter()
        out, state = tr.step(wave[k * 5120 : (k + 1) * 5120], state)
        elapsed = time.perf_counter() - t0
        assert tuple(out.stage_seconds) == STAGES
        assert all(v >= 0 for v in out.stage_seconds.values())
        assert out.stage_seconds["encoder"] > 0
        assert sum(out.stage_seconds.values()) <= elapsed
    timed, _ = _stream(_translator(loaded, corpus, time_stages=True), wave, 5120)
    assert [o.target_tokens for o in timed] == [o.target_tokens for o in quiet]  # timing changes nothing


def test_force_writing_bans_the_end_of_sentence_and_the_unit_blank(loaded, corpus):
    model, task = loaded
    normal, forced = _translator(loaded, corpus), _translator(loaded, corpus, force_writing=True)
    eos = task.multitask_dictionaries["target_unigram"].eos()
    assert eos not in normal.setup.rules.target_banned and eos in forced.setup.rules.target_banned
    assert 0 not in normal.setup.rules.unit_banned and 0 in forced.setup.rules.unit_banned
    wave = _source(corpus).numpy()
    outs, _ = _stream(forced, wave, 5120)
    assert sum(len(o.target_tokens) for o in outs) == 20  # max_len subwords once the source ends


def test_a_step_never_changes_its_input_state(loaded, corpus):
    tr = _translator(loaded, corpus)
    wave = _source(corpus).numpy()
    state = tr.initial_state()
    out1, after1 = tr.step(wave[:8000], state)
    out2, after2 = tr.step(wave[:8000], state)  # replay from the same state
    assert out1.asr_tokens == out2.asr_tokens and after1.asr_tokens == after2.asr_tokens
    assert torch.equal(out1.audio, out2.audio)
    assert state.fbank.frames == 0 and state.encoder.speech.input_frames == 0


def test_whole_stream_speaks_and_finishes(loaded, corpus):
    tr = _translator(loaded, corpus, policy=PolicyConfig(whole_word=True), source_segment_size=640)
    outs, state = _stream(tr, _source(corpus, 2).numpy(), 10240)
    assert state.finished and outs[-1].finished
    audio = torch.cat([o.audio for o in outs])
    units = sum(len(o.units) for o in outs)
    assert state.units_emitted == units
    if units:
        assert audio.numel() > 0 and torch.isfinite(audio).all()
    with pytest.raises(ValueError, match="this stream is finished"):
        tr.step(np.zeros(10), state, finish=True)
    with pytest.raises(
        ValueError, match=r"state must be a TranslatorState \(samples first, then the state\), got ndarray"
    ):
        tr.step(tr.initial_state(), np.zeros(10))


def test_odd_input_gives_sane_output(loaded, corpus):
    tr = _translator(loaded, corpus)
    # zero length
    out, state = tr.step([], tr.initial_state(), finish=True)
    assert state.finished and out.audio.numel() == 0 and state.target_tokens == ()
    # all silence, stereo at 44.1 kHz with NaN samples
    wave = np.zeros((44100, 2), dtype=np.float32)
    wave[100:200, 0] = np.nan
    outs, state = _stream(tr, wave, 14112, rate=44100)
    assert state.finished and state.nonfinite_samples == 100
    assert all(torch.isfinite(o.audio).all() for o in outs)
    # a stream at 8 kHz is resampled: as many encoder frames as the same second at 16 kHz
    _, s8 = _stream(tr, np.zeros(8000, dtype=np.float32), 2560, rate=8000)
    _, s16 = _stream(tr, np.zeros(16000, dtype=np.float32), 5120)
    assert s8.encoder_frames == s16.encoder_frames


def test_five_minute_stream_keeps_a_bounded_state(loaded, corpus):
    tr = _translator(loaded, corpus, speech_output=False)
    rng = np.random.default_rng(0)
    speech = np.concatenate([_source(corpus, k).numpy() for k in range(4)])
    state = tr.initial_state()
    chunk = 5120
    sizes = []
    with torch.no_grad():
        for i in range(0, 16000 * 320, chunk):  # 1000 chunks
            piece = speech[i % len(speech) : i % len(speech) + chunk]
            piece = np.pad(piece, (0, chunk - len(piece))) + rng.normal(0, 1e-4, chunk).astype(np.float32)
            _, state = tr.step(piece, state)
            if i // chunk in (200, 900):
                sizes.append(_state_bytes(state))
    assert state.encoder_frames == 320 * 25
    # tensors held by the state at 1:04 and at 4:48 (token id tuples aside) are the same size: every
    # window is full by the first minute
    assert sizes[1] == sizes[0], sizes


def _state_bytes(state):
    total = 0

    def visit(x):
        nonlocal total
        if isinstance(x, torch.Tensor):
            total += x.numel() * x.element_size()
        elif dataclasses.is_dataclass(x):
            for f in dataclasses.fields(x):
                visit(getattr(x, f.name))
        elif isinstance(x, (list, tuple)) and x and not isinstance(x[0], int):
            for y in x:
                visit(y)

    visit(state)
    return total


def test_checkpoint_of_another_architecture_is_refused(trained, tmp_path, corpus):
    save, _ = trained
    state = torch.load(save / "checkpoint_last.pt", weights_only=True)
    state["cfg"]["model"].arch = "s2ut_transformer"  # what another fairseq model's checkpoint says
    state["cfg"]["model"]._name = "s2ut_transformer"
    ckpt = tmp_path / "other.pt"
    torch.save(state, ckpt)
    with pytest.raises(
        CheckpointError, match="'s2ut_transformer' model; the EchoStream agents need an 'echostream' model"
    ):
        load_echostream_model(str(ckpt), str(corpus))
    with pytest.raises(CheckpointError, match="model checkpoint not found"):
        load_echostream_model(str(tmp_path / "missing.pt"), str(corpus))
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pt: cannot read the checkpoint"):
        load_echostream_model(str(tmp_path / "garbage.pt"), str(corpus))


@pytest.mark.parametrize("lookahead", [0, 1, 2])
def test_unit_lookahead_holds_units_back_and_equals_one_pass(loaded, corpus, lookahead):
    """With ``unit_lookahead`` k the last k text states of each write wait (``unit_pending``), and
    the stream's units equal T2U and the unit decoder run once on all its text states under the
    wait-k mask ``k2 = k``."""
    model, _ = loaded
    tr = _translator(loaded, corpus, force_writing=True, unit_lookahead=lookahead, max_len=4)
    # a scripted policy: writes mid-stream
    script_policy(tr, lambda state, target, finish: target if finish else len(state.target_tokens) + 2)
    tr.units = recording = RecordingUnits(tr.units)
    wave = _source(corpus).numpy()
    state, units, pending = tr.initial_state(), [], []
    for i in range(0, len(wave), 5120):
        last = i + 5120 >= len(wave)
        out, state = tr.step(wave[i : i + 5120], state, finish=last)
        units += out.units
        pending.append(0 if state.unit_pending is None else state.unit_pending.size(1))
    text = torch.cat(recording.seen, dim=1)
    n = len(state.target_tokens) + 1  # a state per subword, then the one that predicts the end
    assert text.size(1) == n and n >= 8
    assert pending[:-1] == [lookahead] * (len(pending) - 1) and pending[-1] == 0  # flushed at the end
    with torch.no_grad():
        logits, lengths = model.unit_decoder(model.t2u_encoder(text), torch.tensor([n]), k2=lookahead, n2=1)
    assert units == ctc_greedy(logits.float(), lengths, tr.setup.rules.unit_banned)[0]


def test_held_units_flushed_without_new_text_equal_one_pass(loaded, corpus):
    """A stream's last text states held back by the lookahead and flushed by a call that brings no
    new text (the unit stage given no text and ``flush``) give the units of one pass over all its text."""
    model, _ = loaded
    tr = _translator(loaded, corpus, force_writing=True, unit_lookahead=1, max_len=4)
    script_policy(tr, lambda state, target, finish: len(state.target_tokens) + 2)
    tr.units = recording = RecordingUnits(tr.units)
    wave = _source(corpus).numpy()
    state, units = tr.initial_state(), []
    for i in range(0, len(wave) - 5120, 5120):  # the source never finishes: the last state stays held
        out, state = tr.step(wave[i : i + 5120], state)
        units += out.units
    assert state.unit_pending is not None and state.unit_pending.size(1) == 1
    with torch.inference_mode():  # as the translator's own steps run
        [flushed] = recording.step_batch([UnitRequest(state, None, True)])
    flushed, state = flushed.units, flushed.state
    assert state.unit_pending is None and state.voiced_state_count == len(state.target_tokens)
    text = torch.cat(recording.seen, dim=1)
    with torch.inference_mode():
        logits, lengths = model.unit_decoder(model.t2u_encoder(text), torch.tensor([text.size(1)]), k2=1, n2=1)
    assert units + flushed == ctc_greedy(logits.float(), lengths, tr.setup.rules.unit_banned)[0]
    # the unit decoder's memory holds each text state once (the held one is not appended again)
    assert [c.cross_key.size(2) for c in state.unit_caches] == [text.size(1)] * len(state.unit_caches)


def test_each_translator_refuses_the_others_state(loaded, corpus):
    incremental = _translator(loaded, corpus, speech_output=False)
    baseline = _translator(loaded, corpus, speech_output=False, reencode=True)
    chunk = np.zeros(320, dtype=np.float32)
    with pytest.raises(
        ValueError, match=r"state must be a PrefixState \(samples first, then the state\), got TranslatorState"
    ):
        baseline.step(chunk, incremental.initial_state())
    with pytest.raises(ValueError, match="state must be a TranslatorState .* got PrefixState"):
        incremental.step(chunk, baseline.initial_state())
    with pytest.raises(ValueError, match="state must be a TranslatorState .* got ndarray"):
        incremental.step(incremental.initial_state(), chunk)
