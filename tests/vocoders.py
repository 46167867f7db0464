"""Vocoders for tests: a micro CodeHiFiGAN in fairseq's format, a counting vocoder, streaming
helpers (shared by the vocoder tests)."""

import json
import os

import torch

from echostream_fairseq.data.units import LogMelUnitFeatures
from echostream_fairseq.vocoder import (
    CodeHiFiGANUnitVocoder,
    IncrementalVocoder,
    UnitVocoder,
    build_generator,
)

NUM_UNITS = 20


HOP = 320


def micro_config(**changes):
    """A fairseq CodeHiFiGAN config small enough for tests (16 kHz, 320 samples per unit)."""
    config = {
        "upsample_rates": [5, 4, 4, 2, 2],
        "upsample_kernel_sizes": [11, 8, 8, 4, 4],
        "upsample_initial_channel": 32,
        "resblock_kernel_sizes": [3],
        "resblock_dilation_sizes": [[1, 3, 5]],
        "num_embeddings": NUM_UNITS,
        "embedding_dim": 8,
        "model_in_dim": 8,
        "sampling_rate": 16000,
        "code_hop_size": 320,
        "f0": False,
        "dur_predictor_params": {
            "encoder_embed_dim": 8,
            "var_pred_hidden_dim": 8,
            "var_pred_kernel_size": 3,
            "var_pred_dropout": 0.5,
        },
    }
    config.update(changes)
    return config


def write_fairseq_vocoder(folder, config=None, seed=0):
    """A randomly initialised generator saved the way fairseq/speech-resynthesis save it."""
    config = config or micro_config()
    torch.manual_seed(seed)
    generator = build_generator(config)
    ckpt, cfg = os.path.join(folder, "g_00000001"), os.path.join(folder, "config.json")
    torch.save({"generator": generator.state_dict()}, ckpt)
    with open(cfg, "w") as f:
        json.dump(config, f)
    return ckpt, cfg, generator


def log_mel_distance(a, b):
    """Mean absolute difference of natural-log mel frames (80 bins, 20 ms hop) of equal-length waveforms."""
    features = LogMelUnitFeatures()
    return float((features(a) - features(b)).abs().mean())


def stream(vocoder, units, chunk_sizes, **kw):
    """Feed ``units`` in chunks through an :class:`IncrementalVocoder`; returns the audio and the pieces."""
    inc = IncrementalVocoder(vocoder, **kw)
    state, pieces, start = inc.initial_state(), [], 0
    for i, n in enumerate(chunk_sizes):
        piece, state = inc.step(units[start : start + n], state, finish=i == len(chunk_sizes) - 1)
        pieces.append(piece)
        start += n
    assert start == units.numel()
    return torch.cat(pieces), pieces


def random_tiny_hifigan(folder):
    """A CodeHiFiGAN of the ``tiny`` preset for 16 units, random weights, saved in ``folder``."""
    from echostream_fairseq.vocoder import build_generator, preset_config

    config = preset_config("tiny", 16)
    torch.save({"generator": build_generator(config).state_dict()}, folder / "g.pt")
    return CodeHiFiGANUnitVocoder(str(folder / "g.pt"), config).eval()


class CountingVocoder(UnitVocoder):
    """Silence, recording how many frames each synthesis call was given."""

    sample_rate, frame_hop, num_units, has_duration_predictor = 16000, HOP, 100, True

    def __init__(self):
        super().__init__()
        self.calls = []

    def durations(self, units):
        return (units % 3 + 1).long()

    def synthesize_frames(self, frames):
        self.calls.append(frames.numel())
        return torch.zeros(frames.numel() * self.frame_hop)


def step_together(inc, streams, sizes, alone):
    """Step ``streams`` tick by tick through ``inc.step_batch`` (``sizes[k][tick]`` new units each, the
    last tick finishing) and check every piece against the stream stepped alone."""
    states, starts, ticks = [inc.initial_state() for _ in streams], [0] * len(streams), len(sizes[0])
    for tick in range(ticks):
        requests = []
        for k, s in enumerate(streams):
            n = sizes[k][tick]
            requests.append((s[starts[k] : starts[k] + n], states[k], tick == ticks - 1))
            starts[k] += n
        for k, (piece, state) in enumerate(inc.step_batch(requests)):
            states[k] = state
            assert piece.shape == alone[k][tick].shape, (tick, k)
            assert torch.allclose(piece, alone[k][tick], rtol=0, atol=1e-5), (tick, k)
