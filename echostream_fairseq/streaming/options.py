"""The translator's command-line flags in one place: :func:`add_translator_args` adds them and
:func:`translator_from_args` loads the translator they describe. The SimulEval agents, the server,
``echostream-longform`` and the agent benchmark use these two, so a flag means the same in each.
"""

from __future__ import annotations

import argparse

from echostream_fairseq.modules.precision import DTYPES
from echostream_fairseq.streaming.loading import (
    UNIT_LOOKAHEAD,
    VOCODER_LEFT_CONTEXT,
    VOCODER_TYPES,
    load_translator,
    load_vocoder,
)
from echostream_fairseq.streaming.translator import SimultaneousTranslator

__all__ = ["add_translator_args", "translator_from_args"]


def add_translator_args(parser: argparse.ArgumentParser, speech_output: bool) -> None:
    """The translator's flags (StreamSpeech's agents' names, plus ours); ``speech_output`` adds the
    vocoder's."""
    parser.add_argument("--model-path", required=True, help="echostream checkpoint (fairseq-train output)")
    parser.add_argument("--data-bin", required=True, help="corpus folder: config YAMLs, dictionaries, gcmvn")
    parser.add_argument("--config-yaml", default="config.yaml", help="data config, relative to --data-bin")
    parser.add_argument(
        "--multitask-config-yaml", default="config_multitask.yaml", help="multitask config, relative to --data-bin"
    )
    parser.add_argument("--device", default="cpu", choices=("cpu", "gpu", "cuda"), help="where the model runs")
    # not --dtype: SimulEval owns that flag (fp16/fp32) and rejects other values before an agent loads
    parser.add_argument(
        "--model-dtype",
        default="fp32",
        choices=DTYPES,
        help="inference precision: fp32, bf16 (every weight and activation, the CodeHiFiGAN's too "
        "where oneDNN runs bf16) or int8 (int8 linear layers, needs AVX2; the vocoder stays "
        "fp32); what each needs from the CPU: docs/speed.md",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--lagging-k1", type=int, default=0, help="target subwords kept behind the ST CTC prefix")
    parser.add_argument(
        "--stride-n", type=int, default=1, help="CTC prefix growth needed before a write, and the write granularity"
    )
    parser.add_argument(
        "--whole-word",
        choices=("auto", "on", "off"),
        default="auto",
        help="write whole words only (auto: on for --source-segment-size >= 640, as StreamSpeech)",
    )
    parser.add_argument(
        "--encoder-chunk-ms",
        type=int,
        default=0,
        help="source per encoder step, a multiple of 40 ms (0: the chunk the checkpoint was "
        "trained with, or --source-segment-size when shorter); the policy still decides "
        "once per source segment",
    )
    parser.add_argument("--max-len", type=int, default=200, help="target subwords written after the source ends")
    parser.add_argument(
        "--mt-source-window",
        type=int,
        default=512,
        help="encoder frames (40 ms) the MT decoder attends, the most recent (0: all)",
    )
    parser.add_argument(
        "--target-window",
        type=int,
        default=64,
        help="target subwords the MT decoder, T2U and unit decoder attend back (0: all)",
    )
    parser.add_argument(
        "--sentence-pause-ms",
        type=int,
        default=480,
        help="long-form: a pause this long after recognised speech (ASR CTC blank) ends the "
        "sentence and the target side starts the next one (0: off, one sentence per stream)",
    )
    parser.add_argument(
        "--sentence-confirmed-pause-ms",
        type=int,
        default=240,
        help="long-form: a shorter pause that ends the sentence when the MT decoder also predicts its end (0: off)",
    )
    parser.add_argument(
        "--asr-sentence-ends",
        choices=("auto", "on", "off"),
        default="auto",
        help="long-form: also end a sentence where the ASR CTC writes its sentence-end mark "
        "(auto: if the model was trained with --asr-sentence-ends)",
    )
    parser.add_argument(
        "--no-repeat-ngram",
        type=int,
        default=0,
        help="never write a subword that repeats an n-gram of this size in the sentence (0: off)",
    )
    parser.add_argument(
        "--asr-beam",
        type=int,
        default=0,
        help="the source transcript from a CTC beam search of N hypotheses over the training "
        "transcripts' words with a word trigram (as fairseq-generate --asr-beam; 0: greedy)",
    )
    parser.add_argument("--asr-lm-weight", type=float, default=0.5, help="with --asr-beam: the trigram's weight")
    parser.add_argument("--asr-word-bonus", type=float, default=2.0, help="with --asr-beam: score added per word")
    parser.add_argument(
        "--reencode",
        action="store_true",
        help="StreamSpeech's behaviour: re-encode and re-decode the whole prefix every chunk "
        "(the baseline; required for echostream_conformer checkpoints)",
    )
    if speech_output:
        parser.add_argument(
            "--vocoder",
            default=None,
            help="CodeHiFiGAN generator checkpoint, or DATA/units/kmeans.pt with --vocoder-type griffin_lim",
        )
        parser.add_argument("--vocoder-cfg", default=None, help="the CodeHiFiGAN checkpoint's config.json")
        parser.add_argument(
            "--vocoder-type",
            choices=VOCODER_TYPES,
            default="code_hifigan",
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
            default=VOCODER_LEFT_CONTEXT,
            help="unit frames re-synthesised as context by the incremental vocoder",
        )
        parser.add_argument(
            "--unit-lookahead",
            type=int,
            default=UNIT_LOOKAHEAD,
            help="target subwords (text states) a subword's units wait for: its sound depends "
            "on the next one (0: units at once)",
        )


def translator_from_args(args, speech_output: bool, translate: bool = True) -> SimultaneousTranslator:
    """The translator the flags of :func:`add_translator_args` describe
    (:func:`~echostream_fairseq.streaming.loading.load_translator`)."""
    vocoder = None
    if speech_output:
        vocoder = load_vocoder(
            args.vocoder,
            args.vocoder_cfg,
            args.vocoder_type,
            args.dur_prediction,
            args.vocoder_left_context,
            args.model_dtype,
        )
    return load_translator(
        args.model_path,
        args.data_bin,
        output="speech" if speech_output else ("text" if translate else "asr"),
        vocoder=vocoder,
        source_segment_size=int(getattr(args, "source_segment_size", 320)),
        encoder_chunk_ms=getattr(args, "encoder_chunk_ms", 0),
        device=args.device,
        model_dtype=args.model_dtype,
        threads=args.threads,
        config_yaml=args.config_yaml,
        multitask_config_yaml=args.multitask_config_yaml,
        lagging_k1=args.lagging_k1,
        stride_n=args.stride_n,
        whole_word=args.whole_word,
        max_len=args.max_len,
        mt_source_window=args.mt_source_window,
        target_window=args.target_window,
        sentence_pause_ms=args.sentence_pause_ms,
        sentence_confirmed_pause_ms=args.sentence_confirmed_pause_ms,
        asr_sentence_ends=args.asr_sentence_ends,
        no_repeat_ngram=args.no_repeat_ngram,
        asr_beam=args.asr_beam,
        asr_lm_weight=args.asr_lm_weight,
        asr_word_bonus=args.asr_word_bonus,
        reencode=args.reencode,
        unit_lookahead=getattr(args, "unit_lookahead", UNIT_LOOKAHEAD),
    )
