"""Unit-to-speech: vocoders that turn discrete units into a waveform.

* :mod:`~echostream_fairseq.vocoder.config`: the fairseq CodeHiFiGAN ``config.json``, checked; presets.
* :mod:`~echostream_fairseq.vocoder.base`: the :class:`UnitVocoder` interface and unit checks.
* :mod:`~echostream_fairseq.vocoder.code_hifigan`: fairseq/StreamSpeech CodeHiFiGAN checkpoints.
* :mod:`~echostream_fairseq.vocoder.causal_hifigan`: the causal CodeHiFiGAN, stepped from per-layer caches.
* :mod:`~echostream_fairseq.vocoder.griffin_lim`: the training-free fallback for log-mel k-means units.
* :mod:`~echostream_fairseq.vocoder.incremental`: streaming synthesis with a bounded left context.
* :mod:`~echostream_fairseq.vocoder.discriminators`, :mod:`~echostream_fairseq.vocoder.losses`,
  :mod:`~echostream_fairseq.vocoder.dataset`, :mod:`~echostream_fairseq.vocoder.trainer`:
  training a unit HiFi-GAN (``echostream-train-vocoder``).
"""

from echostream_fairseq.vocoder.base import UnitVocoder, as_unit_tensor
from echostream_fairseq.vocoder.code_hifigan import CodeHiFiGANUnitVocoder, build_generator
from echostream_fairseq.vocoder.config import VocoderError, load_vocoder_config, preset_config
from echostream_fairseq.vocoder.griffin_lim import GriffinLimUnitVocoder
from echostream_fairseq.vocoder.incremental import IncrementalVocoder, VocoderState

__all__ = [
    "UnitVocoder",
    "as_unit_tensor",
    "CodeHiFiGANUnitVocoder",
    "build_generator",
    "VocoderError",
    "load_vocoder_config",
    "preset_config",
    "GriffinLimUnitVocoder",
    "IncrementalVocoder",
    "VocoderState",
]
