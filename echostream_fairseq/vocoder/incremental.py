"""Incremental synthesis: speak only the new units, at a cost that does not grow with the stream.

Every call synthesises ``left_context`` frames already spoken plus the new frames, and returns
audio for the new frames only. The left context is topped up with earlier frames (up to
``length_bucket - 1`` more) so that the frames of a call are a multiple of the vocoder's
``length_bucket``: a convolution library that prepares each input length once then meets only a few
lengths, and the extra context only brings the audio closer to one-shot synthesis. The last
``crossfade`` samples of each call are held back and cross-faded with their re-synthesis in the next
call, where they have right context; the final call (``finish=True``) flushes them. So the output
lags the units by ``crossfade`` samples (40 ms by default) and every call costs one synthesis of at
most ``left_context + length_bucket - 1 + new`` frames, whatever has been spoken before.

A causal vocoder (``causal``, e.g. a CodeHiFiGAN trained with ``--causal``) needs neither: each
call synthesises its new frames only, from the stream's state (the vocoder's per-layer caches),
and its audio is final at once, equal to one pass over everything spoken.

Durations of new de-duplicated units are predicted with the last ``duration_context`` units as
left context; units to the right are not known yet, so the last units of a call may get a
duration that one-shot synthesis (which sees them) would not give.

The state is explicit data (:class:`VocoderState`), passed in and returned.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from echostream_fairseq.vocoder.base import UnitVocoder, as_unit_tensor
from echostream_fairseq.vocoder.call_groups import cheapest_calls, next_power_of_two, power_of_two_groups, runs_within
from echostream_fairseq.vocoder.config import VocoderError

__all__ = [
    "VocoderState",
    "IncrementalVocoder",
    "LEFT_CONTEXT",
    "MAX_SUB_BATCH",
    "MAX_CAUSAL_SUB_BATCH",
    "MAX_ISTFT_SUB_BATCH",
    "MAX_PADDING",
    "sub_batch_limit",
]

# unit frames re-synthesised as context by default: incremental audio of trained tiny generators
# (HiFi-GAN and iSTFT) and of random full-size ones is as close to one-shot synthesis with 8 as
# with 12 or 16 (docs/results/2026-12-06-batching-runs.md); each frame costs the iSTFT generator as much as a new one
LEFT_CONTEXT = 8
# the most streams a synthesis call takes when many streams share calls (the streaming API);
# warm_up keeps the sub-batch size up to it that costs least per stream on the machine
MAX_SUB_BATCH = 8
# the same for a causal vocoder: its calls hold new frames only, so many more streams fit a call
# before it stops getting cheaper per stream (docs/decisions.md)
MAX_CAUSAL_SUB_BATCH = 32
# the same for the iSTFT generator, whose calls are matrix products over every row's frames
MAX_ISTFT_SUB_BATCH = 32
# a causal vocoder's calls are padded to a multiple of this many frames (a few shapes for oneDNN)
CAUSAL_LENGTH_BUCKET = 4
# what one call of a causal vocoder costs beyond its frames, in frames, until warm_up measures it
# (it differs by generator and machine: docs/decisions.md)
CALL_FRAMES = 64
# the most frames a shorter stream is padded by to share a call (the streaming API's setting): a call
# of its own costs more than padding that many frames into a shared one (docs/decisions.md)
MAX_PADDING = 16

logger = logging.getLogger(__name__)


def sub_batch_limit(vocoder: UnitVocoder) -> int:
    """The most streams one call takes when many streams share calls: :data:`MAX_CAUSAL_SUB_BATCH`
    for a causal vocoder, :data:`MAX_ISTFT_SUB_BATCH` for one whose calls take any number of rows
    (``any_batch_size``: the iSTFT generator), else :data:`MAX_SUB_BATCH`."""
    if vocoder.causal:
        return MAX_CAUSAL_SUB_BATCH
    return MAX_ISTFT_SUB_BATCH if vocoder.any_batch_size else MAX_SUB_BATCH


@dataclass(frozen=True)
class VocoderState:
    """What one stream's vocoder remembers between calls (all sizes bounded).

    Attributes:
        context_frames: ``[<= left_context + length_bucket - 1]`` int64, frame-level units already
            synthesised (a causal vocoder: ``[<= lookahead_frames]``, the frames given and not yet
            synthesised, waiting for the frames after them).
        context_units: ``[<= duration_context]`` int64, the last de-duplicated units given.
        pending: ``[<= crossfade]`` float, synthesised audio held back for the next cross-fade.
        emitted_samples: samples returned so far.
        synthesis: a causal vocoder's ``[S]`` state (its caches); None for any other vocoder.
    """

    context_frames: Tensor
    context_units: Tensor
    pending: Tensor
    emitted_samples: int = 0
    synthesis: Optional[Tensor] = None


class IncrementalVocoder:
    """Wraps a :class:`UnitVocoder` for streaming use.

    Args:
        vocoder: any unit vocoder.
        left_context: frames of already-spoken units re-synthesised as context (a causal vocoder
            takes none, whatever is given).
        crossfade: samples held back and cross-faded at each join (at most
            ``left_context * vocoder.frame_hop``; a causal vocoder takes none).
        dur_prediction: whether the units are de-duplicated (their durations are predicted)
            or frame-level (one unit per frame).
        duration_context: de-duplicated units kept as left context for the duration predictor.
        length_bucket: frames per call are kept a multiple of this when enough history exists
            (default: the vocoder's ``length_bucket``).
        max_batch: the most streams :meth:`step_batch` synthesises in one call (a power of two;
            1: one by one; the streaming API takes :data:`MAX_SUB_BATCH`, and :meth:`warm_up`
            lowers it to the size that costs least per stream).
        max_padding: with a vocoder that synthesises right-padded rows as one batch
            (``batches_padded``), a stream whose call is at most this many frames shorter than the
            longest of a sub-batch joins it, padded (0: only calls of equal length share one).
            A causal vocoder's calls are cut by cost instead: the calls that cost least in all,
            a call costing :attr:`call_frames` frames beyond the frames it runs.
    """

    def __init__(
        self,
        vocoder: UnitVocoder,
        left_context: int = LEFT_CONTEXT,
        crossfade: int = 640,
        dur_prediction: bool = True,
        duration_context: int = 8,
        length_bucket: Optional[int] = None,
        max_batch: int = 1,
        max_padding: int = 0,
    ) -> None:
        if max_batch < 1 or max_batch & (max_batch - 1):
            raise VocoderError(f"max_batch must be a power of two, got {max_batch}")
        if left_context < 0 or crossfade < 0 or duration_context < 0 or max_padding < 0:
            raise VocoderError("left_context, crossfade, duration_context and max_padding must be non-negative")
        self.causal = bool(getattr(vocoder, "causal", False))
        if self.causal:  # its audio is final at once: nothing to re-synthesise or cross-fade
            left_context, crossfade = 0, 0
        if length_bucket is None:
            length_bucket = getattr(vocoder, "length_bucket", 1)
            if self.causal and length_bucket > 1:  # its calls are short: padding them to 8 wastes a third
                length_bucket = CAUSAL_LENGTH_BUCKET
        if length_bucket < 1:
            raise VocoderError(f"length_bucket must be >= 1, got {length_bucket}")
        if crossfade > left_context * vocoder.frame_hop:
            raise VocoderError(
                f"crossfade {crossfade} samples needs at least {-(-crossfade // vocoder.frame_hop)} frames of "
                f"left context (left_context={left_context}, {vocoder.frame_hop} samples per frame)"
            )
        if dur_prediction:
            vocoder.check_duration_predictor()
        self.vocoder = vocoder
        self.left_context = left_context
        self.crossfade = crossfade
        self.dur_prediction = dur_prediction
        self.duration_context = duration_context
        self.length_bucket = length_bucket
        self.max_batch = max_batch
        self.max_padding = max_padding if getattr(vocoder, "batches_padded", False) else 0
        # a causal vocoder's call costs about `call_frames` frames more than the frames it runs
        # (each of its ~70 convolutions has a floor); warm_up measures it
        self.call_frames = CALL_FRAMES

    @property
    def history_frames(self) -> int:
        """Spoken frames a state keeps: the left context and what may top it up to a bucket."""
        return self.left_context + self.length_bucket - 1 if self.left_context else 0

    @torch.no_grad()
    def warm_up(self, max_new_frames: int = 64) -> int:
        """Synthesise once at every length a call with up to ``max_new_frames`` new frames can have,
        and every sub-batch size up to ``max_batch``, so that a library which prepares each input
        shape on first use (oneDNN) has done so before the first stream. Returns the number of
        lengths run (0 for a vocoder without length buckets).

        A vocoder that can also run without oneDNN (``onednn``, the CodeHiFiGAN) is then timed both
        ways on a typical call of ``min(4, max_batch)`` streams (16 for a causal one: its lead grows
        with the batch): without oneDNN there is nothing to
        prepare, so if that path is as fast, it is kept and the buckets are dropped. (One stream of
        the tiny generator runs as fast either way; batched, only oneDNN gets cheaper per stream.)
        With oneDNN kept, the typical call is timed at every sub-batch size up to ``max_batch``, and
        ``max_batch`` becomes the size that costs least per stream: on one 2-core CPU 8 streams of
        the tiny generator cost less each than 4, on another they did not. For a causal vocoder
        those timings also give :attr:`call_frames` (a call's cost beyond its frames)."""
        if self.length_bucket == 1:
            return 0
        longest = self.history_frames + max_new_frames
        lengths = range(self.length_bucket, longest + self.length_bucket, self.length_bucket)
        rows = 1
        while rows <= self.max_batch:  # every sub-batch size step_batch can form
            for n in lengths:
                self.vocoder.synthesize_frames_batch(torch.zeros(rows, n, dtype=torch.long))
            rows *= 2
        # a call's usual length: the context and about 10 new frames (200 ms of speech), to the bucket
        usual = -(-(self.history_frames + 10) // self.length_bucket) * self.length_bucket
        if hasattr(self.vocoder, "onednn"):
            # oneDNN's lead grows with the batch, so the typical call is timed with several rows
            rows = min(16 if self.causal else 4, self.max_batch)
            typical = torch.zeros(rows, usual, dtype=torch.long)  # prepared above
            best = {True: float("inf"), False: float("inf")}
            for _ in range(3):
                for path in best:
                    self.vocoder.onednn = path
                    started = time.perf_counter()
                    self.vocoder.synthesize_frames_batch(typical)
                    best[path] = min(best[path], time.perf_counter() - started)
            self.vocoder.onednn = best[True] < 0.95 * best[False]
            logger.info(
                "vocoder convolutions: %s (%d x %d frames: oneDNN %.1f ms, PyTorch's own %.1f ms)",
                f"oneDNN, {self.length_bucket}-frame buckets" if self.vocoder.onednn else "PyTorch's own",
                rows,
                typical.size(1),
                best[True] * 1e3,
                best[False] * 1e3,
            )
            if not self.vocoder.onednn:
                self.length_bucket = 1
            elif self.max_batch > 1:
                self.max_batch = self._cheapest_sub_batch(usual)
        return len(lengths)

    def _cheapest_sub_batch(self, length: int) -> int:
        """The power-of-two sub-batch size up to ``max_batch`` whose call of ``length`` frames costs
        least per stream (best of three; a larger size must win by 5%)."""
        per_stream = {}
        rows = 1
        while rows <= self.max_batch:
            frames = torch.zeros(rows, length, dtype=torch.long)
            best = float("inf")
            for _ in range(3):
                started = time.perf_counter()
                self.vocoder.synthesize_frames_batch(frames)
                best = min(best, time.perf_counter() - started)
            per_stream[rows] = best / rows
            rows *= 2
        if self.causal and self.max_batch > 1:  # the call's cost beyond its frames, from 1 row and the most
            per_frame = (per_stream[self.max_batch] * self.max_batch - per_stream[1]) / ((self.max_batch - 1) * length)
            self.call_frames = max(0, round(per_stream[1] / max(per_frame, 1e-9)) - length)
            logger.info(
                "vocoder call: %.2f ms per frame, %.1f ms a call (%d frames' worth)",
                per_frame * 1e3,
                (per_stream[1] - length * per_frame) * 1e3,
                self.call_frames,
            )
        chosen = 1
        for rows, cost in per_stream.items():
            if cost < 0.95 * per_stream[chosen]:
                chosen = rows
        logger.info(
            "vocoder sub-batches of up to %d streams (%d frames, ms per stream: %s)",
            chosen,
            length,
            ", ".join(f"{rows}: {cost * 1e3:.1f}" for rows, cost in per_stream.items()),
        )
        return chosen

    def initial_state(self) -> VocoderState:
        empty = torch.zeros(0, dtype=torch.long)
        synthesis = self.vocoder.initial_stream_state() if self.causal else None
        return VocoderState(empty, empty, torch.zeros(0), synthesis=synthesis)

    def new_frames(self, state: VocoderState, units: Tensor) -> Tensor:
        """Frame-level units for ``units`` (durations predicted with the state's left context)."""
        return self._new_frames_batch([(units, state)])[0]

    def _new_frames_batch(self, items: Sequence[Tuple[Tensor, VocoderState]]) -> List[Tensor]:
        """:meth:`new_frames` for several streams: the durations of their unit sequences (with their
        context) are predicted in one call, right-padded, which equals predicting them one by one."""
        if not self.dur_prediction:
            return [units for units, _ in items]
        if not items:
            return []
        sequences = [torch.cat([state.context_units, units]) for units, state in items]
        lengths = torch.tensor([sequence.numel() for sequence in sequences])
        longest = int(lengths.max())
        padded = torch.stack(
            [torch.nn.functional.pad(sequence, (0, longest - sequence.numel())) for sequence in sequences]
        )
        durations = self.vocoder.durations_padded(padded, lengths)
        return [
            torch.repeat_interleave(units, row[state.context_units.numel() : n])
            for (units, state), row, n in zip(items, durations, lengths.tolist())
        ]

    @torch.no_grad()
    def step(
        self, units: Union[Tensor, Sequence[int]], state: VocoderState, finish: bool = False
    ) -> Tuple[Tensor, VocoderState]:
        """Synthesise ``units`` after those of ``state``.

        Args:
            units: ``[U]`` new unit ids (may be empty).
            state: from :meth:`initial_state` or the previous call.
            finish: the stream ends here: flush the held-back samples.

        Returns:
            ``(audio, state)``: the new samples (``[N]`` float) and the next state.
        """
        return self.step_batch([(units, state, finish)])[0]

    @torch.no_grad()
    def step_batch(
        self, requests: Sequence[Tuple[Union[Tensor, Sequence[int]], VocoderState, bool]]
    ) -> List[Tuple[Tensor, VocoderState]]:
        """:meth:`step` for several independent streams: ``(units, state, finish)`` each.

        A vocoder that lays rows end to end (``batches_packed``: the iSTFT generator) synthesises
        the calls of up to ``max_batch`` streams in one run. Otherwise calls of equal frame count
        are synthesised as one batch (the length buckets make equal counts common), and with
        ``max_padding`` calls up to that many frames shorter join them, right-padded; in sub-batches
        of at most ``max_batch`` streams, split into powers of two (unless the vocoder takes
        ``any_batch_size``) so that a convolution library meets few input shapes. The durations of
        every stream's units are predicted in one right-padded call. The results equal :meth:`step`
        per stream (to float rounding)."""
        given = [self._check(units, state) for units, state, _ in requests]
        if self.causal:
            return self._step_batch_causal(requests, given)
        speaking = [i for i, units in enumerate(given) if units is not None]
        frames_new = self._new_frames_batch([(given[i], requests[i][1]) for i in speaking])
        plans: List[Optional[tuple]] = [None] * len(requests)
        for i, frames in zip(speaking, frames_new):
            plans[i] = self._plan(given[i], frames, requests[i][1])
        audio: Dict[int, Tensor] = {}
        if getattr(self.vocoder, "batches_packed", False):  # rows laid end to end: no padding to compute
            for start in range(0, len(speaking), self.max_batch):
                group = speaking[start : start + self.max_batch]
                audio.update(zip(group, self.vocoder.synthesize_frames_packed([plans[i][0] for i in group])))
        else:
            lengths = {i: plans[i][0].numel() for i in speaking}
            for members in runs_within(lengths, self.max_padding, self.max_batch):
                for group in [members] if self.vocoder.any_batch_size else power_of_two_groups(members, self.max_batch):
                    audio.update(self._synthesize(group, [plans[i][0] for i in group]))
        results = []
        for i, (_, state, finish) in enumerate(requests):
            if plans[i] is None:
                results.append(self._flush(state, finish))
            else:
                results.append(self._join(audio[i], plans[i], state, finish))
        return results

    def _step_batch_causal(self, requests, given: List[Optional[Tensor]]) -> List[Tuple[Tensor, VocoderState]]:
        """:meth:`step_batch` for a causal vocoder: each stream synthesises the frames it has, but for
        the last ``lookahead_frames`` (held in ``context_frames`` until the frames after them come, or
        the stream finishes), from its own caches; the audio is final at once."""
        speaking = [i for i, units in enumerate(given) if units is not None]
        new = dict(zip(speaking, self._new_frames_batch([(given[i], requests[i][1]) for i in speaking])))
        ahead = self.vocoder.lookahead_frames
        available, ready = {}, {}
        for i, (_, state, finish) in enumerate(requests):
            available[i] = torch.cat([state.context_frames, new[i]]) if i in new else state.context_frames
            n = available[i].numel() if finish else max(available[i].numel() - ahead, 0)
            if n:
                ready[i] = n
        audio: Dict[int, Tuple[Tensor, Tensor]] = {}
        for group in cheapest_calls(ready, self.max_batch, self.length_bucket, self.call_frames):
            audio.update(
                self._synthesize_causal(
                    group,
                    [available[i] for i in group],
                    [ready[i] for i in group],
                    [requests[i][1].synthesis for i in group],
                )
            )
        results = []
        for i, (_, state, _) in enumerate(requests):
            wave, synthesis = audio.get(i, (torch.zeros(0), state.synthesis))
            units = given[i] if given[i] is not None else state.context_units[:0]
            results.append(
                (
                    wave,
                    VocoderState(
                        context_frames=available[i][ready.get(i, 0) :],
                        context_units=torch.cat([state.context_units, units])[-self.duration_context :]
                        if self.duration_context
                        else units[:0],
                        pending=state.pending,
                        emitted_samples=state.emitted_samples + wave.numel(),
                        synthesis=synthesis,
                    ),
                )
            )
        return results

    def _synthesize(self, group: List[int], calls: List[Tensor]) -> Dict[int, Tensor]:
        """One generator run for the calls of ``group`` (right-padded where their lengths differ)."""
        longest = max(call.numel() for call in calls)
        if all(call.numel() == longest for call in calls):
            return dict(zip(group, self.vocoder.synthesize_frames_batch(torch.stack(calls))))
        lengths = torch.tensor([call.numel() for call in calls])
        frames = torch.stack([torch.nn.functional.pad(call, (0, longest - call.numel())) for call in calls])
        waves = self.vocoder.synthesize_frames_padded(frames, lengths)
        hop = self.vocoder.frame_hop
        return {i: wave[: n * hop] for i, wave, n in zip(group, waves, lengths.tolist())}

    def _synthesize_causal(self, group: List[int], available: List[Tensor], ready: List[int], states: List[Tensor]):
        """One step of a causal vocoder for the streams of ``group``: the first ``ready`` of each stream's
        ``available`` frames, with those after them as lookahead, padded to a whole bucket and the rows
        to a power of two with idle streams (padding touches neither a row's audio nor its state), so
        that the convolution library meets few shapes -> stream -> (audio, state)."""
        ahead = self.vocoder.lookahead_frames
        width = -(-max(ready) // self.length_bucket) * self.length_bucket + ahead
        rows = [frames[: n + ahead] for frames, n in zip(available, ready)]
        idle = next_power_of_two(len(rows)) - len(rows)
        lengths = torch.tensor(ready + [1] * idle)
        lookahead = torch.tensor([row.numel() - n for row, n in zip(rows, ready)] + [0] * idle)
        frames = torch.stack(
            [torch.nn.functional.pad(row, (0, width - row.numel())) for row in rows]
            + [torch.zeros(width, dtype=torch.long)] * idle
        )
        states = list(states) + [self.vocoder.initial_stream_state()] * idle
        waves, after = self.vocoder.synthesize_step(frames, lengths, lookahead, torch.stack(states))
        hop = self.vocoder.frame_hop
        return {i: (wave[: n * hop], state) for i, wave, state, n in zip(group, waves, after, ready)}

    def _check(self, units, state: VocoderState) -> Optional[Tensor]:
        """``units`` as a checked tensor (``None``: no new units)."""
        if not isinstance(state, VocoderState):
            raise VocoderError(
                f"state must be a VocoderState (units first, then the state), got {type(state).__name__}"
            )
        if len(units) == 0:
            return None
        return as_unit_tensor(units, self.vocoder.num_units, "new units")

    def _plan(self, units: Tensor, frames_new: Tensor, state: VocoderState):
        """The frames one call synthesises and what joining its audio needs."""
        spoken = state.context_frames.numel()
        context = self.left_context + (-(self.left_context + frames_new.numel())) % self.length_bucket
        context = min(context, spoken)
        history = torch.cat([state.context_frames, frames_new])
        return history[spoken - context :], context, history, units

    def _flush(self, state: VocoderState, finish: bool) -> Tuple[Tensor, VocoderState]:
        """A call without new units: nothing, or at the end the held-back samples."""
        if not finish:
            return torch.zeros(0), state
        out = state.pending
        return out, VocoderState(
            state.context_frames,
            state.context_units,
            torch.zeros(0),
            state.emitted_samples + out.numel(),
            state.synthesis,
        )

    def _join(self, audio: Tensor, plan, state: VocoderState, finish: bool) -> Tuple[Tensor, VocoderState]:
        """Cross-fade a call's audio onto the held-back samples; hold back the new tail."""
        frames, context, history, units = plan
        start = context * self.vocoder.frame_hop
        overlap = state.pending.numel()
        fade_in = (torch.arange(overlap, dtype=audio.dtype) + 0.5) / max(overlap, 1)
        joined = state.pending * (1 - fade_in) + audio[start - overlap : start] * fade_in
        combined = torch.cat([joined, audio[start:]])
        held = 0 if finish else min(self.crossfade, combined.numel())
        out = combined[: combined.numel() - held]
        next_state = VocoderState(
            context_frames=history[-self.history_frames :] if self.history_frames else frames[:0],
            context_units=torch.cat([state.context_units, units])[-self.duration_context :]
            if self.duration_context
            else units[:0],
            pending=combined[combined.numel() - held :],
            emitted_samples=state.emitted_samples + out.numel(),
        )
        return out, next_state
