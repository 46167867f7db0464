"""The translator's settings in one home: :class:`TranslatorOptions` holds every setting a user
gives and its default, :func:`add_translator_args` adds them as flags (StreamSpeech's agents' names,
plus ours; the defaults read from :class:`TranslatorOptions`), :func:`options_from_args` builds the
options from parsed flags and :func:`translator_config` resolves them against a checkpoint into a
:class:`~echostream_fairseq.streaming.translator_state.TranslatorConfig`.
:func:`~echostream_fairseq.streaming.loading.load_translator` loads a translator from a checkpoint
and options. The SimulEval agents, the server, ``echostream-longform``, the Python API and the
benchmarks use these, so a setting means the same in each.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from typing import Optional, Tuple

from echostream_fairseq.common.audio import ENCODER_FRAME_MS
from echostream_fairseq.modules.precision import DTYPES
from echostream_fairseq.streaming.policy import PolicyConfig, whole_word_default
from echostream_fairseq.streaming.translator_state import TranslatorConfig
from echostream_fairseq.vocoder.incremental import LEFT_CONTEXT as VOCODER_LEFT_CONTEXT

__all__ = [
    "OUTPUTS",
    "RUNTIMES",
    "VOCODER_TYPES",
    "VOCODER_LEFT_CONTEXT",
    "TranslatorOptions",
    "VocoderOptions",
    "add_checkpoint_args",
    "add_vocoder_file_args",
    "add_translator_args",
    "options_from_args",
    "vocoder_options_from_args",
    "translator_config",
    "pause_frames",
    "whole_word",
]

# what a translator produces: translated speech (and text), translated text, or the source transcript
OUTPUTS = ("speech", "text", "asr")
# what runs the networks of the encoder stage, the MT decoder and the units' stage: the model's modules, or
# their exported graphs under onnxruntime
RUNTIMES = ("torch", "onnx")
# the stages --runtime onnx can put on their graphs; each pays on some CPUs and not on others (docs/speed.md)
GRAPH_STAGES = ("encoder", "mt", "units", "vocoder")
VOCODER_TYPES = ("code_hifigan", "griffin_lim")
AUTO_ON_OFF = ("auto", "on", "off")


@dataclass(frozen=True)
class TranslatorOptions:
    """Every translator setting as the flags give it (the flag's name, underscores for dashes).
    Defaults shared with :class:`TranslatorConfig` are read from it.

    ``output``: ``speech`` (needs a vocoder), ``text`` or ``asr`` (the source transcript only).
    ``model_dtype``: ``fp32``, ``bf16`` or ``int8`` (:mod:`echostream_fairseq.modules.precision`).
    ``whole_word`` and ``asr_sentence_ends``: ``auto``, ``on`` or ``off``. ``asr_beam`` > 0: the
    source transcript from the lexicon and word-trigram search of ``fairseq-generate --asr-beam``,
    streamed; the policy still counts greedy subwords. ``reencode``: StreamSpeech's own agent
    (:class:`~echostream_fairseq.streaming.reencoding.ReencodingTranslator`). ``runtime``
    ``onnx``: the encoder stage, the MT decoder, T2U and the unit decoder on the graphs of
    ``echostream-export`` in ``graphs`` (default: ``graphs/`` beside the checkpoint; ``model_dtype``
    int8 takes the int8 graphs); ``graph_stages``: which of them (:data:`GRAPH_STAGES`).
    ``unit_refiner``: the file of a unit refiner (speech output, incremental translator in torch).
    The flags' help (:func:`add_translator_args`) says what each does.
    """

    output: str = "speech"
    source_segment_size: int = TranslatorConfig.source_segment_size
    encoder_chunk_ms: int = TranslatorConfig.encoder_chunk_ms
    device: str = "cpu"
    model_dtype: str = "fp32"
    threads: Optional[int] = None
    config_yaml: str = "config.yaml"
    multitask_config_yaml: str = "config_multitask.yaml"
    lagging_k1: int = PolicyConfig.lagging_k1
    stride_n: int = PolicyConfig.stride_n
    whole_word: str = "on"
    max_len: int = TranslatorConfig.max_len
    mt_source_window: int = TranslatorConfig.mt_source_window
    target_window: int = TranslatorConfig.target_window
    sentence_pause_ms: int = 480
    sentence_confirmed_pause_ms: int = 240
    asr_sentence_ends: str = "auto"
    sentence_mark_pause_ms: int = 200
    no_repeat_ngram: int = TranslatorConfig.no_repeat_ngram
    asr_beam: int = 0
    asr_lm_weight: float = 0.5
    asr_word_bonus: float = 2.0
    reencode: bool = False
    unit_lookahead: int = TranslatorConfig.unit_lookahead
    unit_refiner: Optional[str] = None
    unit_refiner_threshold: float = TranslatorConfig.unit_refiner_threshold
    runtime: str = "torch"
    graphs: Optional[str] = None
    graph_stages: Tuple[str, ...] = GRAPH_STAGES

    def __post_init__(self) -> None:
        if self.output not in OUTPUTS:
            raise ValueError(f"unknown output {self.output!r}; use one of {OUTPUTS}")
        if self.model_dtype not in DTYPES:
            raise ValueError(f"--model-dtype must be one of {DTYPES}, got {self.model_dtype!r}")
        for name in ("whole_word", "asr_sentence_ends"):
            if getattr(self, name) not in AUTO_ON_OFF:
                flag = "--" + name.replace("_", "-")
                raise ValueError(f"{flag} must be one of {AUTO_ON_OFF}, got {getattr(self, name)!r}")
        if self.runtime not in RUNTIMES:
            raise ValueError(f"--runtime must be one of {RUNTIMES}, got {self.runtime!r}")
        if self.runtime == "onnx" and self.reencode:
            raise ValueError("--runtime onnx runs the incremental translator; --reencode runs in torch only")
        if self.runtime == "onnx" and self.model_dtype == "bf16":
            raise ValueError("--runtime onnx has fp32 and int8 graphs; use --model-dtype fp32 or int8, not bf16")
        if self.runtime == "onnx" and self.device != "cpu":
            raise ValueError(f"--runtime onnx runs on the CPU; use --device cpu, not {self.device}")
        if self.graphs is not None and self.runtime != "onnx":
            raise ValueError(f"--graphs {self.graphs} is read with --runtime onnx only")
        object.__setattr__(self, "graph_stages", tuple(self.graph_stages))
        unknown = [s for s in self.graph_stages if s not in GRAPH_STAGES]
        if unknown or not self.graph_stages:
            raise ValueError(f"--graph-stages takes one or more of {GRAPH_STAGES}, got {list(self.graph_stages)}")
        if set(self.graph_stages) != set(GRAPH_STAGES) and self.runtime != "onnx":
            raise ValueError(f"--graph-stages {' '.join(self.graph_stages)} is read with --runtime onnx only")
        if self.unit_lookahead < 0:
            raise ValueError(f"--unit-lookahead must be >= 0 text states, got {self.unit_lookahead}")
        if not 0.0 <= self.unit_refiner_threshold <= 1.0:
            raise ValueError(f"--unit-refiner-threshold is a probability, got {self.unit_refiner_threshold}")
        if self.unit_refiner is not None:
            if self.output != "speech":
                raise ValueError("--unit-refiner refines the units of speech output; this output is " + self.output)
            if self.runtime == "onnx" or self.reencode:
                raise ValueError(
                    "--unit-refiner runs with the incremental translator in torch (not --runtime onnx or --reencode)"
                )

    @classmethod
    def of(cls, **settings) -> "TranslatorOptions":
        """Options from keyword arguments; an unknown name is refused with the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(f"unknown translator option(s) {unknown}; known: {sorted(known)}")
        return cls(**settings)


@dataclass(frozen=True)
class VocoderOptions:
    """The vocoder's flags: ``vocoder`` (a CodeHiFiGAN generator, or the corpus's
    ``units/kmeans.pt`` with ``vocoder_type`` ``griffin_lim``), ``vocoder_cfg`` (its config.json),
    ``dur_prediction``, ``vocoder_left_context`` (unit frames re-synthesised as context)."""

    vocoder: Optional[str] = None
    vocoder_cfg: Optional[str] = None
    vocoder_type: str = "code_hifigan"
    dur_prediction: bool = False
    vocoder_left_context: int = VOCODER_LEFT_CONTEXT


def pause_frames(ms: int, flag: str) -> int:
    """Milliseconds -> whole encoder frames, rounded up."""
    if ms < 0:
        raise ValueError(f"{flag} must be >= 0 milliseconds, got {ms}")
    return -(-ms // ENCODER_FRAME_MS)


def whole_word(setting: str, chunk_ms: int) -> bool:
    """``--whole-word`` at a chunk size: ``auto`` is StreamSpeech's rule (:func:`whole_word_default`)."""
    if setting not in AUTO_ON_OFF:
        raise ValueError(f"--whole-word must be one of {AUTO_ON_OFF}, got {setting!r}")
    return {"on": True, "off": False}.get(setting, whole_word_default(chunk_ms))


def translator_config(options: TranslatorOptions, trained_sentence_ends: bool, model_path: str) -> TranslatorConfig:
    """The config ``options`` describe for a checkpoint (``trained_sentence_ends``: its ASR CTC
    head writes sentence-end marks)."""
    if options.asr_sentence_ends == "on" and not trained_sentence_ends:
        raise ValueError(
            f"--asr-sentence-ends on: {model_path} was not trained with --asr-sentence-ends, "
            "its ASR CTC head writes no sentence-end marks"
        )
    return TranslatorConfig(
        source_segment_size=options.source_segment_size,
        encoder_chunk_ms=options.encoder_chunk_ms,
        policy=PolicyConfig(
            options.stride_n, options.lagging_k1, whole_word(options.whole_word, options.source_segment_size)
        ),
        max_len=options.max_len,
        mt_source_window=options.mt_source_window,
        target_window=options.target_window,
        speech_output=options.output == "speech",
        translate=options.output != "asr",
        sentence_pause_frames=pause_frames(options.sentence_pause_ms, "--sentence-pause-ms"),
        sentence_confirmed_pause_frames=pause_frames(
            options.sentence_confirmed_pause_ms, "--sentence-confirmed-pause-ms"
        ),
        asr_sentence_ends={"on": True, "off": False}.get(options.asr_sentence_ends, trained_sentence_ends),
        sentence_mark_pause_frames=pause_frames(options.sentence_mark_pause_ms, "--sentence-mark-pause-ms"),
        no_repeat_ngram=options.no_repeat_ngram,
        unit_lookahead=options.unit_lookahead,
        unit_refiner_threshold=options.unit_refiner_threshold,
    )


def add_checkpoint_args(parser: argparse.ArgumentParser) -> None:
    """The flags that name a checkpoint and its data folder (the translator's, ``echostream-export``'s)."""
    d = TranslatorOptions()
    parser.add_argument("--model-path", required=True, help="echostream checkpoint (fairseq-train output)")
    parser.add_argument("--data-bin", required=True, help="corpus folder: config YAMLs, dictionaries, gcmvn")
    parser.add_argument("--config-yaml", default=d.config_yaml, help="data config, relative to --data-bin")
    parser.add_argument(
        "--multitask-config-yaml", default=d.multitask_config_yaml, help="multitask config, relative to --data-bin"
    )


def add_vocoder_file_args(parser: argparse.ArgumentParser) -> None:
    """The flags that name a vocoder's files (the translator's, ``echostream-export``'s)."""
    v = VocoderOptions()
    parser.add_argument(
        "--vocoder",
        default=v.vocoder,
        help="CodeHiFiGAN generator checkpoint, or DATA/units/kmeans.pt with --vocoder-type griffin_lim",
    )
    parser.add_argument("--vocoder-cfg", default=v.vocoder_cfg, help="the CodeHiFiGAN checkpoint's config.json")


def add_translator_args(
    parser: argparse.ArgumentParser, speech_output: bool, source_segment_size: bool = False
) -> None:
    """The translator's flags; ``speech_output`` adds the vocoder's, ``source_segment_size`` the
    chunk's (SimulEval adds its own ``--source-segment-size`` to the agents)."""
    d, v = TranslatorOptions(), VocoderOptions()
    if source_segment_size:
        parser.add_argument("--source-segment-size", type=int, default=d.source_segment_size, help="the chunk, in ms")
    add_checkpoint_args(parser)
    parser.add_argument("--device", default=d.device, choices=("cpu", "gpu", "cuda"), help="where the model runs")
    # not --dtype: SimulEval owns that flag (fp16/fp32) and rejects other values before an agent loads
    parser.add_argument(
        "--model-dtype",
        default=d.model_dtype,
        choices=DTYPES,
        help="inference precision: fp32, bf16 (every weight and activation, the CodeHiFiGAN's too "
        "where oneDNN runs bf16) or int8 (int8 linear layers, needs AVX2; the vocoder stays "
        "fp32); what each needs from the CPU: docs/speed.md",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=d.threads,
        help="CPU threads of torch and, under --runtime onnx, of onnxruntime (default: torch's choice)",
    )
    parser.add_argument(
        "--lagging-k1", type=int, default=d.lagging_k1, help="target subwords kept behind the ST CTC prefix"
    )
    parser.add_argument(
        "--stride-n",
        type=int,
        default=d.stride_n,
        help="CTC prefix growth needed before a write, and the write granularity",
    )
    parser.add_argument(
        "--whole-word",
        choices=AUTO_ON_OFF,
        default=d.whole_word,
        help="write whole words only (auto: only for --source-segment-size >= 640, StreamSpeech's rule)",
    )
    parser.add_argument(
        "--encoder-chunk-ms",
        type=int,
        default=d.encoder_chunk_ms,
        help="source per encoder step, a multiple of 40 ms (0: the chunk the checkpoint was "
        "trained with, or --source-segment-size when shorter); the policy still decides "
        "once per source segment",
    )
    parser.add_argument("--max-len", type=int, default=d.max_len, help="target subwords written after the source ends")
    parser.add_argument(
        "--mt-source-window",
        type=int,
        default=d.mt_source_window,
        help="encoder frames (40 ms) the MT decoder attends, the most recent (0: all)",
    )
    parser.add_argument(
        "--target-window",
        type=int,
        default=d.target_window,
        help="target subwords the MT decoder, T2U and unit decoder attend back (0: all)",
    )
    parser.add_argument(
        "--sentence-pause-ms",
        type=int,
        default=d.sentence_pause_ms,
        help="long-form: a pause this long after recognised speech (ASR CTC blank) ends the "
        "sentence and the target side starts the next one (0: off, one sentence per stream)",
    )
    parser.add_argument(
        "--sentence-confirmed-pause-ms",
        type=int,
        default=d.sentence_confirmed_pause_ms,
        help="long-form: a shorter pause that ends the sentence when the MT decoder also predicts its end (0: off)",
    )
    parser.add_argument(
        "--asr-sentence-ends",
        choices=AUTO_ON_OFF,
        default=d.asr_sentence_ends,
        help="long-form: also end a sentence where the ASR CTC writes its sentence-end mark "
        "(auto: if the model was trained with --asr-sentence-ends)",
    )
    parser.add_argument(
        "--sentence-mark-pause-ms",
        type=int,
        default=d.sentence_mark_pause_ms,
        help="long-form: a sentence-end mark ends the sentence only once followed by a pause this "
        "long before the next recognised subword (0: every mark)",
    )
    parser.add_argument(
        "--no-repeat-ngram",
        type=int,
        default=d.no_repeat_ngram,
        help="never write a subword that repeats an n-gram of this size in the sentence (0: off)",
    )
    parser.add_argument(
        "--asr-beam",
        type=int,
        default=d.asr_beam,
        help="the source transcript from a CTC beam search of N hypotheses over the training "
        "transcripts' words with a word trigram (as fairseq-generate --asr-beam; 0: greedy)",
    )
    parser.add_argument(
        "--asr-lm-weight", type=float, default=d.asr_lm_weight, help="with --asr-beam: the trigram's weight"
    )
    parser.add_argument(
        "--asr-word-bonus", type=float, default=d.asr_word_bonus, help="with --asr-beam: score added per word"
    )
    parser.add_argument(
        "--reencode",
        action="store_true",
        help="StreamSpeech's behaviour: re-encode and re-decode the whole prefix every chunk "
        "(the baseline; required for echostream_conformer checkpoints)",
    )
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default=d.runtime,
        help="what runs the encoder, the CTC heads, the MT decoder, T2U and the unit decoder: torch, or the graphs of "
        "echostream-export under onnxruntime (the int8 ones with --model-dtype int8); docs/export.md",
    )
    parser.add_argument(
        "--graphs",
        default=d.graphs,
        help="with --runtime onnx: echostream-export's folder (default: graphs/ beside the checkpoint)",
    )
    parser.add_argument(
        "--graph-stages",
        nargs="+",
        choices=GRAPH_STAGES,
        default=list(d.graph_stages),
        help="with --runtime onnx: the stages on their graphs, the others in torch (default: all; which "
        "pay depends on the CPU, docs/speed.md)",
    )
    if speech_output:
        add_vocoder_file_args(parser)
        parser.add_argument(
            "--vocoder-type",
            choices=VOCODER_TYPES,
            default=v.vocoder_type,
            help="griffin_lim: the training-free fallback for log-mel k-means units",
        )
        parser.add_argument(
            "--dur-prediction",
            action="store_true",
            help="predict durations of the de-duplicated units (what the model emits)",
        )
        parser.add_argument(
            "--vocoder-left-context",
            type=int,
            default=v.vocoder_left_context,
            help="unit frames re-synthesised as context by the incremental vocoder",
        )
        parser.add_argument(
            "--unit-lookahead",
            type=int,
            default=d.unit_lookahead,
            help="target subwords (text states) a subword's units wait for: its sound depends "
            "on the next one (0: units at once)",
        )
        parser.add_argument(
            "--unit-refiner",
            default=d.unit_refiner,
            metavar="PATH",
            help="a unit refiner (echostream-train-refiner): the units the unit CTC is unsure of are "
            "predicted again before they are voiced (torch runtime only)",
        )
        parser.add_argument(
            "--unit-refiner-threshold",
            type=float,
            default=d.unit_refiner_threshold,
            help="with --unit-refiner: the units whose CTC confidence is at or below this are predicted "
            "again (0: none, 1: all)",
        )


def options_from_args(args: argparse.Namespace, output: str) -> TranslatorOptions:
    """The options parsed flags describe (``output``: what the entry point makes)."""
    settings = {f.name: getattr(args, f.name) for f in fields(TranslatorOptions) if hasattr(args, f.name)}
    if "source_segment_size" in settings:  # SimulEval's flag may arrive as a string
        settings["source_segment_size"] = int(settings["source_segment_size"])
    return TranslatorOptions(**{**settings, "output": output})


def vocoder_options_from_args(args: argparse.Namespace) -> VocoderOptions:
    return VocoderOptions(**{f.name: getattr(args, f.name) for f in fields(VocoderOptions) if hasattr(args, f.name)})
