"""A fairseq/StreamSpeech CodeHiFiGAN vocoder checkpoint, checked and wrapped as a :class:`UnitVocoder`.

The network is fairseq's own (``CodeGenerator`` through ``CodeHiFiGANVocoder``), so checkpoints
trained with fairseq or speech-resynthesis and ours (``echostream-train-vocoder``) load the same
way. Before handing the file to fairseq we check it against the config and say what does not
match; fairseq would otherwise fail deep in ``load_state_dict``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

import echostream_fairseq.vocoder.causal_hifigan as causal_hifigan
from echostream_fairseq.common.cpu import cpu_capabilities
from echostream_fairseq.common.units_kind import UnitsKind
from echostream_fairseq.vocoder.base import UnitVocoder, as_unit_tensor
from echostream_fairseq.vocoder.causal_hifigan import is_causal
from echostream_fairseq.vocoder.config import (
    VocoderError,
    check_vocoder_config,
    frame_hop,
    load_vocoder_config,
    sample_rate,
)
from echostream_fairseq.vocoder.istft_generator import ISTFTGenerator, frame_conv, is_istft

__all__ = ["CodeHiFiGANUnitVocoder", "build_generator", "load_generator_state", "check_generator_state"]

logger = logging.getLogger(__name__)
_fp32_vocoder_noted: list = []

# oneDNN keeps 1024 prepared convolutions by default; a full-size generator needs about 60 per input
# length, so a stream's dozen lengths would evict each other and be prepared again on every call
# (docs/decisions.md). Read by oneDNN when it first prepares one; a value set by the user wins.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "8192")


def build_generator(config: Mapping[str, Any]) -> torch.nn.Module:
    """A randomly initialised fairseq ``CodeGenerator`` (with weight norm) for ``config``; with
    ``"causal": true``, its causal form (same parameters, :mod:`~echostream_fairseq.vocoder.causal_hifigan`);
    with ``"generator": "istft"``, the frame-rate generator of :mod:`~echostream_fairseq.vocoder.istft_generator`."""
    from fairseq.models.text_to_speech.codehifigan import CodeGenerator

    config = check_vocoder_config(config)
    if is_istft(config):
        return ISTFTGenerator(config)
    if is_causal(config):
        return causal_hifigan.CausalCodeGenerator(config)
    return CodeGenerator(config)


def load_generator_state(path: str) -> Dict[str, Tensor]:
    """The ``generator`` state dict of a checkpoint file, loaded with ``weights_only=True``."""
    if not os.path.isfile(path):
        raise VocoderError(f"{path}: vocoder checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and allow-list errors all mean "not a usable checkpoint"
        raise VocoderError(
            f"{path}: cannot read the vocoder checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
        ) from None
    if not isinstance(checkpoint, Mapping) or "generator" not in checkpoint:
        keys = sorted(checkpoint)[:8] if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
        raise VocoderError(f"{path}: not a CodeHiFiGAN checkpoint: no 'generator' entry (found {keys})")
    return checkpoint["generator"]


def check_generator_state(state: Mapping[str, Tensor], config: Mapping[str, Any], where: str) -> None:
    """Raise :class:`VocoderError` listing the parameters whose names or shapes differ from ``config``'s generator."""
    with torch.device("meta"):  # shapes only, no memory or init cost
        expected = {k: tuple(v.shape) for k, v in build_generator(config).state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    problems: List[str] = []
    for key in expected.keys() - found.keys():
        problems.append(f"missing {key} {expected[key]}")
    for key in found.keys() - expected.keys():
        problems.append(f"unexpected {key} {found[key]}")
    for key in expected.keys() & found.keys():
        if expected[key] != found[key]:
            problems.append(f"{key}: checkpoint {found[key]}, config {expected[key]}")
    if problems:
        problems.sort()
        hint = ""
        emb = found.get("dict.weight")
        if emb is not None and emb[0] != config["num_embeddings"]:
            hint = (
                f" (the checkpoint has {emb[0]} unit embeddings, the config num_embeddings={config['num_embeddings']})"
            )
        raise VocoderError(
            f"{where}: checkpoint does not match its config{hint}: {len(problems)} difference(s): "
            + "; ".join(problems[:6])
            + (" ..." if len(problems) > 6 else "")
        )


class CodeHiFiGANUnitVocoder(UnitVocoder):
    """fairseq's ``CodeHiFiGANVocoder`` behind the :class:`UnitVocoder` interface; a config with
    ``"generator": "istft"`` loads the iSTFT generator from a checkpoint of the same format instead.

    Args:
        checkpoint: generator checkpoint (``{"generator": state_dict, ...}``).
        config: parsed, checked ``config.json``.
    """

    def __init__(self, checkpoint: str, config: Mapping[str, Any]) -> None:
        super().__init__()
        from fairseq.models.text_to_speech.vocoder import CodeHiFiGANVocoder

        config = check_vocoder_config(config, where=f"config of {checkpoint}")
        state = load_generator_state(checkpoint)
        check_generator_state(state, config, checkpoint)
        self.istft = is_istft(config)
        self.causal = is_causal(config)
        if self.istft:  # our own network: fairseq's wrapper builds HiFi-GANs only
            self.fairseq_vocoder = None
            self.istft_generator = ISTFTGenerator(config)
            self.istft_generator.load_state_dict(state)
            self.istft_generator.eval()
            # its convolutions are its own (frame_conv): nothing is prepared per input shape, and
            # its rows can be laid end to end (no padding computed)
            self.length_bucket, self.any_batch_size, self.batches_packed = 1, True, True
        else:
            with contextlib.redirect_stdout(io.StringIO()):  # fairseq prints while removing weight norm
                self.fairseq_vocoder = CodeHiFiGANVocoder(checkpoint, dict(config))
                if self.causal:  # the same parameters in the causal network, which fairseq's wrapper then runs
                    causal = causal_hifigan.CausalCodeGenerator(config)
                    causal.remove_weight_norm()
                    causal.load_state_dict(self.fairseq_vocoder.model.state_dict())
                    self.fairseq_vocoder.model = causal
                    self.lookahead_frames = causal.lookahead_frames
            self.fairseq_vocoder.eval()
        self.config = config
        self.sample_rate = sample_rate(config)
        self.frame_hop = frame_hop(config)
        self.num_units = int(config["num_embeddings"])
        if config.get("units") is not None:
            self.units_kind = UnitsKind.from_dict(config["units"], "vocoder config")
        self.has_duration_predictor = self.generator.dur_predictor is not None

    @classmethod
    def from_files(cls, checkpoint: str, config_path: str) -> "CodeHiFiGANUnitVocoder":
        return cls(checkpoint, load_vocoder_config(config_path))

    @staticmethod
    def dtype_for(model_dtype: str) -> torch.dtype:
        """The dtype a CodeHiFiGAN runs in under ``--model-dtype model_dtype``: bf16 under ``bf16`` where
        oneDNN has bf16 convolutions, else fp32 (int8 has no convolution path). Without oneDNN's bf16
        kernels ATen's bf16 convolutions are many times slower than fp32 (docs/decisions.md), so bf16
        would only cost time there."""
        return torch.bfloat16 if model_dtype == "bf16" and cpu_capabilities().onednn_bf16 else torch.float32

    def for_model_dtype(self, model_dtype: str) -> "CodeHiFiGANUnitVocoder":
        """This vocoder, converted in place to :meth:`dtype_for` ``model_dtype``."""
        dtype = self.dtype_for(model_dtype)
        if model_dtype == "bf16" and dtype != torch.bfloat16 and not _fp32_vocoder_noted:
            _fp32_vocoder_noted.append(True)  # once per process, however many vocoders load
            logger.warning("--model-dtype bf16: the vocoder stays fp32 (oneDNN has no bf16 convolutions on this CPU)")
        return self if dtype == torch.float32 else self.to(dtype)

    @property
    def generator(self) -> torch.nn.Module:
        """fairseq's ``CodeGenerator`` (weight norm removed), its causal form, or the iSTFT generator."""
        return self.istft_generator if self.istft else self.fairseq_vocoder.model

    @torch.no_grad()
    def durations(self, units: Tensor) -> Tensor:
        return self.durations_padded(units[None], torch.tensor([units.numel()]))[0]

    @torch.no_grad()
    def durations_padded(self, units: Tensor, lengths: Tensor) -> Tensor:
        # fairseq's VariancePredictor (two convolutions, each with a ReLU and a layer norm, then a
        # projection), its convolutions run by frame_conv and the padding zeroed before each, so
        # that a row sees the zeros a row alone is padded with
        predictor = self.generator.dur_predictor
        positions = torch.arange(units.size(1), device=units.device)
        mask = (
            (positions[None, :] < lengths.to(units.device)[:, None]).unsqueeze(-1).to(self.generator.dict.weight.dtype)
        )
        x = self.generator.dict(units) * mask
        x = predictor.ln1(F.relu(frame_conv(x, predictor.conv1[0]))) * mask
        x = predictor.ln2(F.relu(frame_conv(x, predictor.conv2[0])))
        log_duration = predictor.proj(x).squeeze(2)
        # the rounding fairseq's CodeGenerator applies: the predictor is trained on log(1 + frames)
        return torch.clamp(torch.round(torch.exp(log_duration) - 1).long(), min=1)

    # oneDNN builds a convolution primitive per input length, slowly, and then runs it faster than
    # PyTorch's own CPU convolution (docs/decisions.md); incremental synthesis keeps the lengths to
    # multiples of this, so a stream meets only a few. ``IncrementalVocoder.warm_up`` times both
    # and sets ``onednn`` (False: PyTorch's own CPU convolution), as the gain depends on the generator.
    length_bucket = 8
    onednn = True
    # an onnxruntime session on this generator's graph (run_on_graph), or None: torch
    graph = None

    def run_on_graph(self, session) -> None:
        """Synthesise through ``session``, an onnxruntime session on this vocoder's exported
        generator (``echostream-export --vocoder``, its metadata checked by the caller); the
        duration predictor stays in torch."""
        self.graph = session

    def _graph_audio(self, frames: Tensor, lengths: Tensor) -> Tensor:
        feeds = {"frames": frames.cpu().numpy(), "lengths": lengths.to(torch.long).cpu().numpy()}
        return torch.from_numpy(self.graph.run(None, feeds)[0])

    @torch.no_grad()
    def synthesize_frames(self, frames: Tensor) -> Tensor:
        return self.synthesize_frames_batch(frames[None])[0]

    @torch.no_grad()
    def synthesize_frames_batch(self, frames: Tensor) -> Tensor:
        if self.graph is not None:
            return self._graph_audio(frames, torch.full((frames.size(0),), frames.size(1)))
        mkldnn = torch.backends.mkldnn
        enabled = mkldnn.enabled
        mkldnn.enabled = enabled and (self.onednn or frames.device.type != "cpu")
        try:
            # the generator itself: fairseq's wrapper joins the rows of a batch into one sequence
            audio = self.generator(code=frames).reshape(frames.size(0), -1)
        finally:
            mkldnn.enabled = enabled
        return audio.float()  # a bf16 generator still returns fp32 samples

    batches_padded = True

    @torch.no_grad()
    def synthesize_frames_padded(self, frames: Tensor, lengths: Tensor) -> Tensor:
        if bool((lengths == frames.size(1)).all()):
            return self.synthesize_frames_batch(frames)
        if self.graph is not None:
            return self._graph_audio(frames, lengths)
        if self.causal:  # padding after a row's frames never reaches them; each row ends after its frames
            audio, _ = self.synthesize_step(
                F.pad(frames, (0, self.lookahead_frames)),
                lengths,
                torch.zeros_like(lengths),
                self.initial_stream_state().expand(frames.size(0), -1),
            )
            positions = torch.arange(audio.size(1), device=audio.device)
            return audio * (positions < lengths.to(audio.device)[:, None] * self.frame_hop)
        mkldnn = torch.backends.mkldnn
        enabled = mkldnn.enabled
        mkldnn.enabled = enabled and (self.onednn or frames.device.type != "cpu")
        try:
            if self.istft:  # it masks its padding itself
                audio = self.generator(code=frames, lengths=lengths).reshape(frames.size(0), -1)
            else:
                audio = _masked_generator_forward(self.generator, frames, lengths)
        finally:
            mkldnn.enabled = enabled
        return audio.float()

    @torch.no_grad()
    def synthesize_frames_packed(self, calls: Sequence[Tensor]) -> List[Tensor]:
        if self.graph is not None:  # the graph takes padded rows: one call for all of them
            lengths = torch.tensor([call.numel() for call in calls])
            frames = torch.nn.utils.rnn.pad_sequence(list(calls), batch_first=True)
            audio = self._graph_audio(frames, lengths)
            return [row[: n * self.frame_hop] for row, n in zip(audio, lengths.tolist())]
        if not self.istft:
            return super().synthesize_frames_packed(calls)
        return [audio.float() for audio in self.istft_generator.forward_packed(calls)]

    def initial_stream_state(self) -> Tensor:
        if not self.causal:
            return super().initial_stream_state()
        return self.generator.initial_state(1)[0]

    @torch.no_grad()
    def synthesize_step(
        self, frames: Tensor, lengths: Tensor, lookahead: Tensor, states: Tensor
    ) -> Tuple[Tensor, Tensor]:
        if not self.causal:
            return super().synthesize_step(frames, lengths, lookahead, states)
        mkldnn = torch.backends.mkldnn
        enabled = mkldnn.enabled
        mkldnn.enabled = enabled and (self.onednn or frames.device.type != "cpu")
        try:
            device = self.generator.conv_pre.weight.device
            audio, states = self.generator.step(
                frames.to(device), states.to(device), lengths.to(device), lookahead.to(device)
            )
        finally:
            mkldnn.enabled = enabled
        return audio.float(), states

    @torch.no_grad()
    def forward(self, units, dur_prediction: bool = False) -> Tensor:
        units = as_unit_tensor(units, self.num_units)
        if self.istft:
            return super().forward(units, dur_prediction)
        if dur_prediction:
            self.check_duration_predictor()
        # one-shot synthesis is fairseq's own path, duration prediction included
        return self.fairseq_vocoder({"code": units[None]}, dur_prediction=dur_prediction).reshape(-1)


def _masked_generator_forward(generator: torch.nn.Module, frames: Tensor, lengths: Tensor) -> Tensor:
    """fairseq's ``Generator.forward`` (weight norm removed) over right-padded rows, with every
    convolution's input zeroed past its row's length. A convolution of the unpadded row sees zeros
    past its end (its padding), so each row's valid samples equal the row synthesised alone.
    ``[B, T]`` frames, ``[B]`` lengths -> ``[B, T * frame_hop]``, zeros past each row's end."""
    positions = frames.size(1)
    short = [(row, n) for row, n in enumerate(lengths.tolist()) if n < positions]

    def valid(x: Tensor) -> Tensor:
        # in place, the padded tails only (every stage's time axis is a whole multiple of the frames')
        scale = x.size(-1) // positions
        for row, n in short:
            x[row, :, n * scale :] = 0
        return x

    return generator_forward(generator, frames, valid)


def generator_forward(generator: torch.nn.Module, frames: Tensor, valid) -> Tensor:
    """fairseq's ``Generator.forward`` (weight norm removed) on ``[B, T]`` frames, ``valid`` applied
    to every convolution's input and to the output (``valid(x)``: ``x`` ``[B, C, T * k]`` with each
    row's steps past its length zeroed). Returns ``[B, T * frame_hop]``."""
    from fairseq.models.text_to_speech.hifigan import LRELU_SLOPE

    g = generator
    x = valid(g.conv_pre(valid(g.dict(frames).transpose(1, 2).contiguous())))
    for i, upsample in enumerate(g.ups):
        x = valid(upsample(F.leaky_relu(x, LRELU_SLOPE)))
        total = None
        for block in g.resblocks[i * g.num_kernels : (i + 1) * g.num_kernels]:
            y = x
            for first, second in zip(block.convs1, block.convs2):
                inner = valid(first(F.leaky_relu(y, LRELU_SLOPE)))
                y = valid(second(F.leaky_relu(inner, LRELU_SLOPE))) + y
            total = y if total is None else total + y
        x = total / g.num_kernels
    # fairseq's last activation uses leaky_relu's default slope
    audio = torch.tanh(g.conv_post(F.leaky_relu(x)))
    return valid(audio).reshape(frames.size(0), -1)
