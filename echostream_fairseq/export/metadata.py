"""What a graph records about the model it came from, and the check made when it is loaded.

Every entry is a string in the ONNX model's ``metadata_props``. A graph is refused when it was
made for another model: other sizes, other dictionaries (compared by size and by a digest of their
symbols) or other weights (a digest of the exported parameters), with every difference named.
"""

from __future__ import annotations

import hashlib
from typing import Dict, Mapping

import torch
from torch import nn

__all__ = [
    "FORMAT_VERSION",
    "symbols_digest",
    "weights_digest",
    "encoder_metadata",
    "mt_metadata",
    "t2u_metadata",
    "unit_decoder_metadata",
    "vocoder_metadata",
    "check_metadata",
]

FORMAT_VERSION = "1"
# entries that describe the file rather than the model: not compared with the checkpoint
_FILE_ENTRIES = ("opset",)


def symbols_digest(dictionary) -> str:
    """sha256 of a fairseq dictionary's symbols, one per line, in index order (first 16 hex digits)."""
    text = "\n".join(dictionary[i] for i in range(len(dictionary)))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def weights_digest(module: nn.Module) -> str:
    """sha256 of a module's parameters and buffers, by name, as fp32 bytes (first 16 hex digits)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode("utf-8"))
        digest.update(tensor.detach().to(torch.float32).contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def encoder_metadata(graph: nn.Module, source_dictionary, st_dictionary) -> Dict[str, str]:
    """The model entries of an encoder-step graph (:func:`~.encoder_graph.encoder_step_graph`).
    ``chunk_length`` is the encoder chunk the model was trained with; an Emformer's graph takes a
    chunk of any length, and the runtime steps at the translator's; a Zipformer's graph steps the
    chunk it was traced at, ``graph_chunk_length``."""
    backbone = graph.backbone
    st = graph.st_ctc
    entries = {
        "echostream.format": FORMAT_VERSION,
        "echostream.graph": "encoder_step",
        "chunk_length": graph.trained_chunk_length,
    }
    if hasattr(backbone, "stacks"):  # a Zipformer
        entries.update(
            {
                "encoder_type": "zipformer",
                "stack_dims": ",".join(map(str, backbone.stack_dims)),
                "stack_layers": ",".join(map(str, backbone.stack_layers)),
                "stack_downsampling": ",".join(map(str, backbone.stack_downsampling)),
                "dim": backbone.input_dim,
                "graph_chunk_length": backbone.chunk_length,
                "left_context_length": backbone.left_context_length,
                "future_frames": backbone.future_frames,
                "max_memory_size": backbone.max_memory_size,
                "output_downsampling": backbone.output_downsampling,
            }
        )
    else:
        entries.update(
            {
                "encoder_type": "emformer",
                "layers": len(backbone.layers),
                "dim": backbone.input_dim,
                "heads": backbone.num_heads,
                "left_context_length": backbone.left_context_length,
                "right_context_length": backbone.right_context_length,
                "max_memory_size": backbone.max_memory_size,
                "conv_kernel_size": backbone.conv_kernel_size,
            }
        )
    entries.update(
        {
            "st_ctc_layers": len(st.layers),
            "st_ctc_left_context": st.left_context,
            "source_dictionary_size": len(source_dictionary),
            "source_dictionary_digest": symbols_digest(source_dictionary),
            "st_dictionary_size": len(st_dictionary),
            "st_dictionary_digest": symbols_digest(st_dictionary),
            "weights_digest": weights_digest(graph),
        }
    )
    return {key: str(value) for key, value in entries.items()}


def mt_metadata(decoder: nn.Module, target_dictionary) -> Dict[str, str]:
    """The model entries of an MT decoder step graph (:class:`~.mt_graph.MTDecoderStepGraph`)."""
    attn = decoder.layers[0].self_attn
    entries = {
        "echostream.format": FORMAT_VERSION,
        "echostream.graph": "mt_decoder_step",
        "layers": len(decoder.layers),
        "dim": decoder.embed_dim,
        "heads": attn.num_heads,
        "target_dictionary_size": len(target_dictionary),
        "target_dictionary_digest": symbols_digest(target_dictionary),
        "weights_digest": weights_digest(decoder),
    }
    return {key: str(value) for key, value in entries.items()}


def t2u_metadata(t2u_encoder: nn.Module) -> Dict[str, str]:
    """The model entries of T2U's step graph (:class:`~.unit_graphs.T2UStepGraph`)."""
    attn = t2u_encoder.layers[0].self_attn
    entries = {
        "echostream.format": FORMAT_VERSION,
        "echostream.graph": "t2u_step",
        "layers": len(t2u_encoder.layers),
        "dim": attn.num_heads * attn.head_dim,
        "heads": attn.num_heads,
        "weights_digest": weights_digest(t2u_encoder),
    }
    return {key: str(value) for key, value in entries.items()}


def unit_decoder_metadata(unit_decoder: nn.Module, unit_dictionary) -> Dict[str, str]:
    """The model entries of the unit decoder's step graph (:class:`~.unit_graphs.UnitDecoderStepGraph`)."""
    attn = unit_decoder.layers[0].self_attn
    entries = {
        "echostream.format": FORMAT_VERSION,
        "echostream.graph": "unit_decoder_step",
        "layers": len(unit_decoder.layers),
        "dim": unit_decoder.embed_dim,
        "heads": attn.num_heads,
        "upsample_rate": unit_decoder.upsample_rate,
        "unit_dictionary_size": len(unit_dictionary),
        "unit_dictionary_digest": symbols_digest(unit_dictionary),
        "weights_digest": weights_digest(unit_decoder),
    }
    return {key: str(value) for key, value in entries.items()}


def vocoder_metadata(vocoder) -> Dict[str, str]:
    """The entries of a vocoder graph (:class:`~echostream_fairseq.vocoder.generator_graph.GeneratorGraph`)
    of a :class:`~echostream_fairseq.vocoder.code_hifigan.CodeHiFiGANUnitVocoder`."""
    entries = {
        "echostream.format": FORMAT_VERSION,
        "echostream.graph": "vocoder",
        "num_units": vocoder.num_units,
        "frame_hop": vocoder.frame_hop,
        "sample_rate": vocoder.sample_rate,
        "units": "unrecorded" if vocoder.units_kind is None else str(vocoder.units_kind),
        "weights_digest": weights_digest(vocoder.generator),
    }
    return {key: str(value) for key, value in entries.items()}


def check_metadata(found: Mapping[str, str], expected: Mapping[str, str], what: str) -> None:
    """A ``ValueError`` naming every entry of ``expected`` that ``found`` lacks or gives otherwise."""
    if found.get("echostream.graph") is None:
        raise ValueError(f"{what} carries no EchoStream metadata: export it with echostream-export")
    if found.get("echostream.format") != FORMAT_VERSION:
        raise ValueError(
            f"{what} was written in export format {found.get('echostream.format')}; this version reads "
            f"format {FORMAT_VERSION}: export it again with echostream-export"
        )
    differences = [
        f"{key}: {found.get(key, '(missing)')} in the graph, {value} for this checkpoint"
        for key, value in expected.items()
        if key not in _FILE_ENTRIES and found.get(key) != value
    ]
    if differences:
        raise ValueError(
            f"{what} was exported from another model than this checkpoint; export it again with "
            f"echostream-export. Differences: " + "; ".join(differences)
        )
