"""What ``echostream-prep`` was asked for: the options the pipeline's steps read, in the module
below both the step runner (:mod:`~echostream_fairseq.data.prep`) and the steps' work
(:mod:`~echostream_fairseq.data.pipeline`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

__all__ = ["PrepOptions"]


@dataclass
class PrepOptions:
    """What ``echostream-prep`` was asked for (corpus-independent options).

    Attributes:
        out_dir: the output folder.
        vocab_size: sentencepiece vocabulary size (an upper bound for small corpora).
        num_units: K of the log-mel k-means (``None`` with HuBERT: K of the given k-means model).
        unit_extractor: ``"logmel"`` or ``"hubert"``.
        hubert_checkpoint, hubert_layer, kmeans_model: the HuBERT extractor's inputs.
        kmeans_max_frames: frames of train target speech the k-means is fitted on (a seeded
            random subset of utterances beyond that).
        kmeans_iterations: maximum Lloyd iterations.
        cmvn_max_utterances: train utterances the global CMVN is estimated on (seeded subset).
        precompute_fbank: write the source fbank once (``features/{id}.npy``) and point the
            manifests at it, so that training reads features instead of computing them.
        specaugment: list SpecAugment among the training transforms of ``config.yaml``.
        rooms: the share of training utterances whose source speech is put in a simulated room
            with noise (:mod:`~echostream_fairseq.data.rooms`, its ``TRAINING`` ranges; 0: none).
        test_room: also write the ``test_room`` split: the test sentences in rooms and noise
            beyond anything training draws (``TEST_ROOMS``).
        seed: seeds k-means and the subsets.
        jobs: threads converting audio (cvss/tsv).
        force: replace outputs made with other parameters / write into a foreign folder.
        progress: show progress bars.
    """

    out_dir: str
    vocab_size: int
    num_units: Optional[int]
    unit_extractor: str = "logmel"
    hubert_checkpoint: Optional[str] = None
    hubert_layer: int = 11
    kmeans_model: Optional[str] = None
    kmeans_max_frames: int = 300_000
    kmeans_iterations: int = 50
    cmvn_max_utterances: int = 10_000
    precompute_fbank: bool = False
    specaugment: bool = True
    rooms: float = 0.0
    test_room: bool = False
    seed: int = 1
    jobs: int = 2
    force: bool = False
    progress: bool = False
