"""The Python streaming API and batched stepping: streams stepped together equal each stream
stepped alone, pieces of any length and any input format give the same events, bad input fails
with a message, and a closed stream is freed."""

import numpy as np
import pytest
import torch
from translators import plan_to

from echostream_fairseq.data.audio import read_audio
from echostream_fairseq.modules.batching import group_by_layout, split_state, stack_states, state_layout
from echostream_fairseq.streaming.api import EchoStream
from echostream_fairseq.streaming.policy import FINISH, PolicyConfig


@pytest.fixture(scope="module")
def system(writing, corpus):
    save, _ = writing
    return EchoStream.load(
        str(save / "checkpoint_last.pt"),
        str(corpus),
        vocoder=str(corpus / "units" / "kmeans.pt"),
        vocoder_type="griffin_lim",
        max_len=12,
    )


@pytest.fixture(scope="module")
def zipformer_system(writing_zipformer, corpus):
    save, _ = writing_zipformer
    return EchoStream.load(
        str(save / "checkpoint_last.pt"),
        str(corpus),
        vocoder=str(corpus / "units" / "kmeans.pt"),
        vocoder_type="griffin_lim",
        max_len=12,
    )


def _waves(corpus, n):
    return [read_audio(p).numpy() for p in sorted((corpus / "audio" / "src").glob("test_*.wav"))[:n]]


def _alone(system, wave, rate=16000, chunk_ms=None, piece=4000):
    stream = system.open(rate, chunk_ms)
    events = []
    for i in range(0, len(wave), piece):
        events += stream.feed(wave[i : i + piece])
    events += stream.finish()
    stream.close()
    return events


def _same(a, b):
    assert [e.kind for e in a] == [e.kind for e in b]
    for x, y in zip(a, b):
        assert x.text == y.text and x.source_seconds == pytest.approx(y.source_seconds)
        if x.audio is not None:
            assert x.audio.shape == y.audio.shape
            np.testing.assert_allclose(x.audio, y.audio, atol=1e-4)


@pytest.mark.parametrize("encoder", ["emformer", "zipformer"])
def test_streams_stepped_as_one_batch_equal_each_stream_alone(encoder, request, corpus):
    system = request.getfixturevalue("system" if encoder == "emformer" else "zipformer_system")
    assert system.translator.model.encoder.encoder_type == encoder
    waves = _waves(corpus, 4)
    resampled = np.repeat(waves[3], 3)  # a 48 kHz stereo stream: its own resampler, its own layout
    stereo = np.stack([resampled, resampled], axis=1)
    alone = [_alone(system, w) for w in waves[:3]] + [_alone(system, stereo, rate=48000, piece=12000)]
    assert any(e.kind == "target_text" for e in alone[0]) and any(e.kind == "target_speech" for e in alone[0])
    sources = list(waves[:3]) + [stereo]
    rates = [16000, 16000, 16000, 48000]
    joins = [0, 0, 3, 5]  # streams join at different ticks and so are at different points
    streams, got, tick = {}, {}, 0
    while tick < 200 and (len(streams) < 4 or any(not s.finished for s in streams.values())):
        for k in range(4):
            if joins[k] == tick:
                s = system.open(rates[k])
                s.push(sources[k])
                s.request_finish()
                streams[k], got[k] = s, []
        stepped = system.step(streams.values())
        if tick == 6:
            assert len(stepped) == 4  # everybody stepped in the same tick
        for s, events in stepped.items():
            got[next(k for k, v in streams.items() if v is s)].extend(events)
        tick += 1
    for k in range(4):
        assert streams[k].finished
        _same(got[k], alone[k])
        streams[k].close()
    assert system.streams == []


def test_streams_of_different_chunk_sizes_share_a_tick(system, corpus):
    waves = _waves(corpus, 2)
    alone = [_alone(system, waves[0], chunk_ms=160), _alone(system, waves[1], chunk_ms=320)]
    streams = [system.open(chunk_ms=160), system.open(chunk_ms=320)]
    got = [[], []]
    for s, w in zip(streams, waves):
        s.push(w)
        s.request_finish()
    while any(not s.finished for s in streams):
        stepped = system.step(streams)
        for k, s in enumerate(streams):
            got[k] += stepped.get(s, [])
    for k in range(2):
        _same(got[k], alone[k])
        streams[k].close()


def test_pieces_of_any_length_and_int16_give_the_same_events(system, corpus):
    wave = _waves(corpus, 1)[0]
    reference = _alone(system, wave, piece=len(wave))
    _same(_alone(system, wave, piece=777), reference)
    quantised = np.round(wave * 32767).astype(np.int16)
    a = _alone(system, quantised, piece=3000)
    b = _alone(system, quantised.astype(np.float32) / 32768.0, piece=3000)
    _same(a, b)
    kinds = [e.kind for e in reference]
    assert kinds[-1] == "finished" and kinds.count("finished") == 1
    speech = sum(e.audio.size for e in reference if e.kind == "target_speech")
    assert speech > 0 and system.output_sample_rate == 16000


def test_bad_input_is_refused_with_a_message(system):
    with pytest.raises(ValueError, match="sample_rate must be a positive integer"):
        system.open(0)
    stream = system.open()
    with pytest.raises(ValueError, match="audio must be numbers"):
        stream.feed(np.array(["a", "b"]))
    with pytest.raises(ValueError, match=r"\[samples\] or \[samples, channels\]"):
        stream.feed(np.zeros((2, 2, 2), dtype=np.float32))
    events = stream.feed(np.array([np.nan, 0.0, np.inf], dtype=np.float32))
    assert events == [] and stream.nonfinite_samples == 2
    stream.finish()
    with pytest.raises(ValueError, match="takes no more audio"):
        stream.feed(np.zeros(10, dtype=np.float32))
    stream.close()
    assert stream.state is None and stream not in system.streams


def test_the_asr_lexicon_search_gives_the_source_text_events(writing, corpus):
    from echostream_fairseq.data.speech_to_unit_dataset import read_word_sentences
    from echostream_fairseq.tasks.configs import ConfigError

    save, _ = writing
    lexicon = {w for s in read_word_sentences(corpus / "src_unigram" / "train.tsv") for w in s}
    asr = EchoStream.load(str(save / "checkpoint_last.pt"), str(corpus), output="asr", asr_beam=4)
    events = _alone(asr, _waves(corpus, 1)[0])
    words = " ".join(e.text for e in events if e.kind == "source_text").split()
    assert words and set(words) <= lexicon and events[-1].kind == "finished"
    with pytest.raises(ConfigError, match="--asr-beam must be 0 \\(greedy\\) or positive, got -1"):
        EchoStream.load(str(save / "checkpoint_last.pt"), str(corpus), output="asr", asr_beam=-1)


def test_a_negative_unit_lookahead_is_refused(writing, corpus):
    save, _ = writing
    with pytest.raises(ValueError, match="--unit-lookahead must be >= 0 text states, got -1"):
        EchoStream.load(str(save / "checkpoint_last.pt"), str(corpus), output="text", unit_lookahead=-1)


def test_state_layouts_stack_and_split_back():
    from echostream_fairseq.modules.emformer import Emformer

    emformer = Emformer(
        input_dim=16,
        num_heads=2,
        ffn_dim=32,
        num_layers=2,
        chunk_length=4,
        left_context_length=8,
        right_context_length=2,
        max_memory_size=2,
    ).eval()
    x = torch.randn(3, 6, 16)
    states = []
    with torch.no_grad():
        for b in range(3):
            _, state = emformer.step(x[b : b + 1, :4], x[b : b + 1, 4:], None)
            states.append(state)
        fresh = emformer.initial_state(1)
        assert group_by_layout([state_layout(s) for s in states + [fresh]]) == [[0, 1, 2], [3]]
        stacked = stack_states(states)
        assert stacked.batch_size == 3
        out, _ = emformer.step(x[:, :4], x[:, 4:], stacked)
        for b, part in enumerate(split_state(stacked, [1, 1, 1])):
            assert all(torch.equal(p, q) for p, q in zip(part.key_value, states[b].key_value))
            alone, _ = emformer.step(x[b : b + 1, :4], x[b : b + 1, 4:], states[b])
            torch.testing.assert_close(out[b : b + 1], alone, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="different layouts"):
        stack_states([1, 2])


def test_restacking_the_parts_of_one_split_state_takes_no_copy():
    """The same streams stepped again stack the row blocks their last split made: in their order,
    consecutive in one storage, they are viewed together, not copied; any other order, another
    tensor's rows or rows with a gap are copied. The values are those of a concatenation."""

    def shares(a, b):
        return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()

    for mode in (torch.no_grad, torch.inference_mode):
        with mode():
            x = torch.randn(6, 3, 4)
            parts = split_state(x, [1, 2, 3])
            together = stack_states(parts)
            assert shares(together, x) and torch.equal(together, x)
            assert torch.equal(stack_states(parts[:2]), x[:3]) and shares(stack_states(parts[:2]), x)
            swapped = split_state(x, [2, 2, 2])
            swapped = [swapped[1], swapped[0], swapped[2]]
            assert not shares(stack_states(swapped), x) and torch.equal(stack_states(swapped), torch.cat(swapped))
            two = [x[:2], torch.randn(4, 3, 4)]  # another tensor's rows: copied
            assert not shares(stack_states(two), x) and torch.equal(stack_states(two), torch.cat(two))
            narrow = torch.randn(4, 6, 4)[:, :3]  # the blocks of a view of a wider tensor
            assert torch.equal(stack_states(split_state(narrow, [2, 2])), narrow)
            gapped = [x[:2], x[3:5]]  # rows of one tensor, not consecutive
            assert torch.equal(stack_states(gapped), torch.cat(gapped)) and not shares(stack_states(gapped), x)


@torch.inference_mode()
def test_batched_mt_writing_equals_writing_each_stream_alone(system, corpus):
    """Three streams at different points (memory lengths, subwords written, a full self-attention
    window) written in lockstep over padded caches give each stream's own subwords, decoder
    states and caches."""
    # the test model would end its sentences at once: with the end of sentence banned it writes on;
    # subwords as they come, so that the counts below are the plans' own
    translator = system.translator.with_config(
        target_window=4, force_writing=True, speech_output=False, policy=PolicyConfig(whole_word=False)
    )
    waves = _waves(corpus, 3)
    states = []
    for k, (chunks, written) in enumerate(((3, 2), (5, 1), (8, 6))):  # memory lengths, written prefixes
        state = translator.initial_state()
        for c in range(chunks):
            _, state = translator.step(waves[k][c * 5120 : (c + 1) * 5120], state)
        state = translator.mt.write(plan_to(translator, state, written)).state  # the test model's policy writes little
        states.append(state)
    assert len({len(s.target_tokens) for s in states}) > 1
    assert len({s.mt_memory[0].cross_key.size(2) for s in states}) > 1
    targets = [len(s.target_tokens) + n for s, n in zip(states, (3, 0, 6))]
    batched = translator.mt.write_batch([plan_to(translator, s, t) for s, t in zip(states, targets)])
    for state, target, w in zip(states, targets, batched):
        new, text, after, (scores, next_state) = w.target_new, w.text_states, w.state, w.look_ahead
        alone = translator.mt.write(plan_to(translator, state, target))
        alone_new, alone_text, alone_after = alone.target_new, alone.text_states, alone.state
        alone_scores, alone_next_state = alone.look_ahead
        assert new == alone_new
        # the decoder's next step after the kept subwords (the look ahead alone for stream 1)
        torch.testing.assert_close(scores, alone_scores, atol=1e-4, rtol=1e-5)
        torch.testing.assert_close(next_state, alone_next_state, atol=1e-5, rtol=1e-5)
        if text is None:
            assert alone_text is None
        else:
            torch.testing.assert_close(text, alone_text, atol=1e-5, rtol=1e-5)
        for a, b in zip(after.mt_memory, alone_after.mt_memory):
            for x, y in ((a.self_key, b.self_key), (a.self_value, b.self_value), (a.cross_key, b.cross_key)):
                assert (x is None) == (y is None)
                if x is not None:
                    torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)
        assert after.target_tokens == alone_after.target_tokens
    assert batched[1].target_new == [] and batched[1].state.mt_memory is states[1].mt_memory
    assert max(len(b.target_new) for b in batched) >= 3 and states[2].mt_memory[0].self_key.size(2) == 4
    # finishing writes (the end of a sentence or of the source) share the rounds too: up to the end
    # of sentence or max_len subwords, and the state that predicted the end is handed on as well
    finishing = translator.with_config(max_len=4)
    targets = [FINISH, len(states[1].target_tokens) + 2, FINISH]
    batched = finishing.mt.write_batch([plan_to(finishing, s, t) for s, t in zip(states, targets)])
    for state, target, w in zip(states, targets, batched):
        new, text, after = w.target_new, w.text_states, w.state
        alone = finishing.mt.write(plan_to(finishing, state, target))
        alone_new, alone_text, alone_after = alone.target_new, alone.text_states, alone.state
        assert new == alone_new and after.target_tokens == alone_after.target_tokens
        assert (text is None) == (alone_text is None)
        if text is not None:
            torch.testing.assert_close(text, alone_text, atol=1e-5, rtol=1e-5)
    # long-form mode (on by default) bounds a sentence's last write: here 2 and 0 more subwords
    assert [len(batched[r].target_new) for r in (0, 2)] == [2, 0]
    assert [batched[r].text_states.size(1) for r in (0, 2)] == [3, 1]
    # without it max_len bounds them, and the end of sentence may come first
    finishing = translator.with_config(max_len=3, sentence_pause_frames=0)
    batched = finishing.mt.write_batch([plan_to(finishing, s, FINISH) for s in states])
    for state, w in zip(states, batched):
        new, text, after = w.target_new, w.text_states, w.state
        alone = finishing.mt.write(plan_to(finishing, state, FINISH))
        alone_new, alone_text, alone_after = alone.target_new, alone.text_states, alone.state
        assert new == alone_new and len(new) <= 3 and text.size(1) == len(new) + 1
        torch.testing.assert_close(text, alone_text, atol=1e-5, rtol=1e-5)
        for a, b in zip(after.mt_memory, alone_after.mt_memory):
            torch.testing.assert_close(a.self_key, b.self_key, atol=1e-5, rtol=1e-5)


def test_streams_that_started_at_different_times_stack_and_keep_their_counts():
    from echostream_fairseq.modules.emformer import Emformer

    emformer = Emformer(
        input_dim=16,
        num_heads=2,
        ffn_dim=32,
        num_layers=2,
        chunk_length=4,
        left_context_length=8,
        right_context_length=2,
        max_memory_size=2,
    ).eval()
    x = torch.randn(2, 40, 16)
    with torch.no_grad():
        states = []
        for b, steps in enumerate((3, 4)):  # windows full after 2 steps; 12 and 16 frames consumed
            state = None
            for k in range(steps):
                _, state = emformer.step(x[b : b + 1, 4 * k : 4 * k + 4], x[b : b + 1, 4 * k + 4 : 4 * k + 6], state)
            states.append(state)
        assert [s.frames for s in states] == [12, 16]
        assert state_layout(states[0]) == state_layout(states[1])  # the count is not part of the layout
        out, stacked = emformer.step(x[:, 20:24], x[:, 24:26], stack_states(states))
        parts = split_state(stacked, [1, 1], like=states)
        assert [p.frames for p in parts] == [16, 20]
        for b in range(2):
            alone, after = emformer.step(x[b : b + 1, 20:24], x[b : b + 1, 24:26], states[b])
            torch.testing.assert_close(out[b : b + 1], alone, atol=1e-5, rtol=1e-5)
            assert parts[b].frames == after.frames


def test_streams_with_a_causal_vocoder_stepped_as_one_batch_equal_each_alone(writing, corpus, tmp_path):
    """A causal CodeHiFiGAN (random weights, 2 frames of lookahead) through the API: streams that
    join at different ticks share its calls and each gets the speech it gets alone."""
    import json

    from echostream_fairseq.vocoder import build_generator, preset_config

    save, _ = writing
    config = {**preset_config("tiny", 50), "causal": True, "lookahead_frames": 2}
    torch.manual_seed(0)
    torch.save({"generator": build_generator(config).state_dict()}, tmp_path / "g.pt")
    (tmp_path / "config.json").write_text(json.dumps(config))
    system = EchoStream.load(
        str(save / "checkpoint_last.pt"),
        str(corpus),
        vocoder=str(tmp_path / "g.pt"),
        vocoder_cfg=str(tmp_path / "config.json"),
        dur_prediction=True,
        max_len=12,
    )
    vocoder = system.translator.vocoder
    assert vocoder.causal and (vocoder.left_context, vocoder.crossfade) == (0, 0) and vocoder.max_batch <= 32
    waves = _waves(corpus, 3)
    alone = [_alone(system, w) for w in waves]
    assert all(any(e.kind == "target_speech" for e in events) for events in alone)
    streams, got, tick = {}, {}, 0
    while tick < 200 and (len(streams) < 3 or any(not s.finished for s in streams.values())):
        for k, join in enumerate([0, 1, 4]):
            if join == tick:
                s = system.open()
                s.push(waves[k])
                s.request_finish()
                streams[k], got[k] = s, []
        for s, events in system.step(streams.values()).items():
            got[next(k for k, v in streams.items() if v is s)].extend(events)
        tick += 1
    for k in range(3):
        _same(got[k], alone[k])
        streams[k].close()
