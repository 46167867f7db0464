"""A causal unit HiFi-GAN whose streaming step keeps per-layer caches instead of re-synthesising.

fairseq's HiFi-GAN pads every convolution on both sides, so a sample depends on units to its right
(about 270 ms in the tiny generator) and incremental synthesis must re-synthesise a left context at
every call (:mod:`~echostream_fairseq.vocoder.incremental`). With ``"causal": true`` in the config
the same network (same parameters, same state-dict keys) pads on the left only, and each transposed
convolution's overlap falls on later samples, so a sample depends on the units up to its own frame.
Then synthesis can run frame by frame: every convolution keeps its last ``(kernel - 1) * dilation``
input samples, every transposed convolution the part of its output the next frame still adds to,
and a call synthesises its new frames only, equal to one pass over the whole sequence.

``"lookahead_frames": N`` lets the first convolution see N frames ahead (fairseq's sees 3), so a
sample depends on the units up to N frames after its own: streaming then holds back the last N
frames (20 ms each) until the frames after them arrive or the stream ends.

The state is one ``[B, cache_size]`` tensor per batch of streams (every cache flattened, in the
order of :meth:`CausalCodeGenerator.cache_shapes`): the states of any streams stack, whatever they
have spoken, and a batch of streams splits back into rows.
"""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

# CausalCodeGenerator is built on first use (module __getattr__ below): it subclasses fairseq's generator
__all__ = ["CausalCodeGenerator", "is_causal", "lookahead_frames"]  # noqa: F822

# fairseq's HiFi-GAN slope between layers (its last activation uses leaky_relu's default)
LRELU_SLOPE = 0.1


def is_causal(config: Mapping[str, Any]) -> bool:
    return bool(config.get("causal", False))


def lookahead_frames(config: Mapping[str, Any]) -> int:
    """Frames after its own that a sample of a causal generator depends on (0: none)."""
    return int(config.get("lookahead_frames", 0))


def _causal_generator_class():
    from fairseq.models.text_to_speech.codehifigan import CodeGenerator

    class CausalCodeGenerator(CodeGenerator):
        """fairseq's ``CodeGenerator`` with left padding only, and an incremental :meth:`step`.

        The modules are fairseq's (weight norm included while training), with their built-in
        padding set to zero; the forward pass pads on the left itself."""

        def __init__(self, cfg: Mapping[str, Any]) -> None:
            super().__init__(dict(cfg))
            if str(cfg.get("resblock", "1")) != "1":
                raise ValueError(
                    f"a causal generator needs resblock '1' (two convolutions per dilation), got {cfg['resblock']!r}"
                )
            self.upsample_rates = [int(u) for u in cfg["upsample_rates"]]
            self.lookahead_frames = lookahead_frames(cfg)
            if not 0 <= self.lookahead_frames <= _reach(self.conv_pre):
                raise ValueError(f"lookahead_frames must be 0..{_reach(self.conv_pre)}, got {self.lookahead_frames}")
            for conv in self._convolutions():
                conv.padding = (0,)
            for up in self.ups:
                up.padding = (0,)
            # fixed by the modules: worked out once, not on every step
            self._cache_shapes = self._shapes_of_caches()
            self._cache_size = sum(channels * length for channels, length in self._cache_shapes)

        def _convolutions(self) -> List[torch.nn.Conv1d]:
            convs = [self.conv_pre]
            for block in self.resblocks:
                for first, second in zip(block.convs1, block.convs2):
                    convs += [first, second]
            return convs + [self.conv_post]

        def cache_shapes(self) -> List[Tuple[int, int]]:
            """``(channels, samples)`` of each cache in the state, in the order the forward pass meets
            them: every convolution's last input samples, every transposed convolution's overlap."""
            return list(self._cache_shapes)

        def _shapes_of_caches(self) -> List[Tuple[int, int]]:
            shapes = [(self.conv_pre.in_channels, _reach(self.conv_pre) - self.lookahead_frames)]
            for i, up in enumerate(self.ups):
                shapes.append((up.out_channels, up.kernel_size[0] - up.stride[0]))
                for block in self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]:
                    for first, second in zip(block.convs1, block.convs2):
                        shapes += [(first.in_channels, _reach(first)), (second.in_channels, _reach(second))]
            shapes.append((self.conv_post.in_channels, _reach(self.conv_post)))
            return shapes

        @property
        def cache_size(self) -> int:
            """Numbers in one stream's state."""
            return self._cache_size

        def initial_state(self, batch_size: int = 1) -> Tensor:
            """``[batch_size, cache_size]`` zeros: the left padding of the first call."""
            weight = self.conv_pre.weight
            return torch.zeros(batch_size, self.cache_size, dtype=weight.dtype, device=weight.device)

        def forward(self, **kwargs) -> Tensor:
            """fairseq's interface: ``code=[B, T]`` frame-level units (``dur_prediction=True``: de-duplicated
            units, one sequence) -> ``[B, 1, T * hop]`` audio, every sample causal."""
            code = kwargs["code"]
            if self.dur_predictor is not None and kwargs.get("dur_prediction", False):
                if code.size(0) != 1:
                    raise ValueError("duration prediction takes one sequence at a time")
                log_duration = self.dur_predictor(self.dict(code))
                durations = torch.clamp(torch.round(torch.exp(log_duration) - 1).long(), min=1)
                code = torch.repeat_interleave(code, durations.view(-1))[None]
            # the sequence ends after its last frame: no lookahead frame is real (zeros, as fairseq pads)
            padded = F.pad(code, (0, self.lookahead_frames))
            audio, _ = self.step(
                padded, self.initial_state(code.size(0)), lookahead=torch.zeros(code.size(0), dtype=torch.long)
            )
            return audio[:, None]

        def step(
            self, frames: Tensor, state: Tensor, lengths: Optional[Tensor] = None, lookahead: Optional[Tensor] = None
        ) -> Tuple[Tensor, Tensor]:
            """Synthesise frames after those ``state`` has seen.

            Args:
                frames: ``[B, T + N]`` frame-level unit ids (``N`` = :attr:`lookahead_frames`): row ``b``
                    holds the ``lengths[b]`` frames to synthesise, the ``N`` frames after them, then
                    any padding (which touches neither its audio nor its next state).
                state: ``[B, cache_size]``, the streams' caches (:meth:`initial_state`, or the previous step's).
                lengths: ``[B]`` frames to synthesise per row, each in ``1..T`` (default: all ``T``).
                lookahead: ``[B]`` how many of the ``N`` frames after a row's are real (default: all);
                    the rest are the end of the sequence, zeros as one pass pads it.

            Returns:
                ``(audio, state)``: ``[B, T * hop]`` samples (row ``b`` valid for its first
                ``lengths[b] * hop``) and ``[B, cache_size]``, the caches after each row's last frame.
            """
            shapes = self._cache_shapes
            if state.dim() != 2 or state.size(0) != frames.size(0) or state.size(1) != self.cache_size:
                raise ValueError(
                    f"state must be [{frames.size(0)}, {self.cache_size}] (streams, cache size), "
                    f"got {list(state.shape)}"
                )
            batch = frames.size(0)
            caches = iter(
                [
                    part.view(batch, c, n)
                    for part, (c, n) in zip(torch.split(state, [c * n for c, n in shapes], dim=1), shapes)
                ]
            )
            new_caches: List[Tensor] = []
            if lengths is not None and bool((lengths == frames.size(1) - self.lookahead_frames).all()):
                lengths = None
            scale = 1  # samples per frame at the current layer

            def conv(x: Tensor, layer: torch.nn.Conv1d) -> Tensor:
                cache = next(caches)
                joined = torch.cat([cache, x], dim=2)
                new_caches.append(_last(joined, cache.size(2), None if lengths is None else lengths * scale))
                return layer(joined)  # the module itself, so that weight norm's hook runs while training

            ahead = self.lookahead_frames
            embedded = self.dict(frames).transpose(1, 2)
            if lookahead is not None or lengths is not None:  # zeros after each row's real frames
                real = frames.size(1) - ahead if lengths is None else lengths
                real = real + (ahead if lookahead is None else lookahead)
                positions = torch.arange(frames.size(1), device=frames.device)
                embedded = embedded * (positions < real[:, None]).to(embedded.dtype)[:, None]
            joined = torch.cat([next(caches), embedded], dim=2)
            # the first convolution's cache ends at the row's last frame to synthesise, not at its lookahead
            ends = torch.full((batch,), frames.size(1) - ahead, device=frames.device) if lengths is None else lengths
            new_caches.append(
                _last(joined, joined.size(2) - frames.size(1), None if lengths is None and not ahead else ends)
            )
            x = self.conv_pre(joined)  # [B, C, T]
            for i, up in enumerate(self.ups):
                x = F.leaky_relu(x, LRELU_SLOPE)
                if lengths is not None:  # a padded frame must not add to the overlap kept for the next call
                    positions = torch.arange(x.size(2), device=x.device)
                    x = x * (positions < (lengths * scale)[:, None]).to(x.dtype)[:, None]
                x = self._upsample_step(x, up, next(caches), new_caches, lengths, scale)
                scale *= self.upsample_rates[i]
                total = None
                for block in self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]:
                    y = x
                    for first, second in zip(block.convs1, block.convs2):
                        inner = conv(F.leaky_relu(y, LRELU_SLOPE), first)
                        y = conv(F.leaky_relu(inner, LRELU_SLOPE), second) + y
                    total = y if total is None else total + y
                x = total / self.num_kernels
            audio = torch.tanh(conv(F.leaky_relu(x), self.conv_post))
            return audio[:, 0], torch.cat([cache.reshape(batch, -1) for cache in new_caches], dim=1)

        @staticmethod
        def _upsample_step(
            x: Tensor,
            up: torch.nn.ConvTranspose1d,
            overlap: Tensor,
            new_caches: List[Tensor],
            lengths: Optional[Tensor],
            scale: int,
        ) -> Tensor:
            stride, tail = up.stride[0], overlap.size(2)
            y = up(x)  # [B, C, (T - 1) * stride + kernel], the bias on every sample
            y = torch.cat([y[:, :, :tail] + overlap, y[:, :, tail:]], dim=2)
            # the overlap is kept without the bias, which the next call's output brings again
            ends = None if lengths is None else lengths * scale * stride
            new_caches.append(_last(y, tail, ends) - up.bias[:, None])
            return y[:, :, : x.size(2) * stride]

    return CausalCodeGenerator


def _reach(conv: torch.nn.Conv1d) -> int:
    """Input samples before the current one that a convolution sees."""
    return (conv.kernel_size[0] - 1) * conv.dilation[0]


def _last(x: Tensor, length: int, ends: Optional[Tensor]) -> Tensor:
    """Samples ``ends[b] .. ends[b] + length`` of each row of ``x`` (``ends`` None: the last ``length``).

    For a convolution's input joined to its cache these are the row's last ``length`` real samples
    (``ends`` counts the real samples after the cache); for a transposed convolution's output, the
    overlap that the row's next frames add to."""
    if ends is None:
        return x[:, :, x.size(2) - length :]
    index = ends.to(x.device)[:, None] + torch.arange(length, device=x.device)
    return torch.gather(x, 2, index[:, None, :].expand(x.size(0), x.size(1), length))


def __getattr__(name: str):
    # the class subclasses fairseq's, which is imported only when it is first needed
    if name == "CausalCodeGenerator":
        cls = _causal_generator_class()
        globals()[name] = cls
        return cls
    raise AttributeError(name)
