"""The interface every unit vocoder offers, and the checks on the units it is given.

A vocoder turns a sequence of discrete units into a waveform at ``sample_rate``, ``frame_hop``
samples per unit *frame*. Units from the S2ST model are de-duplicated (one id per run), so a
vocoder first gives each unit a duration in frames (``durations``) and then synthesises the
frame sequence (``synthesize_frames``). Splitting the two is what lets the incremental
synthesiser (:mod:`~echostream_fairseq.vocoder.incremental`) keep a left context of *frames*.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from echostream_fairseq.common.units_kind import UnitsKind
from echostream_fairseq.vocoder.config import VocoderError

__all__ = ["UnitVocoder", "as_unit_tensor"]

UnitsLike = Union[Tensor, Sequence[int]]


def as_unit_tensor(units: UnitsLike, num_units: int, what: str = "unit sequence") -> Tensor:
    """``units`` as a 1-D int64 tensor, checked to lie in ``[0, num_units)`` and to be non-empty."""
    if not isinstance(units, Tensor):
        try:
            units = torch.tensor(list(units), dtype=torch.long)
        except (TypeError, ValueError, RuntimeError):
            raise VocoderError(f"{what}: expected integer unit ids, got {units!r:.80}") from None
    if units.is_floating_point() or units.is_complex() or units.dtype == torch.bool:
        raise VocoderError(f"{what}: expected integer unit ids, got dtype {units.dtype}")
    if units.dim() == 2 and units.shape[0] == 1:
        units = units[0]
    if units.dim() != 1:
        raise VocoderError(f"{what}: expected a 1-D sequence of unit ids, got shape {tuple(units.shape)}")
    if units.numel() == 0:
        raise VocoderError(f"{what}: empty unit sequence, nothing to synthesise")
    units = units.long()
    low, high = int(units.min()), int(units.max())
    if low < 0 or high >= num_units:
        bad = units[(units < 0) | (units >= num_units)]
        position = int(((units < 0) | (units >= num_units)).nonzero()[0])
        raise VocoderError(
            f"{what}: unit id {int(bad[0])} at position {position} is outside the vocoder's range 0..{num_units - 1}"
            + (f" ({bad.numel()} ids out of range)" if bad.numel() > 1 else "")
        )
    return units


class UnitVocoder(torch.nn.Module):
    """Units -> waveform. Subclasses set the four attributes and implement the two methods.

    Attributes:
        sample_rate: output sampling rate in Hz.
        frame_hop: output samples per unit frame.
        num_units: unit ids run ``0 .. num_units - 1``.
        has_duration_predictor: whether ``durations`` can be asked for.
        length_bucket: incremental synthesis keeps every call's frame count a multiple of this
            (see :class:`~echostream_fairseq.vocoder.incremental.IncrementalVocoder`); 1: any length.
        causal: whether each sample depends only on the frames up to its own, so that synthesis
            runs frame by frame from a state (:meth:`initial_stream_state`, :meth:`synthesize_step`)
            instead of re-synthesising a left context.
        lookahead_frames: a causal vocoder's sample also depends on this many frames after its own.
        any_batch_size: a call of any number of rows costs nothing to prepare (no convolution
            library that prepares each input shape), so incremental synthesis need not keep its
            sub-batches to powers of two.
    """

    sample_rate: int
    frame_hop: int
    num_units: int
    has_duration_predictor: bool
    length_bucket: int = 1
    causal: bool = False
    lookahead_frames: int = 0
    any_batch_size: bool = False
    # the kind of units it voices, where its files say (a config's "units", a unit model)
    units_kind: Optional[UnitsKind] = None

    def durations(self, units: Tensor) -> Tensor:
        """``[U]`` de-duplicated units -> ``[U]`` int64 frame counts, each at least 1."""
        raise NotImplementedError

    def durations_padded(self, units: Tensor, lengths: Tensor) -> Tensor:
        """``[B, U]`` right-padded units, ``[B]`` lengths -> ``[B, U]``: row ``i``'s first ``lengths[i]``
        are :meth:`durations` of its first ``lengths[i]`` units, the rest 1 (this default runs the
        rows one by one; a vocoder that batches overrides it)."""
        out = torch.ones_like(units)
        for row, n in enumerate(lengths.tolist()):
            out[row, :n] = self.durations(units[row, :n])
        return out

    def synthesize_frames(self, frames: Tensor) -> Tensor:
        """``[T]`` frame-level units (already checked) -> ``[T * frame_hop]`` float waveform."""
        raise NotImplementedError

    def synthesize_frames_batch(self, frames: Tensor) -> Tensor:
        """``[B, T]`` frame-level units -> ``[B, T * frame_hop]``; each row as :meth:`synthesize_frames`
        gives it (this default runs them one by one; a vocoder that batches overrides it)."""
        return torch.stack([self.synthesize_frames(row) for row in frames])

    # whether synthesize_frames_padded runs rows of unequal length as one batch (else row by row)
    batches_padded: bool = False

    def synthesize_frames_padded(self, frames: Tensor, lengths: Tensor) -> Tensor:
        """``[B, T]`` right-padded frame-level units, ``[B]`` lengths -> ``[B, T * frame_hop]``: row
        ``i``'s first ``lengths[i] * frame_hop`` samples are :meth:`synthesize_frames` of its first
        ``lengths[i]`` frames, the rest zeros (this default runs the rows one by one)."""
        audio = torch.zeros(frames.size(0), frames.size(1) * self.frame_hop)
        for i, n in enumerate(lengths.tolist()):
            audio[i, : n * self.frame_hop] = self.synthesize_frames(frames[i, :n])
        return audio

    # whether synthesize_frames_packed runs rows laid end to end as one sequence (no padding computed)
    batches_packed: bool = False

    def synthesize_frames_packed(self, calls: Sequence[Tensor]) -> List[Tensor]:
        """Frame-level units of several rows, ``[T_i]`` each -> ``[T_i * frame_hop]`` each, as
        :meth:`synthesize_frames` gives them (this default runs the rows one by one; a vocoder whose
        generator can lay them end to end overrides it)."""
        return [self.synthesize_frames(call) for call in calls]

    def initial_stream_state(self) -> Tensor:
        """A causal vocoder's ``[S]`` state before the first frame (its caches' sizes summed)."""
        raise NotImplementedError(f"{type(self).__name__} is not causal")

    def synthesize_step(
        self, frames: Tensor, lengths: Tensor, lookahead: Tensor, states: Tensor
    ) -> Tuple[Tensor, Tensor]:
        """A causal vocoder's step: ``[B, T + N]`` right-padded frame-level units after those each row's
        ``[B, S]`` state has seen (``N`` = :attr:`lookahead_frames`): row ``i`` holds ``lengths[i]``
        frames to synthesise, then the ``N`` after them, of which the first ``lookahead[i]`` are real
        (the rest: the sequence ends). Returns ``[B, T * frame_hop]`` (row ``i`` valid for its first
        ``lengths[i] * frame_hop`` samples) and the ``[B, S]`` states after each row's frames.
        Synthesis in steps equals one pass over the whole sequence."""
        raise NotImplementedError(f"{type(self).__name__} is not causal")

    @torch.no_grad()
    def forward(self, units: UnitsLike, dur_prediction: bool = False) -> Tensor:
        """One-shot synthesis: ``[U]`` units -> waveform ``[T * frame_hop]``.

        With ``dur_prediction`` the units are de-duplicated ids and each is repeated by its
        predicted duration; without it every unit is one frame.
        """
        units = as_unit_tensor(units, self.num_units)
        if dur_prediction:
            units = self.expand(units)
        return self.synthesize_frames(units)

    def check_duration_predictor(self) -> None:
        """Raise :class:`VocoderError` unless ``durations`` can be asked for."""
        if not self.has_duration_predictor:
            raise VocoderError(
                f"{type(self).__name__}: this vocoder has no duration predictor; give frame-level units "
                "(one per 20 ms) or drop --dur-prediction"
            )

    def expand(self, units: Tensor) -> Tensor:
        """De-duplicated units -> frame-level units (each repeated by its duration)."""
        self.check_duration_predictor()
        return torch.repeat_interleave(units, self.durations(units))
