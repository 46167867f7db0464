"""Vocoder calls of unequal length in one batch: right-padded rows, masked, equal each row alone."""

import pytest
import torch
from vocoders import HOP, CountingVocoder, random_tiny_hifigan, step_together, stream

from echostream_fairseq.vocoder.call_groups import runs_within
from echostream_fairseq.vocoder.config import VocoderError
from echostream_fairseq.vocoder.incremental import IncrementalVocoder


def ragged_streams():
    """Five streams of 120 units (seed 1) and the units each gives per tick: some ticks none, the
    streams' calls of unequal length."""
    torch.manual_seed(1)
    streams = [torch.randint(0, 16, (120,)) for _ in range(5)]
    sizes = [
        [8, 8, 0, 8, 16, 8, 24, 48],
        [3, 5, 9, 0, 31, 2, 40, 30],
        [16, 0, 8, 8, 16, 8, 24, 40],
        [5, 7, 8, 9, 11, 13, 17, 50],
        [8, 8, 8, 8, 8, 8, 8, 64],
    ]
    return streams, sizes


@pytest.mark.parametrize("onednn", [True, False])
def test_padded_rows_synthesise_as_each_row_alone(tmp_path, onednn):
    vocoder = random_tiny_hifigan(tmp_path)
    vocoder.onednn = onednn
    torch.manual_seed(0)
    lengths = torch.tensor([24, 40, 16, 33])
    frames = torch.randint(0, 16, (4, 40))
    padded = vocoder.synthesize_frames_padded(frames, lengths)
    assert padded.shape == (4, 40 * vocoder.frame_hop)
    for row, n in enumerate(lengths.tolist()):
        alone = vocoder.synthesize_frames(frames[row, :n])
        assert alone.abs().max() > 1e-3  # not silence
        assert torch.allclose(padded[row, : n * vocoder.frame_hop], alone, rtol=0, atol=1e-6), row
        assert not padded[row, n * vocoder.frame_hop :].any()
    # without the masks the padding would reach into the shorter rows' audio
    plain = vocoder.synthesize_frames_batch(frames)
    assert (plain[0, : 24 * vocoder.frame_hop] - vocoder.synthesize_frames(frames[0, :24])).abs().max() > 1e-3


def test_the_default_padded_synthesis_runs_row_by_row():
    vocoder = CountingVocoder()
    assert not vocoder.batches_padded
    audio = vocoder.synthesize_frames_padded(torch.zeros(3, 10, dtype=torch.long), torch.tensor([10, 4, 7]))
    assert audio.shape == (3, 10 * HOP) and vocoder.calls == [10, 4, 7]
    # a vocoder that cannot batch padded rows keeps calls of equal length only
    assert IncrementalVocoder(vocoder, dur_prediction=False, max_batch=4, max_padding=16).max_padding == 0
    with pytest.raises(VocoderError, match="max_padding must be non-negative"):
        IncrementalVocoder(vocoder, max_padding=-1)


def test_runs_take_calls_longest_first_within_the_padding():
    lengths = {0: 24, 1: 40, 2: 32, 3: 24, 4: 64, 5: 40, 6: 16}
    assert runs_within(lengths, 0, 8) == [[4], [1, 5], [2], [0, 3], [6]]
    assert runs_within(lengths, 16, 8) == [[4], [1, 5, 2, 0, 3], [6]]
    assert runs_within(lengths, 16, 2) == [[4], [1, 5], [2, 0], [3, 6]]
    assert runs_within({}, 16, 8) == []


def test_streams_in_padded_shared_calls_equal_each_stream_alone(tmp_path):
    vocoder = random_tiny_hifigan(tmp_path)
    streams, sizes = ragged_streams()
    alone = [stream(vocoder, s, n, dur_prediction=False)[1] for s, n in zip(streams, sizes)]
    calls = []
    run = vocoder.synthesize_frames_padded

    def recording(frames, lengths):
        calls.append(lengths.tolist())
        return run(frames, lengths)

    vocoder.synthesize_frames_padded = recording
    step_together(IncrementalVocoder(vocoder, dur_prediction=False, max_batch=4, max_padding=16), streams, sizes, alone)
    assert calls and all(max(c) - min(c) <= 16 and len(c) in (2, 4) for c in calls), calls
    assert any(len(set(c)) > 1 for c in calls)  # rows of unequal length shared a call
