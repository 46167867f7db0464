"""A unit generator that works at the frame rate and ends in an inverse STFT (config ``"generator": "istft"``).

HiFi-GAN upsamples its frames 320-fold in learned stages. On a CPU its last stages, 4 to 16
channels wide over every output sample, take most of its time for little arithmetic: the tiny
generator runs at a quarter of the rate the full-size one reaches (docs/server.md). This generator
does all of its work at the 50 Hz frame rate, in channels wide enough to fill the vector units,
and has each frame predict a spectrum (a log magnitude and a phase per bin) that an inverse FFT
and overlap-add turn into samples; the design of Vocos (Siuzdak, 2023), on units.

Layers, ``[B, T]`` frame-level units -> ``[B, 1, T * hop]`` samples:

1. the unit embedding (``dict``, as fairseq's ``CodeGenerator``, so centroid initialisation and
   the duration predictor work alike), a convolution of kernel ``istft_kernel_size`` to
   ``istft_channels`` channels and a layer norm;
2. ``istft_layers`` ConvNeXt blocks: a depthwise convolution over time, a layer norm, a
   pointwise MLP (``3 * istft_channels`` wide, GELU), a learned per-channel scale, a residual;
3. a layer norm and a linear map to ``istft_n_fft + 2`` numbers per frame: the log magnitude and
   the phase of each of the ``istft_n_fft // 2 + 1`` bins;
4. an inverse real FFT per frame, a periodic Hann window, and overlap-add at the frame hop. Frame
   ``t``'s window is centred on its own samples ``[t * hop, (t + 1) * hop)``; the sum is divided by
   the windows' summed power, which repeats with the hop (``istft_n_fft`` is a multiple of it).

Rows padded on the right (``lengths``) are zeroed past their length before each layer that mixes
frames, and their padded frames give no spectrum, so each row's samples equal those of the row
synthesised alone.
"""

from __future__ import annotations

import math
from argparse import Namespace
from typing import Any, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from echostream_fairseq.vocoder.config import generator_name

__all__ = ["ISTFTGenerator", "is_istft", "frame_conv"]

# the most a log magnitude may say: exp(11.5) ~ 1e5, far above speech, keeps a bad prediction finite
MAX_LOG_MAGNITUDE = 11.5


def is_istft(config: Mapping[str, Any]) -> bool:
    """Whether ``config`` asks for this generator."""
    return generator_name(config) == "istft"


def frame_conv(x: Tensor, conv: nn.Conv1d) -> Tensor:
    """``conv`` (stride 1, odd kernel, same-length padding; full or depthwise) on frames laid out
    ``[B, T, C_in]`` -> ``[B, T, C_out]``, without a convolution library.

    oneDNN prepares each convolution for its input shape, and live streams bring a new batch size
    and length to nearly every call (the tiny generator's depthwise convolution: 0.1 ms at a shape
    met before, 0.35 ms at a new one); a depthwise kernel here is a few multiply-adds of shifted
    frames, a full one a single product over the shifted frames side by side, and the frames stay in
    the layout the linear layers use."""
    size = conv.kernel_size[0]
    if size % 2 == 0 or conv.stride[0] != 1 or conv.dilation[0] != 1 or conv.padding[0] != size // 2:
        raise ValueError(
            f"frame_conv takes odd kernels at stride 1 with same-length padding, got kernel {size}, "
            f"stride {conv.stride[0]}, dilation {conv.dilation[0]}, padding {conv.padding[0]}"
        )
    frames = x.size(1)
    padded = F.pad(x, (0, 0, size // 2, size // 2))
    if conv.groups == conv.in_channels == conv.out_channels:  # depthwise: a weight per channel and tap
        # the taps add up in fp32 (as a convolution library accumulates), whatever the layers' dtype
        taps = conv.weight[:, 0, :].t().float()  # [size, C]
        y = padded[:, :frames].float() * taps[0]
        for j in range(1, size):
            y = y.addcmul(padded[:, j : j + frames].float(), taps[j])
        return (y + conv.bias.float()).to(x.dtype)
    if conv.groups != 1:
        raise ValueError(f"frame_conv takes full or depthwise convolutions, not {conv.groups} groups")
    if torch.jit.is_tracing():  # the ONNX exporter cannot unfold a length it does not know
        windows = torch.stack([padded[:, j : j + frames] for j in range(size)], dim=-1)
    else:
        windows = padded.unfold(1, size, 1)  # [B, T, C_in, size]: the taps last, as in the weight
    return F.linear(windows.reshape(x.size(0), frames, -1), conv.weight.reshape(conv.out_channels, -1), conv.bias)


class _ConvNeXtBlock(nn.Module):
    def __init__(self, channels: int, kernel_size: int, scale: float) -> None:
        super().__init__()
        self.depthwise = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.expand = nn.Linear(channels, 3 * channels)
        self.project = nn.Linear(3 * channels, channels)
        self.scale = nn.Parameter(torch.full((channels,), scale))

    def forward(self, x: Tensor, mask: Optional[Tensor]) -> Tensor:
        """``[B, T, C]`` -> ``[B, T, C]``; ``mask`` ``[B, T, 1]`` (1: a real frame) or None."""
        y = frame_conv(x if mask is None else x * mask, self.depthwise)
        y = self.project(F.gelu(self.expand(self.norm(y))))
        return x + self.scale * y


class ISTFTGenerator(nn.Module):
    """Frame-level units -> waveform, all layers at the frame rate; see the module docstring.

    Args:
        config: a checked vocoder config with ``"generator": "istft"`` (its ``istft_*`` fields,
            ``code_hop_size``, ``num_embeddings``, ``embedding_dim``, ``dur_predictor_params``).
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        channels, kernel = int(config["istft_channels"]), int(config["istft_kernel_size"])
        self.hop = int(config["code_hop_size"])
        self.n_fft = int(config["istft_n_fft"])
        self.dict = nn.Embedding(config["num_embeddings"], config["embedding_dim"])
        self.conv_pre = nn.Conv1d(config["embedding_dim"], channels, kernel, padding=kernel // 2)
        self.norm_pre = nn.LayerNorm(channels)
        layers = int(config["istft_layers"])
        self.blocks = nn.ModuleList(_ConvNeXtBlock(channels, kernel, 1.0 / layers) for _ in range(layers))
        self.norm_post = nn.LayerNorm(channels)
        self.head = nn.Linear(channels, self.n_fft + 2)
        self.dur_predictor = None
        if config.get("dur_predictor_params"):
            from fairseq.models.text_to_speech.fastspeech2 import VariancePredictor

            self.dur_predictor = VariancePredictor(Namespace(**config["dur_predictor_params"]))
        # fp32 whatever the layers' dtype (not buffers, which .to(bfloat16) would round): the spectrum,
        # the inverse FFT and the overlap-add always run in fp32
        self.window = torch.hann_window(self.n_fft, periodic=True)
        # every output sample lies under n_fft / hop windows, one at each offset of its place in the hop
        self.inverse_power = 1.0 / (self.window**2).reshape(self.n_fft // self.hop, self.hop).sum(0)

    def forward(self, code: Tensor, lengths: Optional[Tensor] = None, **unused: Any) -> Tensor:
        """``code`` ``[B, T]`` frame-level units (``lengths`` ``[B]``: real frames per row, the rest
        padding) -> ``[B, 1, T * hop]`` float samples (zeros past each row's end)."""
        frames = code.size(1)
        mask = None
        if lengths is not None and bool((lengths < frames).any()):
            positions = torch.arange(frames, device=code.device)
            mask = (positions[None, :] < lengths.to(code.device)[:, None]).unsqueeze(-1).to(self.head.weight.dtype)
        audio = self._samples(code, mask)
        if mask is not None:  # the last real frames' windows reach into the padding
            samples = torch.arange(audio.size(1), device=audio.device)
            audio = audio * (samples[None, :] < lengths.to(audio.device)[:, None] * self.hop)
        return audio[:, None]

    @property
    def packing_gap(self) -> int:
        """Zeroed frames between two rows laid end to end: enough that no convolution reads across
        them (half a kernel) and that no row's windows reach the other's samples."""
        half_window = (self.n_fft - self.hop + 1) // 2  # samples a frame's window reaches past its own
        kernel = max(conv.kernel_size[0] for conv in [self.conv_pre] + [block.depthwise for block in self.blocks])
        return max(kernel // 2, -(-half_window // self.hop))

    def forward_packed(self, codes: Sequence[Tensor]) -> List[Tensor]:
        """Rows of any lengths (``[T_i]`` frame-level units each) -> their samples (``[T_i * hop]``
        each) from one run over the rows laid end to end, :attr:`packing_gap` zeroed frames
        between them: no frame is computed for padding, and each row's samples equal
        :meth:`forward` on it alone (to float rounding)."""
        if len(codes) == 1:  # nothing to keep apart
            return [self._samples(codes[0][None], None)[0]]
        gap = self.packing_gap
        pieces, real, starts, at = [], [], [], 0
        for i, code in enumerate(codes):
            if i:
                pieces.append(code.new_zeros(gap))
                real.append(torch.zeros(gap, device=code.device))
                at += gap
            starts.append(at)
            pieces.append(code)
            real.append(torch.ones(code.numel(), device=code.device))
            at += code.numel()
        mask = torch.cat(real).to(self.head.weight.dtype)[None, :, None]
        audio = self._samples(torch.cat(pieces)[None], mask)[0]
        return [audio[start * self.hop : (start + code.numel()) * self.hop] for start, code in zip(starts, codes)]

    def _samples(self, code: Tensor, mask: Optional[Tensor], by_products: bool = False) -> Tensor:
        """``[B, T]`` -> ``[B, T * hop]``; ``mask`` ``[B, T, 1]`` (1: a real frame) or None: masked
        frames are zeroed before each layer that mixes frames and give no spectrum. ``by_products``:
        the inverse FFT as products with a basis (:meth:`forward_for_graph`)."""
        x = self.dict(code)
        if mask is not None:
            x = x * mask
        x = self.norm_pre(frame_conv(x, self.conv_pre))
        for block in self.blocks:
            x = block(x, mask)
        spectrum = self._spectrum(x)
        bins = self.n_fft // 2 + 1
        magnitude = torch.exp(spectrum[..., :bins].clamp(max=MAX_LOG_MAGNITUDE))
        phase = spectrum[..., bins:]
        if mask is not None:  # masked frames give nothing (a non-finite phase there would still give NaN)
            magnitude, phase = magnitude * mask.float(), phase * mask.float()
        real, imaginary = magnitude * torch.cos(phase), magnitude * torch.sin(phase)
        if by_products:
            cosines, sines = self._inverse_dft_basis(magnitude.device)
            return self._overlap_add(real @ cosines + imaginary @ sines)
        window = self.window.to(magnitude.device)
        # torch.polar computes the same numbers at a quarter of the speed (its sine and cosine are not vectorised)
        return self._overlap_add(torch.fft.irfft(torch.complex(real, imaginary), n=self.n_fft) * window)

    def forward_for_graph(self, code: Tensor, lengths: Tensor) -> Tensor:
        """:meth:`forward` in the form an ONNX graph takes: ``[B, T]`` units and ``[B]`` lengths ->
        ``[B, T * hop]``, the padding always masked, the inverse FFT as two products with a real
        inverse DFT basis (ONNX has no inverse FFT). Equal to :meth:`forward` to float rounding."""
        # positions by a cumulative sum, so the traced graph keeps the length free
        frames = torch.ones_like(code[0]).cumsum(0) - 1
        mask = (frames[None, :] < lengths[:, None]).unsqueeze(-1).to(self.head.weight.dtype)
        audio = self._samples(code, mask, by_products=True)
        samples = torch.ones_like(audio[0], dtype=torch.long).cumsum(0) - 1
        return audio * (samples[None, :] < lengths[:, None] * self.hop)

    def _inverse_dft_basis(self, device) -> Tuple[Tensor, Tensor]:
        """``[n_fft // 2 + 1, n_fft]`` each: a frame's windowed inverse real FFT is ``real @ cosines +
        imaginary @ sines``. Every bin but the first and the last stands for two (its mirror image),
        and their sines are zero: the imaginary parts the inverse FFT ignores."""
        n = self.n_fft
        k = torch.arange(n // 2 + 1, dtype=torch.float64).unsqueeze(1)
        angle = 2 * math.pi * k * torch.arange(n, dtype=torch.float64).unsqueeze(0) / n
        weight = torch.full_like(k, 2.0)
        weight[0], weight[-1] = 1.0, 1.0
        scale = weight * self.window.to(torch.float64).unsqueeze(0) / n
        return (scale * torch.cos(angle)).float().to(device), (-scale * torch.sin(angle)).float().to(device)

    def _spectrum(self, x: Tensor) -> Tensor:
        """``[B, T, C]`` -> ``[B, T, n_fft + 2]`` log magnitudes and phases, the last norm and the head
        in fp32 (a bf16 phase would be off by up to a hundredth of a radian)."""
        norm, head = self.norm_post, self.head
        x = F.layer_norm(x.float(), norm.normalized_shape, norm.weight.float(), norm.bias.float(), norm.eps)
        return F.linear(x, head.weight.float(), head.bias.float())

    def _overlap_add(self, frames: Tensor) -> Tensor:
        """``[B, T, n_fft]`` windowed frames -> ``[B, T * hop]``: frame ``t`` starts ``(n_fft - hop) / 2``
        samples before ``t * hop``."""
        batch, count, _ = frames.shape
        pieces = self.n_fft // self.hop
        frames = frames.reshape(batch, count, pieces, self.hop)
        # piece j of frame t lands on hop block t + j of the uncut output
        total = sum(F.pad(frames[:, :, j], (0, 0, j, pieces - 1 - j)) for j in range(pieces))
        total = (total * self.inverse_power.to(total.device)).reshape(batch, -1)
        start = (self.n_fft - self.hop) // 2
        return total[:, start : start + count * self.hop]
