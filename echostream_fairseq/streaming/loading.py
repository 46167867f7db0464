"""Loading a trained system for streaming: checkpoint, data folder, vocoder -> a translator.

:func:`load_translator` loads a translator from a checkpoint and
:class:`~echostream_fairseq.streaming.options.TranslatorOptions`; :func:`translator_from_args` does
it from the flags of :func:`~echostream_fairseq.streaming.options.add_translator_args`, so the
SimulEval agents, the Python API and the server build the same translator from the same settings
and every bad setting fails before the first stream. :func:`build_translator` picks the translator
(incremental, or the re-encoding baseline) for a model already in memory.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional, Union

import torch

from echostream_fairseq.checkpoint import load_echostream_model
from echostream_fairseq.export.onnx_files import default_folder
from echostream_fairseq.models.unit_refiner import UnitRefiner
from echostream_fairseq.modules.precision import check_dtype, convert_precision
from echostream_fairseq.streaming.features import load_global_cmvn
from echostream_fairseq.streaming.graphs import Graphs, open_graphs, run_vocoder_on_graph
from echostream_fairseq.streaming.options import (
    VOCODER_TYPES,
    TranslatorOptions,
    options_from_args,
    translator_config,
    vocoder_options_from_args,
    whole_word,
)
from echostream_fairseq.streaming.reencoding import ReencodingTranslator
from echostream_fairseq.streaming.setup import Dictionaries
from echostream_fairseq.streaming.translator import SimultaneousTranslator
from echostream_fairseq.streaming.translator_state import TranslatorConfig
from echostream_fairseq.vocoder.incremental import LEFT_CONTEXT as VOCODER_LEFT_CONTEXT
from echostream_fairseq.vocoder.incremental import (
    MAX_PADDING,
    MAX_SUB_BATCH,
    IncrementalVocoder,
    sub_batch_limit,
)

__all__ = [
    "MAX_SUB_BATCH",
    "MAX_PADDING",
    "Translator",
    "load_vocoder",
    "load_translator",
    "build_translator",
    "translator_from_args",
    "translator_for_chunk",
]

# either translator: the same interface (initial_state, step, step_batch, with_config, config)
Translator = Union[SimultaneousTranslator, ReencodingTranslator]


def load_vocoder(
    path: Optional[str],
    config: Optional[str] = None,
    vocoder_type: str = "code_hifigan",
    dur_prediction: bool = False,
    left_context: int = VOCODER_LEFT_CONTEXT,
    model_dtype: str = "fp32",
    max_batch: Optional[int] = 1,
    max_padding: int = 0,
) -> IncrementalVocoder:
    """A CodeHiFiGAN generator (``path`` + its ``config`` JSON) or the Griffin-Lim fallback
    (``path`` = the corpus's ``units/kmeans.pt``), wrapped for incremental synthesis.
    ``model_dtype`` ``bf16`` runs the CodeHiFiGAN in bf16 where oneDNN has bf16 convolutions;
    otherwise, and under ``int8`` and ``fp32``, it stays fp32
    (``CodeHiFiGANUnitVocoder.for_model_dtype``). ``max_batch``: the most streams synthesised in one
    call (1 for one stream; the streaming API, which steps many, takes ``MAX_SUB_BATCH``; the
    warm-up keeps the sub-batch size up to it that costs least per stream; None: ``MAX_SUB_BATCH``,
    or ``MAX_CAUSAL_SUB_BATCH`` for a causal vocoder, whose calls are shorter,
    ``MAX_ISTFT_SUB_BATCH`` for an iSTFT one: ``sub_batch_limit``); ``max_padding``: the most frames
    a shorter call is padded by to share one (the streaming API takes ``MAX_PADDING``)."""
    from echostream_fairseq.vocoder.code_hifigan import CodeHiFiGANUnitVocoder
    from echostream_fairseq.vocoder.griffin_lim import GriffinLimUnitVocoder

    if vocoder_type not in VOCODER_TYPES:
        raise ValueError(f"unknown vocoder type {vocoder_type!r}; use one of {VOCODER_TYPES}")
    check_dtype(model_dtype)
    if not path:
        raise ValueError(
            "speech output needs a vocoder: --vocoder G --vocoder-cfg CONFIG.json (CodeHiFiGAN), or "
            "--vocoder-type griffin_lim --vocoder DATA/units/kmeans.pt (training-free fallback)"
        )
    if vocoder_type == "griffin_lim":
        vocoder = GriffinLimUnitVocoder.from_file(path)
    else:
        if not config:
            raise ValueError("--vocoder-cfg is required with a CodeHiFiGAN --vocoder")
        vocoder = CodeHiFiGANUnitVocoder.from_files(path, config).for_model_dtype(model_dtype)
    incremental = IncrementalVocoder(
        vocoder.eval(),
        left_context=left_context,
        dur_prediction=dur_prediction,
        max_batch=sub_batch_limit(vocoder) if max_batch is None else max_batch,
        max_padding=max_padding,
    )
    incremental.warm_up()  # the first stream should not pay for preparing the convolutions
    return incremental


def load_unit_refiner(path: str, model, task) -> UnitRefiner:
    """The unit refiner in ``path``, refused unless it was trained for this model's units and T2U
    states."""
    refiner = UnitRefiner.load(path)
    ours = (len(task.target_dictionary), model.unit_decoder.embed_dim)
    theirs = (refiner.sizes.num_units, refiner.sizes.text_dim)
    if ours != theirs:
        raise ValueError(
            f"--unit-refiner {path} was trained for {theirs[0]} units and T2U states of size {theirs[1]}; "
            f"this model has {ours[0]} and {ours[1]}"
        )
    return refiner


def _device(name: str) -> torch.device:
    if name in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise ValueError("--device gpu: no CUDA device is available here; use --device cpu")
        return torch.device("cuda")
    if name != "cpu":
        raise ValueError(f"unknown device {name!r}; use cpu or gpu")
    return torch.device("cpu")


def build_translator(
    model,
    task,
    config: TranslatorConfig,
    vocoder: Optional[IncrementalVocoder] = None,
    asr_decoder=None,
    reencode: bool = False,
    graphs: Optional[Graphs] = None,
    unit_refiner: Optional[UnitRefiner] = None,
) -> Translator:
    """The translator of a model in memory with its task's dictionaries and global CMVN:
    :class:`SimultaneousTranslator`, or with ``reencode`` StreamSpeech's own agent
    (:class:`ReencodingTranslator`). ``graphs``: the model's exported graphs to run on
    (:func:`~echostream_fairseq.streaming.graphs.open_graphs`; ``None``: torch); ``unit_refiner``:
    see :class:`SimultaneousTranslator`."""
    if task.data_cfg.global_cmvn_stats is None:
        raise ValueError("the data config has no global_cmvn stats; the model was trained with them")
    if reencode and graphs is not None:
        raise ValueError("the re-encoding baseline runs in torch only")
    if reencode and unit_refiner is not None:
        raise ValueError("the unit refiner runs with the incremental translator, not the re-encoding baseline")
    cmvn = load_global_cmvn(task.data_cfg.global_cmvn_stats)
    if reencode:
        return ReencodingTranslator(model, Dictionaries.of_task(task), cmvn, config, vocoder, asr_decoder)
    return SimultaneousTranslator(
        model, Dictionaries.of_task(task), cmvn, config, vocoder, asr_decoder, graphs, unit_refiner
    )


def check_units(task, vocoder: IncrementalVocoder) -> None:
    """Refuse a vocoder of other units than the model's: fewer of them, or another kind where both
    sides record theirs (the data config's ``units: kind``, the vocoder config's ``units``)."""
    num_units = len(task.target_dictionary) - task.target_dictionary.nspecial
    if vocoder.vocoder.num_units < num_units:
        raise ValueError(f"the vocoder knows {vocoder.vocoder.num_units} units but the model emits {num_units}")
    ours, theirs = task.data_cfg.units_kind(), vocoder.vocoder.units_kind
    why = ours.mismatch(theirs) if ours is not None and theirs is not None else None
    if why is not None:
        raise ValueError(
            f"the model's units and the vocoder's differ: {why} ({task.data_cfg.path} against the vocoder's config); "
            "a vocoder voices only the units it was trained on"
        )


def load_translator(
    model_path: str,
    data_bin: str,
    options: TranslatorOptions = TranslatorOptions(),
    vocoder: Optional[IncrementalVocoder] = None,
) -> Translator:
    """The translator of a trained checkpoint and its data folder under ``options`` (the agents'
    flags, see ``docs/agents.md``); ``vocoder`` is required for speech output (:func:`load_vocoder`)."""
    if options.output == "speech" and vocoder is None:
        raise ValueError("speech output needs a vocoder (load_vocoder)")
    if options.threads:
        torch.set_num_threads(options.threads)
    target = _device(options.device)
    check_dtype(options.model_dtype, target)  # before the checkpoint loads: a dtype this CPU cannot run is said at once
    model, task = load_echostream_model(model_path, data_bin, options.config_yaml, options.multitask_config_yaml)
    graphs = None
    if options.runtime == "onnx":  # checked against the fp32 weights, before any conversion
        folder = options.graphs or default_folder(model_path)
        precision = "int8" if options.model_dtype == "int8" else "fp32"
        graphs = open_graphs(model.eval(), Dictionaries.of_task(task), folder, precision, options.graph_stages)
    unit_refiner = None
    if options.unit_refiner is not None:
        unit_refiner = load_unit_refiner(options.unit_refiner, model, task).to(target)
    model = convert_precision(model.eval(), options.model_dtype, target)
    asr_decoder = task.build_asr_decoder(options.asr_beam, options.asr_lm_weight, options.asr_word_bonus)
    if task.data_cfg.global_cmvn_stats is None:
        raise ValueError(f"{data_bin}: the data config has no global_cmvn stats; the model was trained with them")
    config = translator_config(options, task.asr_sentence_ends, model_path)
    if config.speech_output:
        check_units(task, vocoder)
        if graphs is not None and "vocoder" in options.graph_stages:
            run_vocoder_on_graph(vocoder, folder)  # a CodeHiFiGAN on its graph; the other vocoders stay in torch
    return build_translator(
        model.to(target), task, config, vocoder, asr_decoder, options.reencode, graphs, unit_refiner
    )


def translator_from_args(args, speech_output: bool, translate: bool = True) -> Translator:
    """The translator the flags of :func:`~echostream_fairseq.streaming.options.add_translator_args`
    describe."""
    options = options_from_args(args, "speech" if speech_output else ("text" if translate else "asr"))
    vocoder = None
    if speech_output:
        v = vocoder_options_from_args(args)
        vocoder = load_vocoder(
            v.vocoder, v.vocoder_cfg, v.vocoder_type, v.dur_prediction, v.vocoder_left_context, options.model_dtype
        )
    return load_translator(args.model_path, args.data_bin, options, vocoder)


def translator_for_chunk(
    translator: Translator, source_segment_size: int, whole_word_setting: Optional[str] = None
) -> Translator:
    """The same system at another chunk size (sharing the model: the translator sets the encoder's
    chunk length before each encoder step). ``whole_word_setting`` as ``--whole-word``; None keeps
    the translator's."""
    config = translator.config
    if source_segment_size == config.source_segment_size:
        return translator
    policy = config.policy
    if whole_word_setting is not None:
        policy = replace(policy, whole_word=whole_word(whole_word_setting, source_segment_size))
    return translator.with_config(source_segment_size=source_segment_size, policy=policy)
