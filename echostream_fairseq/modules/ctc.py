"""Greedy CTC decoding, shared by training metrics, offline decoding, the streaming masks and the
agents' READ/WRITE policy.

Blank is index 0 of every dictionary (fairseq's ``<s>``), as in fairseq's CTC criteria.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import List, Optional, Sequence, Tuple

from torch import Tensor

__all__ = [
    "CTC_BLANK",
    "ctc_greedy",
    "ctc_greedy_marks",
    "CTCMark",
    "ctc_labels",
    "ctc_best",
    "ctc_collapse",
    "ctc_lead_frames",
    "ctc_token_confidences",
    "ctc_blank_run",
    "ctc_blank_frames",
    "ctc_emission_counts",
]

CTC_BLANK = 0


@dataclass(frozen=True)
class CTCMark:
    """A mark (a label that is no token, the ASR CTC's sentence end) and the frames after it.

    Attributes:
        tokens_before: tokens before it (of the frames it was found in; :meth:`shifted` counts
            from elsewhere).
        frames_after: frames after its first frame.
        pause_frames: of those, the frames before the next token (all of them if none has come):
            blanks and marks.
    """

    tokens_before: int
    frames_after: int
    pause_frames: int

    def shifted(self, tokens: int) -> "CTCMark":
        """The mark counted from ``tokens`` tokens earlier (negative: later)."""
        return replace(self, tokens_before=self.tokens_before + tokens)

    def heard(self, frames: int, lead: Optional[int]) -> "CTCMark":
        """A mark no token has followed yet, after ``frames`` more frames, ``lead`` of them before
        the first new token (``None``: no new token, see :func:`ctc_lead_frames`)."""
        pause = self.pause_frames + (frames if lead is None else lead)
        return CTCMark(self.tokens_before, self.frames_after + frames, pause)


def ctc_greedy(logits: Tensor, lengths: Tensor, banned: Sequence[int] = ()) -> List[List[int]]:
    """Best path per row of ``logits`` ``[B, T, V]`` (first ``lengths[b]`` frames), repeats
    collapsed and blanks dropped; ``banned`` ids (e.g. pad/eos/unk) are never chosen."""
    if banned:
        logits = logits.clone()
        logits[..., list(banned)] = float("-inf")
    best = logits.argmax(dim=-1).tolist()
    out = []
    for row, n in zip(best, lengths.tolist()):
        seq, previous = [], None
        for t in row[:n]:
            if t != previous and t != CTC_BLANK:
                seq.append(t)
            previous = t
        out.append(seq)
    return out


def ctc_greedy_marks(
    logits: Tensor, previous: int = CTC_BLANK, banned: Sequence[int] = (), mark: Optional[int] = None
) -> Tuple[List[int], int, Tuple[CTCMark, ...]]:
    """Streaming :func:`ctc_greedy` for one stream: the tokens that new frames ``[t, V]`` add.

    ``previous`` is the best label of the frame before (blank at the start), so a token repeated
    across a chunk boundary is collapsed exactly as in one pass. The label ``mark`` (a sentence
    end) may be chosen even if ``banned`` lists it (``None``: no mark).

    Returns the new tokens without the marks, the last frame's best label (the next call's
    ``previous``), and where each mark written in these frames fell (:class:`CTCMark`, in
    order; a mark repeated with only blanks between is one mark).
    """
    if logits.size(0) == 0:
        return [], previous, ()
    return ctc_collapse(ctc_labels(logits, [b for b in banned if b != mark]), previous, mark)


def ctc_labels(logits: Tensor, banned: Sequence[int] = ()) -> list:
    """The best label of every frame of ``logits`` ``[..., V]`` (``banned`` ids never chosen), as
    (nested) lists: one product for many streams' frames, whose labels the functions below read."""
    if banned:
        logits = logits.clone()
        logits[..., list(banned)] = float("-inf")
    return logits.argmax(dim=-1).tolist()


def ctc_best(logits: Tensor, banned: Sequence[int] = ()) -> Tuple[list, list]:
    """:func:`ctc_labels`, and the probability each frame gives its best label (the softmax over
    the labels not banned), as lists."""
    if banned:
        logits = logits.clone()
        logits[..., list(banned)] = float("-inf")
    probabilities, labels = logits.softmax(dim=-1).max(dim=-1)
    return labels.tolist(), probabilities.tolist()


def ctc_collapse(
    labels: Sequence[int], previous: int = CTC_BLANK, mark: Optional[int] = None
) -> Tuple[List[int], int, Tuple[CTCMark, ...]]:
    """:func:`ctc_greedy_marks` of new frames' best labels (``mark`` must not have been banned)."""
    tokens: List[int] = []
    found: List[Tuple[int, int]] = []  # (tokens before the mark, its first frame)
    for t, label in enumerate(labels):
        if label != previous and label == mark:
            if not found or found[-1][0] < len(tokens):  # marks with no token between are one mark
                found.append((len(tokens), t))
        elif label != previous and label != CTC_BLANK:
            tokens.append(label)
        previous = label
    marks = []
    for before, frame in found:
        after = len(labels) - 1 - frame
        lead = ctc_lead_frames(labels[frame + 1 :], mark, mark)
        marks.append(CTCMark(before, after, after if lead is None else lead))
    return tokens, previous, tuple(marks)


def ctc_lead_frames(labels: Sequence[int], previous: int = CTC_BLANK, mark: Optional[int] = None) -> Optional[int]:
    """How many of new frames' best labels come before the first new token (blanks, ``mark``s,
    ``previous`` continued); ``None`` if they hold no new token."""
    for t, label in enumerate(labels):
        if label != previous and label not in (CTC_BLANK, mark):
            return t
        previous = label
    return None


def ctc_token_confidences(
    labels: Sequence[int], probabilities: Sequence[float], previous: int = CTC_BLANK
) -> List[float]:
    """The confidence of each token :func:`ctc_collapse` finds in new frames (without a mark):
    the highest probability its label had over its frames (``probabilities``: each frame's
    probability of its best label). A token carried over from earlier frames (``previous``) is
    not a new one."""
    confidences: List[float] = []
    for label, p in zip(labels, probabilities):
        if label != previous and label != CTC_BLANK:
            confidences.append(p)
        elif label == previous and label != CTC_BLANK and confidences:
            confidences[-1] = max(confidences[-1], p)
        previous = label
    return confidences


def ctc_blank_run(logits: Tensor, run: int = 0, banned: Sequence[int] = ()) -> int:
    """Frames since the best label was last not blank, after new frames ``[t, V]``.

    ``run`` is the count before them (0 at the start). A long run is a pause in the speech.
    """
    if logits.size(0) == 0:
        return run
    return ctc_blank_frames(ctc_labels(logits, banned), run)


def ctc_blank_frames(labels: Sequence[int], run: int = 0) -> int:
    """:func:`ctc_blank_run` of new frames' best labels."""
    for back, label in enumerate(reversed(labels)):
        if label != CTC_BLANK:
            return back
    return run + len(labels)


def ctc_emission_counts(logits: Tensor, padding_mask: Optional[Tensor] = None, blank: int = CTC_BLANK) -> Tensor:
    """Greedy CTC prefix length after each frame.

    Args:
        logits: ``[B, T, V]`` CTC scores.
        padding_mask: ``[B, T]``, ``True`` at padding (padding emits nothing).
        blank: blank index.

    Returns:
        ``[B, T]`` long: tokens the collapsed greedy path holds after frames ``0..t``.
    """
    best = logits.argmax(dim=-1)  # [B, T]
    previous = best.new_full(best.shape, blank)
    previous[:, 1:] = best[:, :-1]
    emits = (best != blank) & (best != previous)
    if padding_mask is not None:
        emits = emits & ~padding_mask
    return emits.long().cumsum(dim=1)
