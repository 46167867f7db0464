"""StreamSpeech's trained parts in an ``echostream`` model: its ASR CTC projection, ST CTC head, MT
decoder, T2U encoder and unit decoder, renamed, with the encoder left to train.

Its parts are ours by design (fairseq's Transformer layers, pre-norm, sinusoidal positions, tied
MT embeddings), under other names (``common/streamspeech_names.py``) and with three differences
that change what they compute, which the model settings of an import reproduce:

* its ST CTC head, as its configs build it, is a bare projection: ``--st-ctc-layers 0``;
* its unit decoder gives every upsampled position the same sinusoid row (its position embedding
  reads the batch axis): ``--unit-decoder-positions streamspeech``;
* its unit dictionary puts the CTC blank last (``<blank>`` appended), ours first (index 0): the
  output rows are reordered, and its projection, tied to an embedding, has no bias (ours is 0).

:func:`streamspeech_parts` maps the weights; :func:`load_streamspeech_parts` puts them into a model
and says what was taken and what was left (its encoder, tied copies, buffers).
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import torch
from torch import Tensor

from echostream_fairseq.common.streamspeech_names import CHECKPOINT_PARTS, LAYER_NAMES, STACK_NORM

__all__ = ["IMPORTED_PARTS", "streamspeech_parts", "load_streamspeech_parts"]

# our modules an import fills
IMPORTED_PARTS = ("asr_ctc", "st_ctc", "decoder", "t2u_encoder", "unit_decoder")
# their keys that hold nothing of their own: fairseq's version buffers, tied output projections
# (the MT decoder's is its embedding; the unit decoder's embedding is never read)
_SKIPPED = ("version", "output_projection.weight")
_SPECIALS = 4  # <s>, <pad>, </s>, <unk> lead both unit dictionaries


def _renamed(name: str) -> str:
    parts = name.split(".")
    if parts[0] == STACK_NORM[0]:
        parts[0] = STACK_NORM[1]
    return ".".join(LAYER_NAMES.get(p, p) for p in parts)


def _units_blank_first(weight: Tensor) -> Tensor:
    """Their unit projection ``[V + 1, D]`` (``<s>`` first, ``<blank>`` last) -> ours ``[V, D]``:
    the blank in row 0 (where ``<s>`` was), the specials and units where they were."""
    return torch.cat([weight[-1:], weight[1:-1]])


def streamspeech_parts(state: Dict[str, Tensor]) -> Tuple[Dict[str, Tensor], List[str]]:
    """A StreamSpeech model's state dict -> the weights of our :data:`IMPORTED_PARTS` (our names)
    and the keys not taken (its encoder, and those that hold nothing of their own)."""
    mt_out, mt_embed = (
        state.get(f"target_unigram_decoder.{n}") for n in ("output_projection.weight", "embed_tokens.weight")
    )
    if mt_out is not None and mt_embed is not None and not torch.equal(mt_out, mt_embed):
        raise ValueError("its MT decoder's output projection is not tied to its embedding, as ours is: not imported")
    ours: Dict[str, Tensor] = {}
    left: List[str] = []
    for key, value in state.items():
        prefix = next((p for p in CHECKPOINT_PARTS if key.startswith(p)), None)
        if prefix is None:
            left.append(key)
            continue
        name = key[len(prefix) :]
        target = CHECKPOINT_PARTS[prefix]
        if name in _SKIPPED or (target == "unit_decoder." and name == "embed_tokens.weight"):
            left.append(key)
            continue
        ours[target + _renamed(name)] = value
    projection = state.get("decoder.output_projection.weight", state.get("decoder.embed_tokens.weight"))
    if projection is not None:
        ours["unit_decoder.proj.weight"] = _units_blank_first(projection)
        ours["unit_decoder.proj.bias"] = projection.new_zeros(projection.size(0) - 1)
    return ours, left


def load_streamspeech_parts(model, state: Dict[str, Tensor]) -> List[str]:
    """Copy StreamSpeech's parts into ``model`` (an ``EchoStreamModel`` built with the settings of
    the module docstring); every parameter of :data:`IMPORTED_PARTS` must be given, with its shape.
    Returns the keys of ``state`` not taken."""
    weights, left = streamspeech_parts(state)
    own = {k: v for k, v in model.state_dict().items() if k.split(".")[0] in IMPORTED_PARTS}
    missing = sorted(set(own) - set(weights))
    extra = sorted(set(weights) - set(own))
    if missing or extra:
        raise ValueError(
            "the StreamSpeech checkpoint does not fit this model's decoders: "
            f"{len(missing)} of ours missing ({missing[:4]}), {len(extra)} of its unplaced ({extra[:4]}); "
            "are the sizes its (--st-ctc-layers 0, the unit decoder's and T2U's layers and dimensions)?"
        )
    wrong = [
        f"{k}: {tuple(weights[k].shape)} for {tuple(v.shape)}" for k, v in own.items() if v.shape != weights[k].shape
    ]
    if wrong:
        raise ValueError(f"the StreamSpeech checkpoint's sizes differ from this model's: {wrong[:4]}")
    model.load_state_dict({**model.state_dict(), **weights}, strict=True)
    return left
