"""What a streaming encoder backbone provides: the contract :class:`EchoStreamSpeechEncoder` relies on.

:class:`~echostream_fairseq.modules.emformer.Emformer`,
:class:`~echostream_fairseq.modules.zipformer.Zipformer` and
:class:`~echostream_fairseq.modules.conformer.ChunkConformer` satisfy it. A new backbone needs
nothing else to be trained by fairseq, decoded offline and streamed by the agents.
"""

from __future__ import annotations

from typing import Any, Optional, Protocol, Tuple, runtime_checkable

import torch
from torch import Tensor

__all__ = ["StreamingBackbone"]


@runtime_checkable
class StreamingBackbone(Protocol):
    """Attributes:
    input_dim: size ``D`` of the subsampled frames it takes.
    chunk_length: output frames per streaming step (settable: one model serves every chunk
        size; a backbone that cannot take a value raises ``ValueError``).
    input_chunk_length: input frames per streaming step (the Zipformer halves the rate).
    right_context_length: look-ahead frames each step needs after its chunk (0: none).
    """

    input_dim: int
    chunk_length: int
    right_context_length: int

    @property
    def input_chunk_length(self) -> int: ...

    def forward(self, input: Tensor, lengths: Tensor, chunk_length: Optional[int] = None) -> Tuple[Tensor, Tensor]:
        """Training and offline decoding: padded ``[B, T + R, D]`` (``R`` end-of-utterance zero
        frames) and ``lengths`` ``[B]`` -> ``[B, T', D_out]`` and output lengths, with chunk masks of
        ``chunk_length`` (``None``: its own; 0: one chunk over the whole input)."""
        ...

    def initial_state(
        self, batch_size: int, device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None
    ) -> Any:
        """The state of ``batch_size`` fresh streams (a frozen dataclass of tensors)."""
        ...

    def step(self, chunk: Tensor, right_context: Optional[Tensor], state: Optional[Any] = None) -> Tuple[Tensor, Any]:
        """One chunk ``[B, s, D]`` (``s = input_chunk_length``, shorter only for the last chunk of a
        stream) and its look-ahead ``[B, R, D]`` -> new output frames and the next state; streaming
        a stream chunk by chunk equals :meth:`forward` on it."""
        ...
