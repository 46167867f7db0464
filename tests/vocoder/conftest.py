"""Fixtures of the vocoder tests: a micro CodeHiFiGAN checkpoint, and speech with its units."""

import pytest
from vocoders import write_fairseq_vocoder

from echostream_fairseq.data.units import LogMelUnitFeatures, deduplicate, frame_units, unit_model_dict
from echostream_fairseq.vocoder import (
    CodeHiFiGANUnitVocoder,
)


@pytest.fixture
def hifigan(tmp_path):
    ckpt, cfg, generator = write_fairseq_vocoder(str(tmp_path))
    return CodeHiFiGANUnitVocoder.from_files(ckpt, cfg), ckpt, cfg, generator


@pytest.fixture(scope="module")
def speech_units():
    """English espeak-ng speech, a K=16 log-mel k-means unit model fitted on it, and its frame units."""
    from echostream_fairseq.data.kmeans import fit_kmeans
    from echostream_fairseq.data.tts import TARGET_VOICE, get_synthesizer

    audio = get_synthesizer().synthesize("the yellow doctor will not read the small book tomorrow", TARGET_VOICE)
    features = LogMelUnitFeatures()
    frames = features(audio)
    centroids = fit_kmeans(frames, 16, seed=1, progress=False).centroids
    units = frame_units(frames, centroids)
    reduced, lengths = deduplicate(units.tolist())
    runs = list(zip(reduced, lengths))
    model = unit_model_dict("logmel", centroids, features.describe(), runs, seed=1)
    return model, units
