"""Attention masks for simultaneous training.

All masks are boolean with ``True`` meaning "may attend", shaped ``[B or 1, T_query, T_key]``.

* :func:`causal_mask`: each position sees itself and at most ``left_context`` earlier ones.
* :func:`streaming_mt_mask`: which encoder frames the MT decoder may attend when predicting each
  target token, reproducing what the CTC READ/WRITE policy would have read by then (StreamSpeech's
  streaming mask; lag ``k1``, stride ``n1``).
* :func:`waitk_text_mask`: which text states each upsampled unit-decoder position may attend
  (wait-k over text, lag ``k2``, stride ``n2``).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

__all__ = ["causal_mask", "counts_from", "streaming_mt_mask", "waitk_text_mask"]


def causal_mask(length: int, left_context: int = 0, device=None, num_queries: Optional[int] = None) -> Tensor:
    """``[1, Q, T]``: position ``i`` sees ``j`` for ``i - left_context <= j <= i`` (0: no left bound).

    The rows are the last ``num_queries`` positions (default all ``T``): the new positions of an
    incremental step over ``T - Q`` cached ones.
    """
    q = length if num_queries is None else num_queries
    i = torch.arange(length - q, length, device=device).unsqueeze(1)
    j = torch.arange(length, device=device).unsqueeze(0)
    mask = j <= i
    if left_context > 0:
        mask = mask & (j >= i - left_context)
    return mask.unsqueeze(0)


def streaming_mt_mask(
    asr_counts: Tensor,
    st_counts: Tensor,
    num_target: int,
    lengths: Tensor,
    k1: int = 0,
    n1: int = 1,
    chunk_length: int = 0,
) -> Tensor:
    """The source prefix each target position may attend under the CTC READ/WRITE policy.

    Decoder input position ``i`` (0 is the begin-of-sentence input) predicts target token
    ``i + 1``. The policy writes it once the ST CTC prefix holds ``need_i = (i // n1 + 1) * n1 + k1``
    tokens, at a frame where the ASR CTC prefix has just grown (the policy reads until a new source
    token is recognised). The read prefix then extends to the end of that frame's chunk, because
    the encoder delivers whole chunks. Where the condition is never met the whole source is
    visible (the policy reads to the end before finishing).

    Args:
        asr_counts, st_counts: ``[B, S]`` from
            :func:`~echostream_fairseq.modules.ctc.ctc_emission_counts`.
        num_target: decoder positions ``T``.
        lengths: ``[B]`` valid source frames.
        k1: lag in extra ST tokens; ``n1``: write stride.
        chunk_length: encoder chunk (0: frame-level, no rounding).

    Returns:
        ``[B, T, S]`` bool.
    """
    if n1 < 1 or k1 < 0:
        raise ValueError(f"streaming mask needs n1 >= 1 and k1 >= 0, got n1={n1}, k1={k1}")
    B, S = st_counts.shape
    device = st_counts.device
    i = torch.arange(num_target, device=device)
    need = (i // n1 + 1) * n1 + k1  # [T]
    asr_grew = torch.zeros_like(asr_counts, dtype=torch.bool)
    asr_grew[:, 0] = asr_counts[:, 0] > 0
    asr_grew[:, 1:] = asr_counts[:, 1:] > asr_counts[:, :-1]
    frame = torch.arange(S, device=device)
    last = (lengths - 1).clamp(min=0)  # [B]
    asr_grew = asr_grew | (frame.unsqueeze(0) == last.unsqueeze(1))  # the end of the source always writes
    ready = (st_counts.unsqueeze(1) >= need.view(1, -1, 1)) & asr_grew.unsqueeze(1)  # [B, T, S]
    ready = ready | (frame.view(1, 1, -1) >= last.view(-1, 1, 1))
    # first frame where the policy writes token i (argmax returns the first maximum)
    write_at = ready.int().argmax(dim=-1)  # [B, T]
    end = write_at + 1
    if chunk_length > 0:
        end = (end + chunk_length - 1) // chunk_length * chunk_length
    end = torch.minimum(end, lengths.unsqueeze(1))
    return frame.view(1, 1, -1) < end.unsqueeze(-1)


def counts_from(counts: Tensor, start: Tensor) -> Tensor:
    """CTC emission counts ``[B, S]`` restarted at frame ``start[b]`` (0 before it)."""
    before = counts.gather(1, (start - 1).clamp(min=0).unsqueeze(1)) * (start > 0).unsqueeze(1)
    frames = torch.arange(counts.size(1), device=counts.device)
    return torch.where(frames.unsqueeze(0) >= start.unsqueeze(1), counts - before, torch.zeros_like(counts))


def waitk_text_mask(
    num_text: int, upsample_rate: int, k2: int = 0, n2: int = 1, lengths: Optional[Tensor] = None
) -> Tensor:
    """Text states each upsampled unit-decoder position may attend (wait-k over text).

    Position ``j`` belongs to text state ``i = j // upsample_rate`` and sees text states
    ``< (i // n2 + 1) * n2 + k2`` (at least one, at most the text length).

    Args:
        num_text: text states ``L``; positions are ``L * upsample_rate``.
        lengths: ``[B]`` valid text states (``None``: all ``L``).

    Returns:
        ``[B or 1, L * r, L]`` bool.
    """
    if n2 < 1 or k2 < 0 or upsample_rate < 1:
        raise ValueError(f"wait-k mask needs n2 >= 1, k2 >= 0, upsample_rate >= 1; got {n2}, {k2}, {upsample_rate}")
    text = torch.arange(num_text * upsample_rate) // upsample_rate
    limit = ((text // n2 + 1) * n2 + k2).clamp(min=1).unsqueeze(0)  # [1, L*r]
    if lengths is not None:
        limit = torch.minimum(limit.to(lengths.device), lengths.unsqueeze(1).clamp(min=1))
    key = torch.arange(num_text, device=limit.device)
    return key.view(1, 1, -1) < limit.unsqueeze(-1)
