"""Loading a trained system for streaming: checkpoint, data folder, vocoder -> a translator.

One function, :func:`load_translator`, with the agents' flags as keyword arguments (same names,
underscores for dashes), so the SimulEval agents, the Python API and the server build the same
translator from the same settings and every bad setting fails before the first stream.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

import torch

from echostream_fairseq.checkpoint import load_echostream_model
from echostream_fairseq.common.audio import ENCODER_FRAME_MS
from echostream_fairseq.modules.precision import check_dtype, convert_precision
from echostream_fairseq.streaming.features import load_global_cmvn
from echostream_fairseq.streaming.policy import PolicyConfig, whole_word_default
from echostream_fairseq.streaming.translator import SimultaneousTranslator
from echostream_fairseq.streaming.translator_state import UNIT_LOOKAHEAD, TranslatorConfig
from echostream_fairseq.vocoder.incremental import (
    LEFT_CONTEXT as VOCODER_LEFT_CONTEXT,
)
from echostream_fairseq.vocoder.incremental import (
    MAX_PADDING,
    MAX_SUB_BATCH,
    IncrementalVocoder,
    sub_batch_limit,
)

__all__ = [
    "VOCODER_TYPES",
    "OUTPUTS",
    "UNIT_LOOKAHEAD",
    "VOCODER_LEFT_CONTEXT",
    "MAX_SUB_BATCH",
    "MAX_PADDING",
    "load_vocoder",
    "load_translator",
    "pause_frames",
    "translator_for_chunk",
]

VOCODER_TYPES = ("code_hifigan", "griffin_lim")
# what a translator produces: translated speech (and text), translated text, or the source transcript
OUTPUTS = ("speech", "text", "asr")
WHOLE_WORD = ("auto", "on", "off")
ASR_SENTENCE_ENDS = ("auto", "on", "off")


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


def pause_frames(ms: int, flag: str) -> int:
    """Milliseconds -> whole encoder frames, rounded up."""
    if ms < 0:
        raise ValueError(f"{flag} must be >= 0 milliseconds, got {ms}")
    return -(-ms // ENCODER_FRAME_MS)


def _device(name: str) -> torch.device:
    if name in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise ValueError("--device gpu: no CUDA device is available here; use --device cpu")
        return torch.device("cuda")
    if name != "cpu":
        raise ValueError(f"unknown device {name!r}; use cpu or gpu")
    return torch.device("cpu")


def _whole_word(setting: str, chunk_ms: int) -> bool:
    if setting not in WHOLE_WORD:
        raise ValueError(f"--whole-word must be one of {WHOLE_WORD}, got {setting!r}")
    return {"on": True, "off": False}.get(setting, whole_word_default(chunk_ms))


def _asr_sentence_ends(setting: str, trained: bool, model_path: str) -> bool:
    if setting == "on" and not trained:
        raise ValueError(
            f"--asr-sentence-ends on: {model_path} was not trained with --asr-sentence-ends, "
            "its ASR CTC head writes no sentence-end marks"
        )
    return {"on": True, "off": False}.get(setting, trained)


def load_translator(
    model_path: str,
    data_bin: str,
    *,
    output: str = "speech",
    vocoder: Optional[IncrementalVocoder] = None,
    source_segment_size: int = 320,
    encoder_chunk_ms: int = 0,
    device: str = "cpu",
    model_dtype: str = "fp32",
    threads: Optional[int] = None,
    config_yaml: str = "config.yaml",
    multitask_config_yaml: str = "config_multitask.yaml",
    lagging_k1: int = 0,
    stride_n: int = 1,
    whole_word: str = "auto",
    max_len: int = 200,
    mt_source_window: int = 512,
    target_window: int = 64,
    sentence_pause_ms: int = 480,
    sentence_confirmed_pause_ms: int = 240,
    asr_sentence_ends: str = "auto",
    no_repeat_ngram: int = 0,
    asr_beam: int = 0,
    asr_lm_weight: float = 0.5,
    asr_word_bonus: float = 2.0,
    reencode: bool = False,
    unit_lookahead: int = UNIT_LOOKAHEAD,
) -> SimultaneousTranslator:
    """The translator of a trained checkpoint (the agents' flags, see ``docs/agents.md``).

    ``output``: ``speech`` (needs ``vocoder``), ``text`` or ``asr`` (the source transcript only).
    ``model_dtype``: ``fp32``, ``bf16`` or ``int8`` (see :mod:`echostream_fairseq.modules.precision`).
    ``asr_sentence_ends``: end sentences at the ASR CTC's marks: ``auto`` (if the model was trained
    with ``--asr-sentence-ends``), ``on`` or ``off``. ``asr_beam`` > 0: the source transcript
    from the lexicon and word-trigram search of ``fairseq-generate --asr-beam``, streamed (words
    are written once the search has settled on them); the policy still counts greedy subwords.
    ``unit_lookahead``: text states a subword's units wait for (speech output), ``encoder_chunk_ms``
    the source per encoder step (0: the checkpoint's own, at most the source chunk); see
    :class:`~echostream_fairseq.streaming.translator_state.TranslatorConfig`.
    """
    if asr_sentence_ends not in ASR_SENTENCE_ENDS:
        raise ValueError(f"--asr-sentence-ends must be one of {ASR_SENTENCE_ENDS}, got {asr_sentence_ends!r}")
    if output not in OUTPUTS:
        raise ValueError(f"unknown output {output!r}; use one of {OUTPUTS}")
    if unit_lookahead < 0:
        raise ValueError(f"--unit-lookahead must be >= 0 text states, got {unit_lookahead}")
    speech_output = output == "speech"
    if speech_output and vocoder is None:
        raise ValueError("speech output needs a vocoder (load_vocoder)")
    if threads:
        torch.set_num_threads(threads)
    target = _device(device)
    check_dtype(model_dtype, target)  # before the checkpoint loads: a dtype this CPU cannot run is said at once
    model, task = load_echostream_model(model_path, data_bin, config_yaml, multitask_config_yaml)
    model = convert_precision(model.eval(), model_dtype, target)
    asr_decoder = task.build_asr_decoder(asr_beam, asr_lm_weight, asr_word_bonus)
    if task.data_cfg.global_cmvn_stats is None:
        raise ValueError(f"{data_bin}: the data config has no global_cmvn stats; the model was trained with them")
    config = TranslatorConfig(
        source_segment_size=source_segment_size,
        encoder_chunk_ms=encoder_chunk_ms,
        policy=PolicyConfig(stride_n, lagging_k1, _whole_word(whole_word, source_segment_size)),
        max_len=max_len,
        mt_source_window=mt_source_window,
        target_window=target_window,
        reencode=reencode,
        speech_output=speech_output,
        translate=output != "asr",
        sentence_pause_frames=pause_frames(sentence_pause_ms, "--sentence-pause-ms"),
        sentence_confirmed_pause_frames=pause_frames(sentence_confirmed_pause_ms, "--sentence-confirmed-pause-ms"),
        asr_sentence_ends=_asr_sentence_ends(asr_sentence_ends, task.asr_sentence_ends, model_path),
        no_repeat_ngram=no_repeat_ngram,
        unit_lookahead=unit_lookahead,
    )
    if speech_output:
        num_units = len(task.target_dictionary) - task.target_dictionary.nspecial
        if vocoder.vocoder.num_units < num_units:
            raise ValueError(f"the vocoder knows {vocoder.vocoder.num_units} units but the model emits {num_units}")
    d = task.multitask_dictionaries
    return SimultaneousTranslator(
        model.to(target),
        d["source_unigram"],
        d["ctc_target_unigram"],
        d["target_unigram"],
        task.target_dictionary,
        load_global_cmvn(task.data_cfg.global_cmvn_stats),
        config,
        vocoder,
        asr_decoder=asr_decoder,
    )


def translator_for_chunk(
    translator: SimultaneousTranslator, source_segment_size: int, whole_word: str = "auto"
) -> SimultaneousTranslator:
    """The same system at another chunk size (sharing the model: the translator sets the encoder's
    chunk length before each encoder step). ``whole_word`` as in :func:`load_translator`."""
    config = translator.config
    if source_segment_size == config.source_segment_size:
        return translator
    policy = replace(config.policy, whole_word=_whole_word(whole_word, source_segment_size))
    return translator.with_config(source_segment_size=source_segment_size, policy=policy)
