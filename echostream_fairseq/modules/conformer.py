"""Chunk-based causal Conformer: the StreamSpeech encoder that EchoStream is measured against.

Training and offline decoding use a chunk attention mask: a frame in chunk ``c`` (of
``chunk_length`` frames) attends to every frame of chunks ``0..c``. The depthwise convolution is
causal. Self-attention uses Transformer-XL relative positions (as in ESPnet and StreamSpeech).

Streaming here re-encodes the whole prefix at every chunk, as StreamSpeech's agent does: the state
is every input frame so far, and a step costs more the longer the stream has run. That growth is
what the Emformer removes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from fairseq.modules.conformer_layer import FeedForwardModule
from torch import Tensor, nn

from echostream_fairseq.modules.convolution import CausalConvolutionModule

__all__ = ["ChunkConformer", "ConformerState"]


def relative_positions(length: int, dim: int, device=None, dtype=None) -> Tensor:
    """Sinusoidal embeddings of the relative positions ``length - 1 .. -(length - 1)``: ``[2T - 1, dim]``."""
    pos = torch.arange(length - 1, -length, -1, device=device, dtype=torch.float32).unsqueeze(1)
    inv_freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    emb = torch.zeros(2 * length - 1, dim, device=device)
    emb[:, 0::2] = torch.sin(pos * inv_freq)
    emb[:, 1::2] = torch.cos(pos * inv_freq)
    return emb.to(dtype) if dtype is not None else emb


class RelPositionSelfAttention(nn.Module):
    """Self-attention with relative position scores (Dai et al., 2019): content term with bias u,
    position term with bias v, added as a score bias to ``scaled_dot_product_attention``."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        self.num_heads, self.head_dim, self.dropout = num_heads, embed_dim // num_heads, dropout
        self.qkv_proj = nn.Linear(embed_dim, 3 * embed_dim)
        self.pos_proj = nn.Linear(embed_dim, embed_dim, bias=False)
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        self.pos_bias_u = nn.Parameter(torch.zeros(num_heads, self.head_dim))
        self.pos_bias_v = nn.Parameter(torch.zeros(num_heads, self.head_dim))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)

    def forward(self, x: Tensor, pos_emb: Tensor, mask: Tensor) -> Tensor:
        """``x`` ``[B, T, D]``, ``pos_emb`` ``[2T - 1, D]``, ``mask`` ``[B or 1, 1, T, T]`` (True: attend)."""
        B, T, D = x.shape
        H, d = self.num_heads, self.head_dim
        q, k, v = self.qkv_proj(x).view(B, T, 3, H, d).permute(2, 0, 3, 1, 4)  # [B, H, T, d] each
        p = self.pos_proj(pos_emb).view(-1, H, d).transpose(0, 1)  # [H, 2T - 1, d]
        scores_pos = torch.matmul(q + self.pos_bias_v.unsqueeze(1), p.transpose(1, 2))  # [B, H, T, 2T - 1]
        # shift so that entry [i, j] holds relative position i - j
        scores_pos = F.pad(scores_pos, (1, 0)).view(B, H, 2 * T, T)[:, :, 1:].reshape(B, H, T, 2 * T - 1)[..., :T]
        bias = (scores_pos / math.sqrt(d)).masked_fill(~mask, float("-inf"))
        out = F.scaled_dot_product_attention(
            q + self.pos_bias_u.unsqueeze(1), k, v, attn_mask=bias, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out_proj(out.transpose(1, 2).reshape(B, T, D))


class ConformerLayer(nn.Module):
    """Macaron Conformer block: half FFN, relative-position self-attention, convolution, half FFN, LayerNorm."""

    def __init__(self, embed_dim: int, num_heads: int, ffn_dim: int, kernel_size: int, dropout: float) -> None:
        super().__init__()
        self.ffn1 = FeedForwardModule(embed_dim, ffn_dim, dropout, dropout, activation_fn="swish")
        self.attn_norm = nn.LayerNorm(embed_dim)
        self.attn = RelPositionSelfAttention(embed_dim, num_heads, dropout)
        self.attn_dropout = nn.Dropout(dropout)
        self.conv = CausalConvolutionModule(embed_dim, kernel_size, dropout)
        self.ffn2 = FeedForwardModule(embed_dim, ffn_dim, dropout, dropout, activation_fn="swish")
        self.final_norm = nn.LayerNorm(embed_dim)

    def forward(self, x: Tensor, pos_emb: Tensor, mask: Tensor, padding: Optional[Tensor]) -> Tensor:
        x = x + 0.5 * self.ffn1(x)
        x = x + self.attn_dropout(self.attn(self.attn_norm(x), pos_emb, mask))
        x = x + self.conv(x, padding)
        x = x + 0.5 * self.ffn2(x)
        return self.final_norm(x)


@dataclass(frozen=True)
class ConformerState:
    """Every input frame of the stream so far, ``[B, t, D]``: the baseline re-encodes them all."""

    prefix: Tensor
    finished: bool = False


class ChunkConformer(nn.Module):
    """Args:
    input_dim: model dimension ``D``.
    num_heads: attention heads.
    ffn_dim: feed-forward hidden size.
    num_layers: layers.
    chunk_length: chunk size in frames (the attention mask's block; also the streaming step).
    depthwise_conv_kernel_size: kernel of the causal depthwise convolution.
    dropout: dropout probability.
    """

    right_context_length = 0

    def __init__(
        self,
        input_dim: int,
        num_heads: int,
        ffn_dim: int,
        num_layers: int,
        chunk_length: int,
        depthwise_conv_kernel_size: int = 31,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if chunk_length < 1:
            raise ValueError(f"chunk_length must be >= 1, got {chunk_length}")
        self.input_dim, self.chunk_length = input_dim, chunk_length
        self.layers = nn.ModuleList(
            ConformerLayer(input_dim, num_heads, ffn_dim, depthwise_conv_kernel_size, dropout)
            for _ in range(num_layers)
        )

    @property
    def input_chunk_length(self) -> int:
        """Input frames per streaming step (the same as the output frames)."""
        return self.chunk_length

    def forward(self, input: Tensor, lengths: Tensor, chunk_length: Optional[int] = None) -> Tuple[Tensor, Tensor]:
        """``input`` ``[B, T, D]``, ``lengths`` ``[B]`` -> ``[B, T, D]``, ``lengths``.

        ``chunk_length`` overrides the module's chunk size for this call (multi-chunk training
        draws one per batch; 0 means one chunk spanning the whole input, i.e. offline).
        """
        if input.dim() != 3 or input.size(-1) != self.input_dim:
            raise ValueError(f"input must have shape [batch, time, {self.input_dim}], got {list(input.shape)}")
        B, T, _ = input.shape
        chunk = self.chunk_length if chunk_length is None else chunk_length
        chunk = T if chunk <= 0 else chunk
        t = torch.arange(T, device=input.device)
        mask = t.unsqueeze(0) < ((t // chunk + 1) * chunk).unsqueeze(1)  # [T, T]: key chunk <= query chunk
        padding = None
        mask = mask.view(1, 1, T, T)
        if bool((lengths < T).any()):
            padding = t.unsqueeze(0) >= lengths.unsqueeze(1)  # [B, T]
            mask = mask & ~padding.view(B, 1, 1, T)
        pos_emb = relative_positions(T, self.input_dim, input.device, input.dtype)
        x = input
        for layer in self.layers:
            x = layer(x, pos_emb, mask, padding)
        return x, lengths

    def initial_state(self, batch_size: int, device=None, dtype=None) -> ConformerState:
        p = next(self.parameters())
        return ConformerState(
            torch.zeros(batch_size, 0, self.input_dim, device=device or p.device, dtype=dtype or p.dtype)
        )

    def step(
        self, chunk: Tensor, right_context: Optional[Tensor], state: Optional[ConformerState] = None
    ) -> Tuple[Tensor, ConformerState]:
        """Re-encode the prefix plus ``chunk`` ``[B, s, D]`` and return the outputs of the new frames."""
        if chunk.dim() != 3 or chunk.size(-1) != self.input_dim:
            raise ValueError(f"chunk must have shape [batch, time, {self.input_dim}], got {list(chunk.shape)}")
        if chunk.size(1) == 0:
            raise ValueError("empty chunk: a step needs at least one frame")
        if state is None:
            state = self.initial_state(chunk.size(0), chunk.device, chunk.dtype)
        if state.finished:
            raise ValueError("the stream is finished: a short final chunk was already processed; start a new state")
        prefix = torch.cat([state.prefix, chunk], dim=1)
        lengths = torch.full((prefix.size(0),), prefix.size(1), device=prefix.device)
        out, _ = self.forward(prefix, lengths)
        s = chunk.size(1)
        return out[:, -s:], ConformerState(prefix, finished=s < self.chunk_length)
