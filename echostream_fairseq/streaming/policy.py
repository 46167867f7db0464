"""StreamSpeech's CTC-based READ/WRITE policy, as pure functions of explicit state.

After every source chunk the agent has the greedy CTC prefixes of the source (ASR head) and of
the target (ST head). The policy:

* READs until both prefixes have grown by at least ``stride_n`` tokens since the last time it
  let the translation advance (the ASR prefix shows new source content was recognised, the ST
  prefix how many target tokens that content is worth);
* then lets the MT decoder write up to ``((st_length - lagging_k1) // stride_n) * stride_n``
  target subwords in total (one more with ``whole_word``, whose extra token tells whether the
  word before it is complete);
* with ``whole_word``, the new text is cut back to its last complete word (the last token that
  starts a word ends the kept prefix); nothing complete means READ;
* at the end of the source it writes until the MT decoder's end of sentence.

:func:`ctc_policy` decides; :func:`~echostream_fairseq.data.text.whole_word_prefix` cuts (it lives
with the other word-of-subwords helpers, and is importable from here too). Both are pure, so a
test can drive them with scripted prefix lengths and check the exact action sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

__all__ = ["PolicyConfig", "PolicyState", "ctc_policy", "FINISH", "whole_word_default", "repeated_ngram_ends"]

FINISH = -1  # "write until end of sentence" (the source has ended)


@dataclass(frozen=True)
class PolicyConfig:
    """Attributes:
    stride_n: tokens both CTC prefixes must grow by before a WRITE; also the write granularity.
    lagging_k1: target tokens kept back behind the ST CTC prefix.
    whole_word: write complete words only (StreamSpeech turns it on for chunks >= 640 ms).
    """

    stride_n: int = 1
    lagging_k1: int = 0
    whole_word: bool = False

    def __post_init__(self) -> None:
        if self.stride_n < 1:
            raise ValueError(f"stride_n must be >= 1, got {self.stride_n}")
        if self.lagging_k1 < 0:
            raise ValueError(f"lagging_k1 must be >= 0, got {self.lagging_k1}")


def whole_word_default(source_segment_size_ms: int) -> bool:
    """StreamSpeech's rule: complete words only when chunks are 640 ms or longer."""
    return source_segment_size_ms >= 640


@dataclass(frozen=True)
class PolicyState:
    """CTC prefix lengths when the policy last let the translation advance."""

    asr_length: int = 0
    st_length: int = 0


def ctc_policy(
    config: PolicyConfig,
    state: PolicyState,
    asr_length: int,
    st_length: int,
    target_length: int,
    source_finished: bool,
) -> Tuple[Optional[int], PolicyState]:
    """One decision.

    Args:
        config: the policy's settings.
        state: from the previous decision (``PolicyState()`` at the start of a stream).
        asr_length, st_length: current greedy ASR / ST CTC prefix lengths.
        target_length: target subwords already written.
        source_finished: no more source will come.

    Returns:
        ``(target, state)``: ``None`` = READ; :data:`FINISH` = write until end of sentence;
        otherwise the total number of target subwords to have after writing (``> target_length``).
    """
    if source_finished:
        return FINISH, state
    n = config.stride_n
    if asr_length < state.asr_length + n or st_length < state.st_length + n:
        return None, state
    state = PolicyState(max(asr_length, state.asr_length), max(st_length, state.st_length))
    target = ((st_length - config.lagging_k1) // n) * n + (1 if config.whole_word else 0)
    if target - target_length < 1:
        return None, state
    return target, state


def repeated_ngram_ends(prefix: Sequence[int], n: int) -> List[int]:
    """The tokens that, written next, would repeat an ``n``-gram already in ``prefix`` (0: none),
    as fairseq-generate's ``--no-repeat-ngram-size`` bans them."""
    if n < 1 or len(prefix) < n - 1:
        return []
    if n == 1:
        return sorted(set(prefix))
    tail = tuple(prefix[len(prefix) - n + 1 :])
    return [prefix[i + n - 1] for i in range(len(prefix) - n + 1) if tuple(prefix[i : i + n - 1]) == tail]
