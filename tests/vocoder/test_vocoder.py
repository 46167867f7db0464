"""Unit vocoders: loading fairseq-format CodeHiFiGAN checkpoints, the Griffin-Lim fallback,
incremental synthesis and its shared calls."""

import json
import time

import pytest
import torch
from vocoders import (
    HOP,
    NUM_UNITS,
    CountingVocoder,
    log_mel_distance,
    random_tiny_hifigan,
    step_together,
    stream,
)

from echostream_fairseq.data.units import LogMelUnitFeatures
from echostream_fairseq.vocoder import (
    GriffinLimUnitVocoder,
    IncrementalVocoder,
    VocoderError,
)


def test_fairseq_checkpoint_loads_and_matches_the_generator(hifigan):
    vocoder, _, _, generator = hifigan
    units = torch.randint(0, NUM_UNITS, (7,))
    audio = vocoder(units)
    assert audio.shape == (7 * HOP,)
    generator.eval()
    with torch.no_grad():
        expected = generator(code=units[None]).reshape(-1)  # same weights, weight norm still on
    assert torch.allclose(audio, expected, atol=1e-5)


def test_fairseq_vocoder_class_gives_the_same_audio(hifigan):
    from fairseq.models.text_to_speech.vocoder import CodeHiFiGANVocoder

    vocoder, ckpt, cfg, _ = hifigan
    with open(cfg) as f:
        fairseq_vocoder = CodeHiFiGANVocoder(ckpt, json.load(f))
    units = torch.randint(0, NUM_UNITS, (9,))
    assert torch.allclose(vocoder(units, dur_prediction=True), fairseq_vocoder({"code": units[None]}, True), atol=1e-6)


def test_duration_prediction_sets_the_length(hifigan):
    vocoder = hifigan[0]
    units = torch.tensor([3, 5, 7, 3, 1])
    durations = vocoder.durations(units)
    assert durations.shape == (5,) and bool((durations >= 1).all())
    assert vocoder(units, dur_prediction=True).numel() == int(durations.sum()) * HOP


def test_griffin_lim_reproduces_the_centroid_spectra(speech_units):
    model, units = speech_units
    vocoder = GriffinLimUnitVocoder(model)
    audio = vocoder.synthesize_frames(units)
    assert audio.shape == (units.numel() * HOP,)
    # the synthesised speech's log-mel frames are close to the centroids it was made from
    frames = LogMelUnitFeatures()(audio)[: units.numel()]
    target = model["centroids"][units]
    loud = target.max(dim=1).values > target.max() - 8  # skip silence, where log-mel is floor noise
    assert float((frames - target)[loud].abs().mean()) < 0.6
    again = GriffinLimUnitVocoder(model)(units, dur_prediction=False)
    assert torch.equal(again, audio)  # deterministic


def test_griffin_lim_uses_mean_train_durations(speech_units):
    model, _ = speech_units
    vocoder = GriffinLimUnitVocoder(model)
    units = torch.tensor([0, 5, 9])
    expected = torch.round(model["mean_duration"][units]).long().clamp(min=1)
    assert torch.equal(vocoder.durations(units), expected)
    assert vocoder(units, dur_prediction=True).numel() == int(expected.sum()) * HOP


def chunks_of(total, seed, low, high):
    g = torch.Generator().manual_seed(seed)
    sizes = []
    while sum(sizes) < total:
        sizes.append(min(int(torch.randint(low, high + 1, (1,), generator=g)), total - sum(sizes)))
    return sizes


@pytest.mark.parametrize("kind", ["hifigan", "griffin_lim"])
def test_incremental_audio_is_close_to_one_shot(kind, hifigan, speech_units):
    model, units = speech_units
    vocoder = hifigan[0] if kind == "hifigan" else GriffinLimUnitVocoder(model)
    units = units % vocoder.num_units
    one_shot = vocoder.synthesize_frames(units)
    sizes = chunks_of(units.numel(), seed=1, low=8, high=24)
    incremental, _ = stream(vocoder, units, sizes, dur_prediction=False)
    naive, _ = stream(vocoder, units, sizes, dur_prediction=False, left_context=0, crossfade=0)
    assert incremental.numel() == one_shot.numel()
    close, apart = log_mel_distance(incremental, one_shot), log_mel_distance(naive, one_shot)
    # bound: 0.06 natural-log units per mel bin (about 0.26 dB); chunks without context are
    # measurably further away, so the bound separates the two
    assert close < 0.06, close
    assert apart > 1.5 * close, (close, apart)


def test_left_context_beyond_the_receptive_field_changes_nothing(speech_units, tmp_path):
    """The default left context (8 frames) gives the audio of a longer one: a sample of the
    ``tiny`` preset's HiFi-GAN depends on about 7 frames to its left."""
    _, units = speech_units
    vocoder = random_tiny_hifigan(tmp_path)
    sizes = chunks_of(units.numel(), seed=2, low=4, high=12)
    default, _ = stream(vocoder, units, sizes, dur_prediction=False)
    longer, _ = stream(vocoder, units, sizes, dur_prediction=False, left_context=32)
    shorter, _ = stream(vocoder, units, sizes, dur_prediction=False, left_context=2)
    assert (default - longer).abs().max() < 1e-5
    assert (shorter - longer).abs().max() > 1e-3  # too short a context does change it


def test_incremental_durations_differ_only_where_right_context_was_missing(hifigan):
    vocoder = hifigan[0]
    torch.manual_seed(3)
    units = torch.randint(0, NUM_UNITS, (40,))
    sizes = [6, 9, 5, 12, 8]
    inc = IncrementalVocoder(vocoder, dur_prediction=True, duration_context=8)
    state, got = inc.initial_state(), []
    for n in sizes:
        new = units[sum(len(g) for g in got) :][:n]
        got.append(vocoder.durations(torch.cat([state.context_units, new]))[state.context_units.numel() :])
        _, state = inc.step(new, state)
    got = torch.cat(got)
    one_shot = vocoder.durations(units)
    # the predictor's two kernel-3 convolutions see two units to each side: only the last two
    # units of each call lack their right context
    boundary = torch.zeros(40, dtype=torch.bool)
    end = 0
    for n in sizes:
        end += n
        boundary[end - 2 : end] = True
    boundary[-2:] = False  # the end of the stream has no right context in one-shot either
    assert torch.equal(got[~boundary], one_shot[~boundary])


def test_incremental_cost_and_state_stay_flat_over_ten_minutes():
    vocoder = CountingVocoder()
    inc = IncrementalVocoder(vocoder, crossfade=640, dur_prediction=False)  # default left_context: 8
    state = inc.initial_state()
    units = torch.arange(30000) % 100  # 10 minutes of 20 ms frames, in calls of 25
    sizes = []
    for start in range(0, units.numel(), 25):
        audio, state = inc.step(units[start : start + 25], state)
        sizes.append((state.context_frames.numel(), state.pending.numel(), state.context_units.numel()))
    assert len(vocoder.calls) == 1200
    assert vocoder.calls[0] == 25 and set(vocoder.calls[1:]) == {8 + 25}
    assert set(sizes) == {(8, 640, 8)}
    audio, state = inc.step([], state, finish=True)
    assert state.emitted_samples == 30000 * HOP and audio.numel() == 640


def test_incremental_empty_call_and_finish():
    vocoder = CountingVocoder()
    inc = IncrementalVocoder(vocoder, left_context=4, crossfade=320, dur_prediction=True)
    state = inc.initial_state()
    audio, same = inc.step([], state)
    assert audio.numel() == 0 and same is state and vocoder.calls == []
    audio, state = inc.step([5, 6], state)  # durations 3 + 1 frames, 320 samples held back
    assert audio.numel() == 4 * HOP - 320
    audio, state = inc.step([], state, finish=True)
    assert audio.numel() == 320 and state.pending.numel() == 0


def test_incremental_rejects_a_crossfade_longer_than_its_context():
    with pytest.raises(VocoderError, match="crossfade 1000 samples needs at least 4 frames of left context"):
        IncrementalVocoder(CountingVocoder(), left_context=2, crossfade=1000)


def test_griffin_lim_synthesises_a_single_frame(speech_units):
    model, units = speech_units
    vocoder = GriffinLimUnitVocoder(model)
    assert vocoder.synthesize_frames(units[:1]).shape == (HOP,)
    audio, _ = stream(vocoder, units[:5], [1, 1, 3], dur_prediction=False, left_context=0, crossfade=0)
    assert audio.shape == (5 * HOP,)


def test_length_buckets_round_every_call_up_with_earlier_frames():
    vocoder = CountingVocoder()
    inc = IncrementalVocoder(vocoder, left_context=12, crossfade=640, dur_prediction=False, length_bucket=8)
    state, emitted = inc.initial_state(), 0
    sizes = [5, 9, 13, 30, 7, 1, 22, 16, 3, 11]
    for n in sizes:
        audio, state = inc.step(torch.arange(n) % 100, state)
        emitted += audio.numel()
        assert state.context_frames.numel() <= 12 + 7
    # first calls: as much history as exists; from the fourth on, 12 to 19 frames of it, to a multiple of 8
    assert vocoder.calls[:3] == [5, 5 + 9, 14 + 13]
    assert all(c % 8 == 0 for c in vocoder.calls[3:]), vocoder.calls
    assert [c - n for c, n in zip(vocoder.calls[3:], sizes[3:])] == [min(19, 12 + (-(12 + n)) % 8) for n in sizes[3:]]
    assert emitted + state.pending.numel() == sum(sizes) * HOP
    assert inc.warm_up(64) == 11 and vocoder.calls[-11:] == list(range(8, 89, 8))
    assert IncrementalVocoder(CountingVocoder(), dur_prediction=False).warm_up() == 0  # no buckets: nothing to prepare
    batched = CountingVocoder()  # and every sub-batch size step_batch can form: 1, 2 and 4 rows
    assert (
        IncrementalVocoder(batched, left_context=12, dur_prediction=False, length_bucket=8, max_batch=4).warm_up(64)
        == 11
    )
    assert batched.calls == [n for rows in (1, 2, 4) for n in range(8, 89, 8) for _ in range(rows)]
    with pytest.raises(VocoderError, match="length_bucket must be >= 1, got 0"):
        IncrementalVocoder(vocoder, length_bucket=0)


def test_length_buckets_leave_the_audio_as_it_was(speech_units, tmp_path):
    """A CodeHiFiGAN's buckets (8 frames) only add context beyond the receptive field."""
    _, units = speech_units
    vocoder = random_tiny_hifigan(tmp_path)
    assert vocoder.length_bucket == 8
    sizes = chunks_of(units.numel(), seed=4, low=3, high=17)
    bucketed, _ = stream(vocoder, units, sizes, dur_prediction=False)
    plain, _ = stream(vocoder, units, sizes, dur_prediction=False, length_bucket=1)
    assert bucketed.numel() == plain.numel() and (bucketed - plain).abs().max() < 1e-5


def test_warm_up_keeps_the_faster_convolution_and_the_same_audio(speech_units, tmp_path):
    _, units = speech_units
    vocoder = random_tiny_hifigan(tmp_path)
    sizes = chunks_of(units.numel(), seed=5, low=3, high=17)
    reference, _ = stream(vocoder, units, sizes, dur_prediction=False)
    inc = IncrementalVocoder(vocoder, dur_prediction=False)
    assert inc.warm_up(16) == 4  # lengths 8 ... 32 (the context and up to 7 frames to a bucket, and 16 new)
    assert isinstance(vocoder.onednn, bool) and inc.length_bucket == (8 if vocoder.onednn else 1)
    chosen, _ = stream(vocoder, units, sizes, dur_prediction=False, length_bucket=inc.length_bucket)
    assert (chosen - reference).abs().max() < 1e-4


def test_streams_synthesised_in_shared_calls_equal_each_stream_alone(speech_units, tmp_path):
    """step_batch: calls of equal length share one generator run, in power-of-two sub-batches."""
    from echostream_fairseq.vocoder.call_groups import power_of_two_groups

    assert [len(g) for g in power_of_two_groups(list(range(13)), 8)] == [8, 4, 1]
    assert [len(g) for g in power_of_two_groups(list(range(7)), 8)] == [4, 2, 1]
    assert power_of_two_groups([3, 5], 1) == [[3], [5]]
    _, units = speech_units
    vocoder = random_tiny_hifigan(tmp_path)
    streams = [torch.roll(units, -17 * k)[:120] for k in range(6)]  # six different unit streams
    assert units.numel() >= 120
    sizes = [
        [8, 8, 0, 8, 16, 8, 24, 48],
        [8, 8, 8, 0, 16, 8, 24, 48],
        [16, 0, 8, 8, 16, 8, 24, 40],
        [8, 8, 0, 8, 16, 8, 24, 48],
        [3, 5, 9, 0, 31, 2, 40, 30],
        [8, 8, 8, 8, 8, 8, 8, 64],
    ]
    alone = [stream(vocoder, s, n, dur_prediction=False)[1] for s, n in zip(streams, sizes)]
    shapes = []
    run = vocoder.synthesize_frames_batch

    def recording(frames):
        shapes.append(tuple(frames.shape))
        return run(frames)

    vocoder.synthesize_frames_batch = recording
    step_together(IncrementalVocoder(vocoder, dur_prediction=False, max_batch=4), streams, sizes, alone)
    assert max(b for b, _ in shapes) == 4 and all(b in (1, 2, 4) for b, _ in shapes)
    assert len(shapes) < sum(1 for row in sizes for n in row if n)  # calls were shared
    with pytest.raises(VocoderError, match="max_batch must be a power of two, got 3"):
        IncrementalVocoder(vocoder, dur_prediction=False, max_batch=3)


def test_durations_of_many_streams_are_predicted_together_and_equal_each_stream_alone(hifigan):
    """step_batch with duration prediction: the predictor runs once per call, over every speaking
    stream's (context + new units) right-padded, and every stream gets the durations and audio it
    gets alone."""
    vocoder = hifigan[0]
    torch.manual_seed(4)
    streams = [torch.randint(0, NUM_UNITS, (40,)) for _ in range(5)]
    sizes = [[4, 6, 0, 5, 9, 16], [4, 6, 3, 5, 9, 13], [2, 8, 3, 0, 12, 15], [4, 6, 3, 5, 9, 13], [7, 1, 1, 1, 10, 20]]
    alone = [stream(vocoder, s, n, dur_prediction=True)[1] for s, n in zip(streams, sizes)]
    rows = []
    run = vocoder.durations_padded

    def recording(units, lengths):
        rows.append(sorted(lengths.tolist()))
        return run(units, lengths)

    vocoder.durations_padded = recording
    step_together(IncrementalVocoder(vocoder, dur_prediction=True, max_batch=4), streams, sizes, alone)
    assert [len(r) for r in rows] == [5, 5, 4, 4, 5, 5]
    assert rows[2] == [1 + 8, 3 + 8, 3 + 8, 3 + 8]  # the new units after 8 units of context, unequal


def test_padded_durations_equal_each_row_alone(hifigan):
    vocoder = hifigan[0]
    torch.manual_seed(5)
    rows = [torch.randint(0, NUM_UNITS, (n,)) for n in (9, 3, 6)]
    padded = torch.stack([torch.nn.functional.pad(r, (0, 9 - r.numel())) for r in rows])
    got = vocoder.durations_padded(padded, torch.tensor([9, 3, 6]))
    for r, row in zip(rows, got):
        assert torch.equal(row[: r.numel()], vocoder.durations(r))
        assert bool((row[r.numel() :] >= 1).all())


class TimedVocoder(CountingVocoder):
    """Silence that takes ``cost(rows)`` seconds per call (oneDNN) and twice that without it."""

    length_bucket = 8
    onednn = True

    def __init__(self, cost):
        super().__init__()
        self.cost = cost
        # allocated once: a fresh buffer per call would add the page faults of a large allocation
        # to the set time (milliseconds on a virtual machine)
        self.silence = torch.zeros(8, 40 * self.frame_hop)

    def synthesize_frames_batch(self, frames):
        time.sleep(self.cost(frames.shape[0]) * (1 if self.onednn else 2))
        return self.silence[: frames.shape[0], : frames.shape[1] * self.frame_hop]


@pytest.mark.parametrize(
    "cost, chosen",
    [
        (lambda rows: 0.004 + 0.001 * rows, 8),  # a fixed cost per call: the largest sub-batch is cheapest per stream
        (lambda rows: 0.002 * rows**2, 1),  # cost growing faster than the streams: batching loses
        (lambda rows: 0.004 + 0.001 * rows if rows <= 2 else 0.002 * rows**2, 2),  # larger calls slow down
    ],
)
def test_warm_up_picks_the_sub_batch_that_costs_least_per_stream(cost, chosen):
    inc = IncrementalVocoder(TimedVocoder(cost), dur_prediction=False, max_batch=8)
    inc.warm_up(8)
    assert inc.vocoder.onednn and inc.length_bucket == 8
    assert inc.max_batch == chosen
