"""Stacking the streaming states of several streams into one batch, and splitting it back.

Every streaming state in the package is explicit data: a frozen dataclass (or tuple, list) whose
tensors are batch-first and whose other fields (counters, flags, signatures) say where the stream
stands. Streams whose states have the same *layout* -- the same non-tensor fields and the same
tensor shapes apart from the batch dimension -- can be stepped as one batch: their tensors are
concatenated along dimension 0, the step runs once, and the result is split again. Streams at
different points (a fresh one whose left context is still filling, one that has just started a
sentence) simply have different layouts and are stepped in different groups; in steady state the
attention windows are full and every stream of a chunk size shares one layout.

A field declared with :func:`counter_field` (``frames``: how much a stream has consumed) counts
and never changes what a step computes, so it is not part of the layout: streams that started at
different times still stack. The stack starts such a counter at zero, and :func:`split_state`
adds each stream's own count back (``like``: the states that were stacked).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Dict, Hashable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

__all__ = ["counter_field", "state_layout", "stack_states", "split_state", "group_by_layout"]

_COUNTER = "echostream_batch_counter"


def counter_field():
    """A dataclass field that only counts (see the module docstring)."""
    return dataclasses.field(metadata={_COUNTER: True})


def _is_counter(f) -> bool:
    return bool(f.metadata.get(_COUNTER))


@functools.lru_cache(maxsize=None)
def _fields(cls: type) -> Optional[Tuple[Tuple[str, bool], ...]]:
    """``(name, is a counter)`` of each field of a dataclass type, None for any other type (the
    streams of a tick walk the same few types every step)."""
    if not dataclasses.is_dataclass(cls):
        return None
    return tuple((f.name, _is_counter(f)) for f in dataclasses.fields(cls))


def state_layout(state: Any) -> Hashable:
    """A hashable description of everything but the batch: equal layouts can be stacked."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return ("T", tuple(state.shape[1:]), state.dtype, state.device.type)
    fields = _fields(type(state))
    if fields is not None:
        return (type(state).__name__,) + tuple(
            "counter" if counter else state_layout(getattr(state, name)) for name, counter in fields
        )
    if isinstance(state, (tuple, list)):
        return (type(state).__name__,) + tuple(state_layout(x) for x in state)
    return ("V", state)


def stack_states(states: Sequence[Any]) -> Any:
    """States of one layout -> one state whose tensors hold every stream's rows, in order."""
    if not states:
        raise ValueError("no states to stack")
    first = states[0]
    if len(states) == 1:
        return first
    if first is None:
        return None
    if isinstance(first, Tensor):
        return _rows_together(states)
    fields = _fields(type(first))
    if fields is not None:
        return type(first)(
            **{name: 0 if counter else stack_states([getattr(s, name) for s in states]) for name, counter in fields}
        )
    if isinstance(first, (tuple, list)):
        return type(first)(stack_states([s[i] for s in states]) for i in range(len(first)))
    if any(s != first for s in states[1:]):
        raise ValueError(f"states of different layouts cannot be stacked: {first!r} vs {states[1:]!r}")
    return first


def _rows_together(parts: Sequence[Tensor]) -> Tensor:
    """``torch.cat(parts)``; when the parts are consecutive row blocks of one storage, in order (the
    same streams stepped again after :func:`split_state`), a view of those rows instead of a copy.
    (Views made under ``torch.inference_mode`` do not know their base, so the storage tells.)"""
    first = parts[0]
    storage, at, rows = first.untyped_storage().data_ptr(), first.storage_offset(), first.stride(0)
    for p in parts:
        if (
            p.storage_offset() != at
            or p.stride() != first.stride()
            or p.shape[1:] != first.shape[1:]
            or p.dtype != first.dtype
            or p.device != first.device
            or p.untyped_storage().data_ptr() != storage
        ):
            return torch.cat(list(parts), dim=0)
        at += p.size(0) * rows
    return first.as_strided(
        (sum(p.size(0) for p in parts),) + tuple(first.shape[1:]), first.stride(), first.storage_offset()
    )


def split_state(state: Any, sizes: Sequence[int], like: Optional[Sequence[Any]] = None) -> List[Any]:
    """The inverse of :func:`stack_states`: one state per stream, ``sizes[i]`` rows each.

    ``like``: the states that were stacked (a step may have advanced them since); each stream's
    counters are its own count in ``like`` plus what the stacked state counted.
    """
    n = len(sizes)
    if n == 1:
        return [state]
    like = [None] * n if like is None else list(like)
    if state is None:
        return [None] * n
    if isinstance(state, Tensor):
        return list(torch.split(state, list(sizes), dim=0))
    fields = _fields(type(state))
    if fields is not None:
        parts = {}
        for name, counter in fields:
            value = getattr(state, name)
            before = [None if x is None else getattr(x, name) for x in like]
            if counter:
                parts[name] = [value + (b or 0) for b in before]
            else:
                parts[name] = split_state(value, sizes, before)
        return [type(state)(**{name: parts[name][i] for name in parts}) for i in range(n)]
    if isinstance(state, (tuple, list)):
        columns = []
        for k, x in enumerate(state):
            before = [y[k] if isinstance(y, (tuple, list)) and k < len(y) else None for y in like]
            columns.append(split_state(x, sizes, before))
        return [type(state)(column[i] for column in columns) for i in range(n)]
    return [state] * n


def group_by_layout(layouts: Sequence[Hashable]) -> List[List[int]]:
    """Indices grouped by equal layout, groups in order of first appearance."""
    groups: Dict[Hashable, List[int]] = {}
    for i, layout in enumerate(layouts):
        groups.setdefault(layout, []).append(i)
    return list(groups.values())
