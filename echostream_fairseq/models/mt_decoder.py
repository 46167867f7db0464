"""The autoregressive MT decoder: target subwords from the speech encoder's states.

A pre-norm Transformer decoder (StreamSpeech: 4 layers, d=512, 8 heads). Training passes a
cross-attention mask ``[B, T_tgt, T_src]`` (the streaming mask of
:func:`echostream_fairseq.modules.masks.streaming_mt_mask`) so that each target token sees only
the source prefix a simultaneous policy would have read. Inference uses fairseq's incremental
state, so :class:`fairseq.sequence_generator.SequenceGenerator` runs beam search on it.

Besides the logits, :meth:`forward` returns the final hidden states (``extra["hidden"]``,
``[B, T_tgt, D]``): the text-to-unit encoder reads them.

:meth:`step` is the simultaneous translator's incremental path: new decoder inputs and new
encoder frames in, explicit :class:`LayerCache` lists in and out, both attention caches bounded by
windows so a step costs the same wherever it falls in the stream.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from fairseq.models import FairseqIncrementalDecoder
from fairseq.models.transformer import Embedding
from torch import Tensor, nn

from echostream_fairseq.modules.positions import sinusoidal_rows, token_positions
from echostream_fairseq.modules.transformer_layer import (
    LayerCache,
    TransformerLayer,
    padded_step,
    stack_step,
    stack_step_packed,
)

__all__ = ["MTDecoder"]

_CACHE_KEYS = ("self_key", "self_value", "cross_key", "cross_value")


class MTDecoder(FairseqIncrementalDecoder):
    """Args:
    dictionary: target subword dictionary.
    encoder_dim: size of the encoder states it cross-attends.
    embed_dim, ffn_dim, num_layers, num_heads: decoder sizes.
    dropout, attention_dropout, activation_dropout: regularisation.
    max_positions: longest target sequence.
    """

    def __init__(
        self,
        dictionary,
        encoder_dim: int,
        embed_dim: int,
        ffn_dim: int,
        num_layers: int,
        num_heads: int,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        activation_dropout: float = 0.0,
        max_positions: int = 1024,
    ) -> None:
        super().__init__(dictionary)
        self.embed_dim, self.max_target_positions = embed_dim, max_positions
        self.padding_idx = dictionary.pad()
        self.embed_tokens = Embedding(len(dictionary), embed_dim, self.padding_idx)
        self.embed_scale = math.sqrt(embed_dim)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            TransformerLayer(
                embed_dim, num_heads, ffn_dim, dropout, attention_dropout, activation_dropout, memory_dim=encoder_dim
            )
            for _ in range(num_layers)
        )
        self.final_norm = nn.LayerNorm(embed_dim)

    # -- incremental state (fairseq's dict, one entry per layer) -------------------------------

    def _get_caches(self, incremental_state) -> List[Optional[LayerCache]]:
        saved = self.get_incremental_state(incremental_state, "layer_caches")
        if not saved:
            return [None] * len(self.layers)
        return [LayerCache(*(saved.get(f"{i}.{k}") for k in _CACHE_KEYS)) for i in range(len(self.layers))]

    def _set_caches(self, incremental_state, caches: List[LayerCache]) -> None:
        saved: Dict[str, Optional[Tensor]] = {}
        for i, c in enumerate(caches):
            for k in _CACHE_KEYS:
                saved[f"{i}.{k}"] = getattr(c, k)
        self.set_incremental_state(incremental_state, "layer_caches", saved)

    def reorder_incremental_state(self, incremental_state, new_order: Tensor) -> None:
        saved = self.get_incremental_state(incremental_state, "layer_caches")
        if saved:
            saved = {k: None if v is None else v.index_select(0, new_order) for k, v in saved.items()}
            self.set_incremental_state(incremental_state, "layer_caches", saved)

    # -- forward --------------------------------------------------------------------------------

    def forward(
        self,
        prev_output_tokens: Tensor,
        encoder_out: Optional[Dict[str, List[Tensor]]] = None,
        incremental_state: Optional[Dict[str, Dict[str, Optional[Tensor]]]] = None,
        cross_attention_mask: Optional[Tensor] = None,
        features_only: bool = False,
        **kwargs: Any,
    ) -> Tuple[Tensor, Dict[str, Any]]:
        """Args:
            prev_output_tokens: ``[B, T_tgt]`` (eos first, teacher forcing).
            encoder_out: fairseq encoder dict (``encoder_out`` ``[T_src, B, D_enc]``).
            incremental_state: fairseq's dict; only the last position is decoded when given.
            cross_attention_mask: ``[B, T_tgt, T_src]`` bool, ``True`` = visible (training).
            features_only: return hidden states instead of logits.

        Returns:
            logits ``[B, T, V]`` (or hidden states) and ``{"hidden": [B, T, D], "attn": [None]}``.
        """
        memory = encoder_out["encoder_out"][0].transpose(0, 1)  # [B, T_src, D_enc]
        src_padding = encoder_out["encoder_padding_mask"][0] if encoder_out.get("encoder_padding_mask") else None
        tokens = prev_output_tokens
        caches: List[Optional[LayerCache]] = [None] * len(self.layers)
        if incremental_state is not None:  # the last token, at its step's position (as fairseq)
            tokens = tokens[:, -1:]
            position = torch.tensor([self.padding_idx + prev_output_tokens.size(1)], device=tokens.device)
            positions = sinusoidal_rows(position, self.embed_dim).unsqueeze(0)
            caches = self._get_caches(incremental_state)
        else:
            positions = token_positions(tokens, self.padding_idx, self.embed_dim)
        x = self.dropout(self.embed_scale * self.embed_tokens(tokens) + positions)
        B, T = tokens.shape
        past = 0 if caches[0] is None or caches[0].self_key is None else caches[0].self_key.size(2)
        key_pos = torch.arange(past + T, device=x.device)
        query_pos = torch.arange(past, past + T, device=x.device)
        self_mask = (key_pos.unsqueeze(0) <= query_pos.unsqueeze(1)).unsqueeze(0)  # causal [1, T, P + T]
        memory_mask = None
        if src_padding is not None and bool(src_padding.any()):
            memory_mask = (~src_padding).unsqueeze(1)  # [B, 1, T_src]
        if cross_attention_mask is not None:
            if incremental_state is not None:
                cross_attention_mask = cross_attention_mask[:, -T:]
            memory_mask = cross_attention_mask if memory_mask is None else memory_mask & cross_attention_mask
        new_caches = []
        for layer, cache in zip(self.layers, caches):
            x, cache = layer(x, self_mask, memory, memory_mask, cache)
            new_caches.append(cache)
        if incremental_state is not None:
            self._set_caches(incremental_state, new_caches)
        hidden = self.final_norm(x)
        extra = {"hidden": hidden, "attn": [None], "inner_states": None}
        if features_only:
            return hidden, extra
        return self.output_layer(hidden), extra

    def step(
        self,
        tokens: Tensor,
        caches: Optional[List[LayerCache]],
        position: int,
        new_memory: Optional[Tensor] = None,
        memory_window: int = 0,
        self_window: int = 0,
    ) -> Tuple[Tensor, Tensor, List[LayerCache]]:
        """Advance by new decoder inputs and new encoder frames (inference; no dropout).

        Args:
            tokens: ``[B, n]`` decoder inputs (``n`` may be 0 to only extend the memory); the first
                is input number ``position`` of the sentence (0: the begin-of-sentence eos).
            caches: from the previous step (``None``: a new sentence and an empty memory).
            new_memory: ``[B, s, D_enc]`` encoder frames that arrived since the last step.
            memory_window: encoder frames kept for cross-attention, the most recent (0: all).
            self_window: earlier inputs each input may attend (0: all).

        Returns:
            logits ``[B, n, V]``, hidden states ``[B, n, D]`` (what the T2U encoder reads) and the
            caches.
        """
        n = tokens.size(1)
        rows = sinusoidal_rows(torch.arange(n, device=tokens.device) + self.padding_idx + 1 + position, self.embed_dim)
        embedded = self.embed_tokens(tokens)
        x = self.embed_scale * embedded + rows.to(embedded.dtype).unsqueeze(0)
        x, caches = stack_step(self.layers, x, caches, self_window, new_memory=new_memory, memory_window=memory_window)
        hidden = self.final_norm(x)
        return self.output_layer(hidden), hidden, caches

    def extend_memory(
        self, caches: Sequence[Optional[List[LayerCache]]], new_memories: Sequence[Tensor], memory_window: int = 0
    ) -> List[List[LayerCache]]:
        """:meth:`step` with no decoder inputs (only the memory advances) for several streams at once:
        every stream's new frames ``[1, s_i, D_enc]`` are projected to cross-attention keys and
        values in one product per layer. Stream ``i``'s caches equal :meth:`step` on it alone."""
        nothing = [m.new_zeros(1, 0, self.embed_dim) for m in new_memories]
        _, caches = stack_step_packed(
            self.layers, nothing, caches, new_memories=new_memories, memory_window=memory_window
        )
        return caches

    def step_rows(
        self,
        tokens: Tensor,
        positions: Tensor,
        caches: List[LayerCache],
        self_valid: Tensor,
        memory_valid: Tensor,
        self_window: int = 0,
    ) -> Tuple[Tensor, Tensor, List[LayerCache], Tensor]:
        """One decoder input for each of several streams at different points (inference).

        Args:
            tokens: ``[B]`` decoder inputs; ``positions`` ``[B]``: each one's input number.
            caches, self_valid, memory_valid: left-padded caches of the streams and their valid
                masks (:func:`~echostream_fairseq.modules.transformer_layer.pad_caches`).
            self_window: earlier inputs each input may attend (0: all), as in :meth:`step`.

        Returns:
            logits ``[B, V]``, hidden states ``[B, 1, D]``, the caches and the new self mask; row
            ``b`` equals :meth:`step` of stream ``b`` alone.
        """
        rows = sinusoidal_rows(positions + self.padding_idx + 1, self.embed_dim)
        embedded = self.embed_tokens(tokens.unsqueeze(1))
        x = self.embed_scale * embedded + rows.to(embedded.dtype).unsqueeze(1)
        x, caches, self_valid = padded_step(self.layers, x, caches, self_valid, memory_valid, self_window)
        hidden = self.final_norm(x)
        return self.output_layer(hidden)[:, -1], hidden, caches, self_valid

    def output_layer(self, features: Tensor) -> Tensor:
        """Logits with the output projection tied to the input embedding."""
        return nn.functional.linear(features, self.embed_tokens.weight)

    def max_positions(self) -> int:
        return self.max_target_positions
