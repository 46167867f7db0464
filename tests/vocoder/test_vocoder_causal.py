"""The causal CodeHiFiGAN: stepped frame by frame from its caches, it equals one pass."""

import json

import pytest
import torch
from test_vocoder_padded import ragged_streams
from vocoders import HOP, step_together, stream

from echostream_fairseq.vocoder import CodeHiFiGANUnitVocoder, build_generator, preset_config
from echostream_fairseq.vocoder.config import VocoderError, check_vocoder_config, load_vocoder_config
from echostream_fairseq.vocoder.incremental import IncrementalVocoder, sub_batch_limit


def causal_config(units=16, lookahead=0):
    return {**preset_config("tiny", units), "causal": True, "lookahead_frames": lookahead}


def random_generator(seed=0, lookahead=0):
    torch.manual_seed(seed)
    generator = build_generator(causal_config(lookahead=lookahead)).eval()
    generator.remove_weight_norm()
    return generator


def random_causal_hifigan(folder, lookahead=0):
    """A causal CodeHiFiGAN of the ``tiny`` preset for 16 units, random weights, saved in ``folder``."""
    torch.manual_seed(0)
    config = causal_config(lookahead=lookahead)
    torch.save({"generator": build_generator(config).state_dict()}, folder / "g.pt")
    (folder / "config.json").write_text(json.dumps(config))
    return CodeHiFiGANUnitVocoder.from_files(str(folder / "g.pt"), str(folder / "config.json")).eval()


@torch.no_grad()
def test_a_sample_depends_on_its_own_and_earlier_frames_only():
    generator = random_generator()
    frames = torch.randint(0, 16, (2, 30))
    changed = frames.clone()
    changed[:, 18:] = (changed[:, 18:] + 5) % 16
    a, b = generator(code=frames)[:, 0], generator(code=changed)[:, 0]
    assert a.shape == (2, 30 * HOP)
    assert torch.equal(a[:, : 18 * HOP], b[:, : 18 * HOP])
    assert (a[:, 18 * HOP :] - b[:, 18 * HOP :]).abs().max() > 1e-4


@torch.no_grad()
def test_steps_from_the_caches_equal_one_pass():
    generator = random_generator()
    frames = torch.randint(0, 16, (3, 41))
    whole = generator(code=frames)[:, 0]
    state, pieces = generator.initial_state(3), []
    for start, end in [(0, 1), (1, 2), (2, 9), (9, 24), (24, 41)]:
        audio, state = generator.step(frames[:, start:end], state)
        assert audio.shape == (3, (end - start) * HOP)
        pieces.append(audio)
    assert torch.allclose(torch.cat(pieces, 1), whole, rtol=0, atol=1e-6)
    assert state.shape == (3, generator.cache_size)
    # the state is bounded: what each layer looks back on, whatever has been synthesised
    assert generator.cache_size == sum(c * n for c, n in generator.cache_shapes())
    assert generator.cache_shapes()[0] == (80, 6)  # conv_pre: 80 inputs, kernel 7


@torch.no_grad()
def test_padded_rows_step_as_each_row_alone_audio_and_state():
    generator = random_generator()
    frames = torch.randint(0, 16, (3, 40))
    whole = generator(code=frames)[:, 0]
    state, at = generator.initial_state(3), [0, 0, 0]
    audio_of = [[], [], []]
    for lengths in ([1, 5, 3], [9, 2, 7], [10, 13, 10], [20, 20, 20]):
        longest = max(lengths)
        batch = torch.full((3, longest), 7)  # padding: any unit
        for row, n in enumerate(lengths):
            batch[row, :n] = frames[row, at[row] : at[row] + n]
        audio, state = generator.step(batch, state, torch.tensor(lengths))
        for row, n in enumerate(lengths):
            audio_of[row].append(audio[row, : n * HOP])
            at[row] += n
    for row in range(3):
        alone = torch.cat(audio_of[row])
        assert torch.allclose(alone, whole[row, : alone.numel()], rtol=0, atol=1e-6), row
    # and each row's state is the state of that row stepped alone
    alone_state = generator.initial_state(1)
    _, alone_state = generator.step(frames[1:2, : at[1]], alone_state)
    assert torch.allclose(state[1], alone_state[0], rtol=0, atol=1e-6)


def test_a_state_of_the_wrong_size_is_refused():
    generator = random_generator()
    with pytest.raises(
        ValueError, match=rf"state must be \[2, {generator.cache_size}\] \(streams, cache size\), got \[2, 5\]"
    ):
        generator.step(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 5))


def test_config_causal_is_checked():
    with pytest.raises(VocoderError, match="causal must be true or false, got 'yes'"):
        check_vocoder_config({**causal_config(), "causal": "yes"})
    with pytest.raises(VocoderError, match="a causal generator needs resblock \"1\", got '2'"):
        check_vocoder_config({**causal_config(), "resblock": "2"})


def test_a_causal_checkpoint_loads_as_causal_with_the_same_parameters(tmp_path):
    vocoder = random_causal_hifigan(tmp_path)
    assert vocoder.causal and load_vocoder_config(str(tmp_path / "config.json"))["causal"] is True
    state = torch.load(tmp_path / "g.pt", weights_only=True)["generator"]
    plain = build_generator(preset_config("tiny", 16))  # the same keys and shapes as fairseq's network
    assert {k: v.shape for k, v in state.items()} == {k: v.shape for k, v in plain.state_dict().items()}
    frames = torch.randint(0, 16, (25,))
    audio = vocoder.synthesize_frames(frames)
    assert torch.allclose(vocoder(frames), audio, rtol=0, atol=1e-6)  # fairseq's wrapper runs the causal network
    first = vocoder.synthesize_frames(frames[:10])
    assert torch.allclose(audio[: 10 * HOP], first, rtol=0, atol=1e-6)


def test_incremental_synthesis_is_final_at_once_and_equals_one_pass(tmp_path):
    """No left context, no cross-fade: each call's audio covers exactly its new frames."""
    vocoder = random_causal_hifigan(tmp_path)
    frames = torch.randint(0, 16, (60,))
    inc = IncrementalVocoder(vocoder, left_context=12, crossfade=640, dur_prediction=False)
    assert (inc.left_context, inc.crossfade, inc.history_frames) == (0, 0, 0)
    audio, pieces = stream(vocoder, frames, [1, 7, 0, 12, 3, 37], dur_prediction=False)
    assert [p.numel() for p in pieces] == [n * HOP for n in [1, 7, 0, 12, 3, 37]]
    assert torch.allclose(audio, vocoder.synthesize_frames(frames), rtol=0, atol=1e-5)
    assert inc.initial_state().synthesis.shape == (vocoder.generator.cache_size,)
    assert IncrementalVocoder(vocoder).initial_state().context_frames.numel() == 0


def test_causal_streams_in_shared_padded_calls_equal_each_stream_alone(tmp_path):
    vocoder = random_causal_hifigan(tmp_path)
    assert sub_batch_limit(vocoder) == 32
    streams, sizes = ragged_streams()
    alone = [stream(vocoder, s, n, dur_prediction=False)[1] for s, n in zip(streams, sizes)]
    calls = []
    run = vocoder.synthesize_step

    def recording(frames, lengths, lookahead, states):
        calls.append((frames.size(1), lengths.tolist()))
        return run(frames, lengths, lookahead, states)

    vocoder.synthesize_step = recording
    inc = IncrementalVocoder(vocoder, dur_prediction=False, max_batch=4, max_padding=16)
    assert inc.length_bucket == 4  # a causal vocoder's calls are short: a finer bucket than its 8
    step_together(inc, streams, sizes, alone)
    # every call's frames are padded to a whole bucket and its rows to a power of two; rows of
    # unequal length share calls
    assert calls and all(width % 4 == 0 and width >= max(n) and len(n) in (1, 2, 4) for width, n in calls), calls
    assert any(len(set(n)) > 1 for _, n in calls)


def test_padded_synthesis_of_a_causal_vocoder_zeroes_past_each_row(tmp_path):
    vocoder = random_causal_hifigan(tmp_path)
    frames = torch.randint(0, 16, (2, 12))
    audio = vocoder.synthesize_frames_padded(frames, torch.tensor([12, 5]))
    assert torch.allclose(audio[1, : 5 * HOP], vocoder.synthesize_frames(frames[1, :5]), rtol=0, atol=1e-6)
    assert torch.equal(audio[1, 5 * HOP :], torch.zeros(7 * HOP))


@torch.no_grad()
@pytest.mark.parametrize("ahead", [1, 2])
def test_with_lookahead_a_sample_depends_on_that_many_frames_after_its_own(ahead):
    generator = random_generator(lookahead=ahead)
    frames = torch.randint(0, 16, (2, 30))
    changed = frames.clone()
    changed[:, 18] = (changed[:, 18] + 5) % 16
    a, b = generator(code=frames)[:, 0], generator(code=changed)[:, 0]
    assert a.shape == (2, 30 * HOP)
    assert torch.equal(a[:, : (18 - ahead) * HOP], b[:, : (18 - ahead) * HOP])
    assert (
        a[:, (18 - ahead) * HOP : (19 - ahead) * HOP] - b[:, (18 - ahead) * HOP : (19 - ahead) * HOP]
    ).abs().max() > 1e-5
    assert generator.cache_shapes()[0] == (80, 6 - ahead)


@torch.no_grad()
def test_with_lookahead_steps_equal_one_pass():
    """Each step gets the frames after its own as lookahead; the last one is told the sequence ends."""
    generator = random_generator(lookahead=2)
    frames = torch.randint(0, 16, (2, 30))
    whole = generator(code=frames)[:, 0]
    state, pieces = generator.initial_state(2), []
    for start, end in [(0, 1), (1, 8), (8, 27)]:
        audio, state = generator.step(frames[:, start : end + 2], state)
        pieces.append(audio)
    ending = torch.nn.functional.pad(frames[:, 27:], (0, 2), value=9)  # 9: anything, these are not real
    audio, state = generator.step(ending, state, lookahead=torch.tensor([0, 0]))
    pieces.append(audio)
    assert torch.allclose(torch.cat(pieces, 1), whole, rtol=0, atol=1e-6)


def test_incremental_synthesis_with_lookahead_holds_those_frames_until_the_next_or_the_end(tmp_path):
    vocoder = random_causal_hifigan(tmp_path, lookahead=2)
    assert vocoder.lookahead_frames == 2
    frames = torch.randint(0, 16, (40,))
    sizes = [1, 1, 7, 0, 12, 19]
    audio, pieces = stream(vocoder, frames, sizes, dur_prediction=False)
    # 2 frames wait for the frames after them; the finishing call synthesises them
    assert [p.numel() // HOP for p in pieces] == [0, 0, 7, 0, 12, 21]
    assert torch.allclose(audio, vocoder.synthesize_frames(frames), rtol=0, atol=1e-5)
    inc = IncrementalVocoder(vocoder, dur_prediction=False)
    _, state = inc.step(frames[:5], inc.initial_state())
    assert torch.equal(state.context_frames, frames[3:5])
    end, state = inc.step([], state, finish=True)  # a finish without new units still flushes them
    assert end.numel() == 2 * HOP and state.context_frames.numel() == 0


def test_causal_streams_with_lookahead_in_shared_calls_equal_each_stream_alone(tmp_path):
    vocoder = random_causal_hifigan(tmp_path, lookahead=2)
    torch.manual_seed(2)
    streams = [torch.randint(0, 16, (80,)) for _ in range(4)]
    sizes = [[1, 8, 0, 8, 16, 47], [3, 1, 9, 0, 31, 36], [0, 0, 8, 8, 16, 48], [5, 7, 8, 9, 11, 40]]
    alone = [stream(vocoder, s, n, dur_prediction=False)[1] for s, n in zip(streams, sizes)]
    step_together(IncrementalVocoder(vocoder, dur_prediction=False, max_batch=4, max_padding=16), streams, sizes, alone)


def test_lookahead_is_checked():
    with pytest.raises(
        VocoderError, match=r"lookahead_frames must be an integer 0..6 \(the first convolution's reach\), got 7"
    ):
        check_vocoder_config(causal_config(lookahead=7))
    with pytest.raises(VocoderError, match="lookahead_frames 2 needs causal true"):
        check_vocoder_config({**preset_config("tiny", 16), "lookahead_frames": 2})


def test_causal_calls_are_cut_where_a_call_costs_more_than_the_padding_it_saves():
    from echostream_fairseq.vocoder.call_groups import cheapest_calls

    frames = {0: 3, 1: 20, 2: 18, 3: 2}
    # a call costs 64 frames' worth: one call of 4 rows x 24 frames (160) beats two (64 + 48 + 64 + 16)
    assert cheapest_calls(frames, 32, 8, 64) == [[1, 2, 0, 3]]
    # calls for free: the long streams apart from the short ones (48 + 16 frames against 96)
    assert cheapest_calls(frames, 32, 8, 0) == [[1, 2], [0, 3]]
    # three rows run as four (an idle stream): [0, 1, 2] costs 10 + 4 x 24, so the short one joins
    # them (106) rather than run apart (10 + 96 + 10 + 8), and no split of the three pays (110)
    assert cheapest_calls({0: 20, 1: 20, 2: 20, 3: 1}, 32, 8, 10) == [[0, 1, 2, 3]]
    assert cheapest_calls({0: 20, 1: 20, 2: 20, 3: 1}, 32, 8, 0) == [[0], [1, 2], [3]]
    assert cheapest_calls(frames, 1, 8, 64) == [[1], [2], [0], [3]]
    assert cheapest_calls({}, 32, 8, 64) == []
