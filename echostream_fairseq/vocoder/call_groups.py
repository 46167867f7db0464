"""How the incremental vocoder groups streams into calls: runs of near-equal lengths, power-of-two
row counts, and for a causal generator the cheapest cut (pure functions of the streams' lengths).
"""

from __future__ import annotations

from typing import Dict, List

__all__ = ["runs_within", "next_power_of_two", "cheapest_calls", "power_of_two_groups"]


def runs_within(lengths: Dict[int, int], max_padding: int, largest: int) -> List[List[int]]:
    """The keys of ``lengths`` (stream -> call frames), longest first, cut into runs of at most
    ``largest`` whose lengths lie within ``max_padding`` of the run's first (0: equal lengths)."""
    runs: List[List[int]] = []
    for i in sorted(lengths, key=lambda i: (-lengths[i], i)):
        if runs and len(runs[-1]) < largest and lengths[runs[-1][0]] - lengths[i] <= max_padding:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def next_power_of_two(n: int) -> int:
    return 1 << (n - 1).bit_length()


def cheapest_calls(frames: Dict[int, int], largest: int, bucket: int, call_frames: int) -> List[List[int]]:
    """The streams of ``frames`` (stream -> frames to synthesise) cut into causal vocoder calls at the
    least total cost: a call of ``rows`` streams costs ``call_frames`` plus its padded frames (the
    rows rounded up to a power of two, the longest rounded up to the ``bucket``). The calls take
    runs of the streams sorted longest first (at most ``largest`` each); a small dynamic programme."""
    order = sorted(frames, key=lambda i: (-frames[i], i))
    cost = [0.0] + [float("inf")] * len(order)
    cut = [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        for start in range(max(0, end - largest), end):
            width = -(-frames[order[start]] // bucket) * bucket
            total = cost[start] + call_frames + next_power_of_two(end - start) * width
            if total < cost[end]:
                cost[end], cut[end] = total, start
    calls, end = [], len(order)
    while end:
        calls.append(order[cut[end] : end])
        end = cut[end]
    return calls[::-1]


def power_of_two_groups(members: List[int], largest: int) -> List[List[int]]:
    """``members`` cut into groups of ``largest`` (a power of two), the rest into smaller powers of two."""
    groups, at = [], 0
    size = largest
    while at < len(members):
        while size > len(members) - at:
            size //= 2
        groups.append(members[at : at + size])
        at += size
    return groups
