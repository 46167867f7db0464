"""The preparation pipeline behind ``echostream-prep``: corpus -> training-ready folder.

Steps (each resumable, see :mod:`~echostream_fairseq.data.steps`), in order:

========== ==============================================================================
text       ``text/{split}.tsv``: ids and raw text (inputs were validated before, headers of
           input audio included, so a bad corpus fails before anything is written)
audio      ``audio/src/{id}.wav``, ``audio/tgt/{id}.wav``: 16 kHz 16-bit mono (synthesised,
           or read, downmixed and resampled; with ``--rooms``/``--test-room`` some sources in
           simulated rooms with noise, each draw in ``audio/rooms.tsv``)
features   ``features/{id}.npy``: the source fbank ``[frames, 80]`` (only with ``--precompute-fbank``)
gcmvn      ``gcmvn.npz``: mean and std of the source fbank over (a sample of) train
subwords   ``{src,tgt}_unigram/``: sentencepiece model, fairseq ``dict.txt``, ``{split}.tsv``
units      ``units/``: k-means unit model ``kmeans.pt``, ``dict.txt``, ``{split}.tsv`` (units)
manifests  ``{split}.tsv``: ``id, src_audio, src_n_frames, tgt_audio, tgt_n_frames`` (``src_audio``:
           the wav, or its ``.npy`` features)
configs    ``config.yaml``, ``config_multitask.yaml``
simuleval  ``simuleval/{dev,test,test_heldout,test_room}.{source,target,src_text}``
stats      ``stats.json``: corpus statistics
========== ==============================================================================

This module decides which steps run and with which parameters (a step whose parameters changed
is redone); :class:`~echostream_fairseq.data.pipeline.Pipeline` does the work of each.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional

from echostream_fairseq.common.audio import SAMPLE_RATE
from echostream_fairseq.data.corpus import Corpus, with_rooms
from echostream_fairseq.data.pipeline import Pipeline
from echostream_fairseq.data.prep_options import PrepOptions
from echostream_fairseq.data.steps import PrepError, Step, StepRunner, digest
from echostream_fairseq.data.text import NORMALIZER_VERSION

__all__ = ["prepare", "PREP_VERSION"]

PREP_VERSION = 1


def _file_identity(path: Optional[str]) -> Optional[Dict[str, Any]]:
    if path is None:
        return None
    st = os.stat(path)
    return {"path": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _validate_options(options: PrepOptions) -> None:
    if options.vocab_size < 10:
        raise PrepError(f"--vocab-size must be at least 10, got {options.vocab_size}")
    if options.unit_extractor == "logmel":
        if options.num_units is None or options.num_units < 2:
            raise PrepError(f"--num-units must be at least 2, got {options.num_units}")
        if options.hubert_checkpoint or options.kmeans_model:
            raise PrepError("--hubert-checkpoint and --kmeans-model need --unit-extractor hubert")
    elif options.unit_extractor == "hubert":
        for flag, value in (
            ("--hubert-checkpoint", options.hubert_checkpoint),
            ("--kmeans-model", options.kmeans_model),
        ):
            if not value:
                raise PrepError(f"--unit-extractor hubert needs {flag}")
            if not os.path.isfile(value):
                raise PrepError(f"{value}: {flag} file not found")
        if options.hubert_layer < 1:
            raise PrepError(f"--hubert-layer must be positive, got {options.hubert_layer}")
    else:
        raise PrepError(f"unknown --unit-extractor {options.unit_extractor!r} (logmel or hubert)")
    for name in ("kmeans_max_frames", "kmeans_iterations", "cmvn_max_utterances", "jobs"):
        if getattr(options, name) < 1:
            raise PrepError(f"--{name.replace('_', '-')} must be positive, got {getattr(options, name)}")


def _steps(pipeline: Pipeline) -> List[Step]:
    corpus, options = pipeline.corpus, pipeline.options
    splits = list(corpus.splits)

    def after(*steps: Step) -> Dict[str, str]:
        return {s.name: digest(s.params) for s in steps}

    def outputs(pattern: str) -> List[str]:
        return [pattern.format(split=s) for s in splits]

    text = Step(
        "text",
        {
            "version": PREP_VERSION,
            "mode": corpus.mode,
            "inputs": corpus.fingerprint,
            "splits": {s: len(us) for s, us in corpus.splits.items()},
        },
        outputs("text/{split}.tsv"),
        pipeline.text,
    )
    audio_params: Dict[str, Any] = {"after": after(text), "sample_rate": SAMPLE_RATE}
    if corpus.mode == "synthetic":
        from echostream_fairseq.data.tts import TARGET_VOICE, VARIANTS, get_synthesizer

        # the definitions of the variants this corpus speaks in, not of every variant there is
        spoken = sorted({u.src_voice.variant for u in corpus.all() if u.src_voice} | {TARGET_VOICE.variant})
        audio_params["tts"] = {
            "espeak_ng": get_synthesizer().version,
            "variants": digest({v: VARIANTS[v] for v in spoken}),
            "target_voice": TARGET_VOICE.describe(),
        }
    if options.rooms or options.test_room:  # only then: folders made before the option keep their stamps
        from dataclasses import asdict

        import pyroomacoustics

        from echostream_fairseq.data.rooms import TEST_ROOMS, TRAINING

        audio_params["rooms"] = {
            "share": options.rooms,
            "test_room": options.test_room,
            "acoustics": digest({"training": asdict(TRAINING), "test": asdict(TEST_ROOMS)}),
            "pyroomacoustics": pyroomacoustics.__version__,
            "babble_seed": options.seed,
        }
    audio = Step("audio", audio_params, ["audio"], pipeline.audio)
    gcmvn = Step(
        "gcmvn",
        {"after": after(audio), "max_utterances": options.cmvn_max_utterances, "seed": options.seed},
        ["gcmvn.npz"],
        pipeline.gcmvn,
    )
    subwords = Step(
        "subwords",
        {"after": after(text), "vocab_size": options.vocab_size, "normalizer": NORMALIZER_VERSION},
        ["src_unigram", "tgt_unigram"],
        pipeline.subwords,
    )
    if options.unit_extractor == "hubert":
        unit_params: Dict[str, Any] = {
            "extractor": "hubert",
            "checkpoint": _file_identity(options.hubert_checkpoint),
            "layer": options.hubert_layer,
            "kmeans_model": _file_identity(options.kmeans_model),
        }
    else:
        unit_params = {
            "extractor": "logmel",
            "num_units": options.num_units,
            "max_frames": options.kmeans_max_frames,
            "iterations": options.kmeans_iterations,
            "seed": options.seed,
        }
    units = Step("units", {"after": after(audio), **unit_params}, ["units"], pipeline.units)
    feature_steps: List[Step] = []
    if options.precompute_fbank:
        feature_steps.append(Step("features", {"after": after(audio)}, ["features"], pipeline.features))
    manifest_params: Dict[str, Any] = {"after": after(audio, units, *feature_steps)}
    if options.precompute_fbank:  # only then: folders made before the option keep their stamps
        manifest_params["precompute_fbank"] = True
    manifests = Step("manifests", manifest_params, outputs("{split}.tsv"), pipeline.manifests)
    config_params: Dict[str, Any] = {"after": after(units, gcmvn, subwords)}
    if not options.specaugment:  # only then: folders made before the option keep their stamps
        config_params["specaugment"] = False
    configs = Step("configs", config_params, ["config.yaml", "config_multitask.yaml"], pipeline.configs)
    simuleval = Step(
        "simuleval", {"after": after(text, audio), "location": pipeline.out}, ["simuleval"], pipeline.simuleval
    )
    stats = Step("stats", {"after": after(manifests, subwords, units)}, ["stats.json"], pipeline.stats)
    return [text, audio, *feature_steps, gcmvn, subwords, units, manifests, configs, simuleval, stats]


def prepare(corpus: Corpus, options: PrepOptions) -> Dict[str, Any]:
    """Run (or resume) every step for ``corpus`` into ``options.out_dir``.

    Returns:
        ``{"ran": [...], "skipped": [...], "seconds": {step: s}, "stats": corpus statistics}``.

    Raises:
        PrepError, ManifestError, AudioError, UnitError: bad options, bad input, or outputs made
            with other parameters (without ``force``); every message names the file involved.
    """
    _validate_options(options)
    corpus = with_rooms(corpus, options.rooms, options.test_room)
    runner = StepRunner(os.path.abspath(options.out_dir), force=options.force)
    runner.check_folder()
    pipeline = Pipeline(corpus, options)
    steps = _steps(pipeline)
    runner.preflight(steps)
    if corpus.mode != "synthetic" and runner.finished_params("text") != steps[0].params:
        pipeline.check_audio_headers()  # new or changed inputs: check them all before writing anything
    os.makedirs(runner.out_dir, exist_ok=True)
    ran = [step.name for step in steps if runner.run(step)]
    with open(os.path.join(runner.out_dir, "stats.json"), encoding="utf-8") as f:
        stats = json.load(f)
    return {"ran": ran, "skipped": runner.skipped, "seconds": runner.timings, "stats": stats}
