"""Exact values of the simultaneous-training masks and the greedy CTC helpers."""

import pytest
import torch

from echostream_fairseq.modules.ctc import (
    CTC_BLANK,
    ctc_blank_frames,
    ctc_blank_run,
    ctc_collapse,
    ctc_emission_counts,
    ctc_greedy,
    ctc_labels,
)
from echostream_fairseq.modules.masks import causal_mask, streaming_mt_mask, waitk_text_mask


def _one_hot_logits(best, vocab=5):
    """Logits whose argmax per frame is ``best`` ``[B, T]``."""
    best = torch.tensor(best)
    return torch.nn.functional.one_hot(best, vocab).float()


def test_causal_mask_with_and_without_window():
    full = causal_mask(4)[0].int().tolist()
    assert full == [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]
    window = causal_mask(4, left_context=1)[0].int().tolist()
    assert window == [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]


def test_ctc_greedy_collapses_repeats_drops_blanks_and_bans():
    logits = _one_hot_logits([[0, 3, 3, 0, 3, 4, 4, 1]])
    assert ctc_greedy(logits, torch.tensor([8])) == [[3, 3, 4, 1]]
    assert ctc_greedy(logits, torch.tensor([5])) == [[3, 3]]
    # banning 1 makes that frame take the next best, here index 0 (blank) after the -inf
    assert ctc_greedy(logits, torch.tensor([8]), banned=[1]) == [[3, 3, 4]]


def test_labels_of_several_streams_at_once_collapse_and_count_pauses_as_each_alone():
    """One argmax over two streams' new frames, then each stream's tokens (continuing across the
    chunk boundary) and its trailing blank run."""
    logits = torch.full((2, 4, 6), -5.0)
    for row, labels in enumerate([[3, 3, 0, 0], [0, 0, 0, 0]]):
        for t, label in enumerate(labels):
            logits[row, t, label] = 5.0
    logits[0, 1, 5] = 9.0  # the best, but banned
    labels = ctc_labels(logits, banned=[5])
    assert labels == [[3, 3, 0, 0], [0, 0, 0, 0]]
    assert ctc_collapse(labels[0], previous=3) == ([], 0, ())  # 3 continued from the last chunk
    assert ctc_collapse(labels[0], previous=CTC_BLANK) == ([3], 0, ())
    assert [ctc_blank_frames(row, run=7) for row in labels] == [2, 11]
    assert [ctc_blank_run(logits[row], 7, [5]) for row in range(2)] == [2, 11]


def test_ctc_emission_counts_match_greedy_lengths_and_ignore_padding():
    logits = _one_hot_logits([[0, 3, 3, 0, 3, 4, 4, 2], [2, 2, 0, 2, 0, 0, 3, 3]])
    padding = torch.tensor([[False] * 8, [False] * 6 + [True] * 2])
    counts = ctc_emission_counts(logits, padding)
    assert counts.tolist() == [[0, 1, 1, 1, 2, 3, 3, 4], [1, 1, 1, 2, 2, 2, 2, 2]]


def test_streaming_mt_mask_follows_the_policy():
    # 10 source frames; ASR prefix grows at frames 1, 4, 7; ST prefix grows at frames 2, 5, 8
    asr = torch.tensor([[0, 1, 1, 1, 2, 2, 2, 3, 3, 3]])
    st = torch.tensor([[0, 0, 1, 1, 1, 2, 2, 2, 3, 3]])
    lengths = torch.tensor([10])
    mask = streaming_mt_mask(asr, st, num_target=4, lengths=lengths, k1=0, n1=1)
    # token i needs i+1 ST tokens at an ASR-growth frame: frames 4, 7, then the end (9) twice
    assert mask[0].sum(-1).tolist() == [5, 8, 10, 10]
    assert mask[0, 0].tolist() == [True] * 5 + [False] * 5
    # lag k1=1 needs one more ST token
    assert streaming_mt_mask(asr, st, 4, lengths, k1=1)[0].sum(-1).tolist() == [8, 10, 10, 10]
    # stride n1=2: tokens 0 and 1 need 2 ST tokens, 2 and 3 need 4
    assert streaming_mt_mask(asr, st, 4, lengths, n1=2)[0].sum(-1).tolist() == [8, 8, 10, 10]
    # chunks of 3 frames: the read prefix is rounded up to the chunk end
    assert streaming_mt_mask(asr, st, 4, lengths, chunk_length=3)[0].sum(-1).tolist() == [6, 9, 10, 10]


def test_streaming_mt_mask_respects_row_lengths():
    asr = torch.zeros(2, 6, dtype=torch.long)
    st = torch.zeros(2, 6, dtype=torch.long)  # nothing recognised: read to the end of each row
    mask = streaming_mt_mask(asr, st, 2, torch.tensor([6, 4]))
    assert mask.sum(-1).tolist() == [[6, 6], [4, 4]]


def test_streaming_mt_mask_rejects_bad_stride():
    with pytest.raises(ValueError, match="n1 >= 1"):
        streaming_mt_mask(
            torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long), 2, torch.tensor([3]), n1=0
        )


def test_waitk_text_mask_exact():
    m = waitk_text_mask(num_text=3, upsample_rate=2, k2=0, n2=1)[0].int().tolist()
    assert m == [[1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 0], [1, 1, 1], [1, 1, 1]]
    m = waitk_text_mask(3, 2, k2=1, n2=1)[0].int().tolist()
    assert m == [[1, 1, 0], [1, 1, 0], [1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 1]]
    m = waitk_text_mask(4, 1, k2=0, n2=2)[0].int().tolist()
    assert m == [[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]]
    lengths = torch.tensor([3, 1])
    m = waitk_text_mask(3, 1, k2=2, n2=1, lengths=lengths)
    assert m.sum(-1).tolist() == [[3, 3, 3], [1, 1, 1]]
