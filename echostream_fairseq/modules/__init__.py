"""Building blocks: the Emformer, the chunk Conformer baseline, the subsampler."""

from echostream_fairseq.modules.conformer import ChunkConformer, ConformerState
from echostream_fairseq.modules.emformer import Emformer, EmformerState, from_torchaudio
from echostream_fairseq.modules.packed_linear import PackedLinear
from echostream_fairseq.modules.subsampler import Conv1dSubsampler, SubsamplerState

__all__ = [
    "ChunkConformer",
    "ConformerState",
    "Conv1dSubsampler",
    "Emformer",
    "EmformerState",
    "PackedLinear",
    "SubsamplerState",
    "from_torchaudio",
]
