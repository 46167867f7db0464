"""``echostream-bench-batch``: many concurrent streams, stepped as one batch against one at a time.

::

    echostream-bench-batch --data results/synthetic/corpus [--model CKPT] [--vocoder G --vocoder-cfg CFG]
                           [--streams 1 2 4 8 16 32 64] [--full-size-streams 1 2 4 8] [--out results/bench_batch]

Systems, with speech output:

* ``tiny``: ``--model`` (default: ``echostream_emformer_tiny`` with random weights) and ``--vocoder``
  (default: the corpus's Griffin-Lim fallback);
* ``tiny_text``: the same model with text output (no units, no vocoder);
* ``full``: ``echostream_emformer`` (StreamSpeech's sizes) and the full-size CodeHiFiGAN, random
  weights (seed 0).

Each of N streams reads its own source (the split's utterances, in turn, 0.5 s of silence after
each), so the streams are at different points of their sentences. A trained model runs with the
agents' settings (long-form sentence ends), so it writes what it would write live; with random
weights the target side is forced to work on every chunk (``force_writing``: no end of sentence,
no unit blank) and writes far more speech than a speaker says (the table gives the rate).
After ``--warmup`` chunks per stream (the attention windows fill and the states share one layout),
``--ticks`` ticks are timed: in a tick every stream has one chunk waiting and is stepped by

* ``batched``: one :meth:`~echostream_fairseq.streaming.api.EchoStream.step` (every stage as one
  batch), or
* ``one at a time``: one translator step per stream, as a server with one processor per connection
  (simulstream's design) does.

``--model-dtype bf16`` runs the models, and the CodeHiFiGANs where oneDNN runs bf16, in bfloat16 (the agents' flag).

Both modes start from the same states and produce the same output. Per-stream cost = tick time / N.
Two ratios: ``batched / one at a time`` divides by the cost of stepping each of the same N streams
alone in the same ticks (interleaved with the batched ones, so a machine whose speed drifts between
minutes moves both alike); ``batched / single-stream`` divides by the 1-stream row, one stream's
chunks timed at another moment.
Real time: every stream's chunk arrives at the same moment (the worst alignment); N streams are
held in real time when the 95th percentile of the tick time is below the chunk's duration.
Writes ``bench_batch.md`` and ``bench_batch.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import torch

from echostream_fairseq.common.audio import SAMPLE_RATE
from echostream_fairseq.streaming.options import RUNTIMES
from echostream_fairseq.streaming.translator import STAGES
from echostream_fairseq.vocoder.incremental import (
    LEFT_CONTEXT as VOCODER_LEFT_CONTEXT,
)
from echostream_fairseq.vocoder.incremental import (
    MAX_CAUSAL_SUB_BATCH,
    MAX_PADDING,
    MAX_SUB_BATCH,
)

logger = logging.getLogger(__name__)

# the full-size system's vocoder (--full-size-vocoder)
FULL_SIZE_VOCODERS = ("hifigan", "causal", "istft")


class BenchError(Exception):
    """An unusable input; the message says what to fix."""


def _sources(data: Path, split: str, limit: int) -> List[torch.Tensor]:
    from echostream_fairseq.data.audio import read_audio

    listing = data / "simuleval" / f"{split}.source"
    if not listing.is_file():
        raise BenchError(f"{listing} not found: --data must be a corpus folder written by echostream-prep")
    paths = [line.strip() for line in listing.read_text().splitlines() if line.strip()][:limit]
    if not paths:
        raise BenchError(f"{listing} lists no audio")
    return [read_audio(p, SAMPLE_RATE) for p in paths]


def _translator(model, task, vocoder, chunk_ms: int, trained: bool, graphs=None):
    """The agents' default settings (long-form sentence ends) for a trained model; random weights
    write nonsense at their own pace, so their target side is forced to work on every chunk.
    ``graphs``: the encoder stage and MT decoder on those onnxruntime sessions (``--runtime onnx``)."""
    from dataclasses import replace

    from echostream_fairseq.streaming.loading import build_translator
    from echostream_fairseq.streaming.options import TranslatorOptions, translator_config

    speech = vocoder is not None
    options = TranslatorOptions(output="speech" if speech else "text", source_segment_size=chunk_ms)
    config = replace(translator_config(options, task.asr_sentence_ends, "the model"), time_stages=True)
    if not trained:  # one sentence per stream, every subword written as it comes
        config = replace(
            config,
            force_writing=True,
            sentence_pause_frames=0,
            sentence_confirmed_pause_frames=0,
            asr_sentence_ends=False,
            policy=replace(config.policy, whole_word=False),
        )
    return build_translator(model, task, config, vocoder, graphs=graphs)


def tiny_system(args, vocoder_batch: Optional[int] = 1):
    """``(model, task, vocoder, graphs)`` of ``--model`` (default: random
    ``echostream_emformer_tiny``) and ``--vocoder`` (default: the corpus's Griffin-Lim fallback),
    synthesising up to ``vocoder_batch`` streams per call; with ``--runtime onnx``, the model's
    exported graphs (else ``None``), and the vocoder on its graph where it has one."""
    from echostream_fairseq.checkpoint import build_random_echostream_model, load_echostream_model
    from echostream_fairseq.modules.precision import convert_precision
    from echostream_fairseq.streaming.loading import load_vocoder

    dtype = getattr(args, "model_dtype", "fp32")
    left_context = getattr(args, "vocoder_left_context", VOCODER_LEFT_CONTEXT)
    max_padding = getattr(args, "vocoder_max_padding", 0)
    if args.model:
        model, task = load_echostream_model(args.model, args.data)
    else:
        model, task = build_random_echostream_model("echostream_emformer_tiny", args.data)
    graphs = _graphs(args, model, task)
    model = convert_precision(model.eval(), dtype, torch.device("cpu"))
    if args.vocoder:
        vocoder = load_vocoder(
            args.vocoder,
            args.vocoder_cfg,
            "code_hifigan",
            True,
            model_dtype=dtype,
            max_batch=vocoder_batch,
            left_context=left_context,
            max_padding=max_padding,
        )
    else:
        vocoder = load_vocoder(
            str(Path(args.data) / "units" / "kmeans.pt"),
            None,
            "griffin_lim",
            True,
            max_batch=vocoder_batch,
            left_context=left_context,
        )
    if graphs is not None:
        from echostream_bench.onnx_graphs import vocoder_on_graph

        vocoder = vocoder_on_graph(vocoder)
    return model, task, vocoder, graphs


def _graphs(args, model, task):
    """With ``--runtime onnx``, ``model``'s graphs (exported from its fp32 weights) of the
    precision ``--model-dtype`` takes; else ``None``."""
    if getattr(args, "runtime", "torch") != "onnx":
        return None
    from echostream_bench.onnx_graphs import system_graphs

    return system_graphs(model.eval(), task, "int8" if getattr(args, "model_dtype", "fp32") == "int8" else "fp32")


def _systems(args) -> Dict[str, object]:
    from echostream_fairseq.checkpoint import build_random_echostream_model

    kmeans = Path(args.data) / "units" / "kmeans.pt"
    systems = {}
    model, task, vocoder, graphs = tiny_system(args, args.vocoder_batch)
    systems["tiny"] = _translator(model, task, vocoder, args.chunk_ms, bool(args.model), graphs)
    systems["tiny_text"] = _translator(model, task, None, args.chunk_ms, bool(args.model), graphs)
    if args.full_size_streams:
        from echostream_fairseq.modules.precision import convert_precision

        model, task = build_random_echostream_model("echostream_emformer", args.data)
        graphs = _graphs(args, model, task)
        model = convert_precision(model.eval(), args.model_dtype, torch.device("cpu"))
        vocoder = random_full_size_vocoder(
            kmeans,
            args.vocoder_batch,
            args.model_dtype,
            args.vocoder_left_context,
            args.vocoder_max_padding,
            args.full_size_vocoder,
        )
        if graphs is not None:
            from echostream_bench.onnx_graphs import vocoder_on_graph

            vocoder = vocoder_on_graph(vocoder)
        systems["full"] = _translator(model, task, vocoder, args.chunk_ms, False, graphs)
    return systems


def random_full_size_vocoder(
    kmeans: Path,
    max_batch: Optional[int] = 1,
    model_dtype: str = "fp32",
    left_context: int = VOCODER_LEFT_CONTEXT,
    max_padding: int = 0,
    generator: str = "hifigan",
):
    """The full-size CodeHiFiGAN (StreamSpeech's) with random weights (seed 0), for the corpus's units;
    ``max_batch`` streams at most per synthesis call (None: the streaming API's limit); ``bf16``
    runs it as ``--model-dtype bf16`` does (``CodeHiFiGANUnitVocoder.for_model_dtype``);
    ``left_context`` frames re-synthesised per call; ``max_padding`` as :func:`load_vocoder`'s;
    ``generator``: ``hifigan``, ``causal`` (the causal HiFi-GAN of the same size) or ``istft`` (the
    iSTFT generator of the full preset)."""
    from echostream_fairseq.data.units import load_unit_model
    from echostream_fairseq.vocoder import CodeHiFiGANUnitVocoder, build_generator, preset_config
    from echostream_fairseq.vocoder.incremental import IncrementalVocoder, sub_batch_limit

    num_units = int(load_unit_model(str(kmeans))["num_units"])
    with tempfile.TemporaryDirectory() as tmp:
        if generator == "causal":
            config = {**preset_config("full", num_units), "causal": True}
        else:
            config = preset_config("full", num_units, generator=generator)
        torch.manual_seed(0)
        torch.save({"generator": build_generator(config).state_dict()}, os.path.join(tmp, "g.pt"))
        full = CodeHiFiGANUnitVocoder(os.path.join(tmp, "g.pt"), config).eval()
    full = full.for_model_dtype(model_dtype)  # as load_vocoder
    incremental = IncrementalVocoder(
        full,
        left_context=left_context,
        dur_prediction=True,
        max_batch=sub_batch_limit(full) if max_batch is None else max_batch,
        max_padding=max_padding,
    )
    incremental.warm_up()  # as load_vocoder does: the timed chunks should not prepare convolutions
    return incremental


def _vocoder_kind(incremental) -> str:
    """How a system's vocoder runs, for the report."""
    if incremental.causal:
        return "causal, from its caches"
    names = {"CodeHiFiGANUnitVocoder": "HiFi-GAN", "GriffinLimUnitVocoder": "Griffin-Lim"}
    kind = type(incremental.vocoder).__name__
    generator = "iSTFT" if getattr(incremental.vocoder, "istft", False) else names.get(kind, kind)
    return f"{generator}, re-synthesising {incremental.left_context} frames of context"


def _run(translator, sources: List[torch.Tensor], n: int, warmup: int, ticks: int) -> Dict:
    """Time ``ticks`` ticks of ``n`` streams, batched and one at a time, from the same states."""
    from echostream_fairseq.streaming.api import EchoStream

    chunk = translator.config.source_segment_size * SAMPLE_RATE // 1000
    need = (warmup + ticks) * chunk
    audio = []
    for k in range(n):  # stream k reads the utterances from number k on
        pieces, length, j = [], 0, k
        while length < need:
            pieces += [sources[j % len(sources)], torch.zeros(SAMPLE_RATE // 2)]
            length += pieces[-2].numel() + pieces[-1].numel()
            j += 1
        audio.append(torch.cat(pieces)[:need])
    system = EchoStream(translator)
    streams = [system.open() for _ in range(n)]
    for s, a in zip(streams, audio):
        s.push(a[: warmup * chunk])
    while any(s.ready for s in streams):
        system.step(streams)
    states = [s.state for s in streams]
    batched, alone, speech, stages = [], [], 0, {}
    for t in range(ticks):
        pieces = [a[(warmup + t) * chunk : (warmup + t + 1) * chunk] for a in audio]
        for s, p in zip(streams, pieces):
            s.push(p)
        started = time.perf_counter()
        events = system.step(streams)
        batched.append(time.perf_counter() - started)
        speech += sum(e.audio.size for evs in events.values() for e in evs if e.kind == "target_speech")
        for s in streams:
            for stage, seconds in s.last_step_seconds.items():
                stages[stage] = stages.get(stage, 0.0) + seconds / (n * ticks) * 1e3
        started = time.perf_counter()
        states = [translator.step(p, st)[1] for p, st in zip(pieces, states)]
        alone.append(time.perf_counter() - started)
    for s in streams:
        s.close()
    p95 = lambda xs: sorted(xs)[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]  # noqa: E731
    return {
        "streams": n,
        "batched_ms_per_stream": statistics.median(batched) / n * 1e3,
        "alone_ms_per_stream": statistics.median(alone) / n * 1e3,
        "batched_tick_p95_ms": p95(batched) * 1e3,
        "alone_tick_p95_ms": p95(alone) * 1e3,
        # seconds of speech written per second of source, per stream
        "speech_rate": (
            speech / translator.vocoder.vocoder.sample_rate / (n * ticks * chunk / SAMPLE_RATE)
            if translator.config.speech_output
            else 0.0
        ),
        "batched_stage_ms_per_stream": stages,
    }


def _table(name: str, rows: List[Dict], chunk_ms: int) -> List[str]:
    single = rows[0]["alone_ms_per_stream"] if rows and rows[0]["streams"] == 1 else None
    lines = [
        f"### {name}",
        "",
        "| streams | batched ms/stream/chunk | one at a time | batched / one at a time | batched / single-stream | "
        "batched tick p95 ms | one-at-a-time tick p95 ms | real time (batched / one at a time) | "
        "speech s per source s | batched ms/stream: encoder, mt, units, vocoder |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = f"{r['batched_ms_per_stream'] / single:.2f}x" if single else "-"
        same_ticks = f"{r['batched_ms_per_stream'] / r['alone_ms_per_stream']:.2f}x"
        held = lambda ms: "yes" if ms < chunk_ms else "no"  # noqa: E731
        lines.append(
            f"| {r['streams']} | {r['batched_ms_per_stream']:.2f} | {r['alone_ms_per_stream']:.2f} "
            f"| {same_ticks} | {ratio} | "
            f"{r['batched_tick_p95_ms']:.0f} | {r['alone_tick_p95_ms']:.0f} | "
            f"{held(r['batched_tick_p95_ms'])} / {held(r['alone_tick_p95_ms'])} | {r['speech_rate']:.2f} | "
            + ", ".join(f"{r['batched_stage_ms_per_stream'].get(k, 0.0):.1f}" for k in STAGES)
            + " |"
        )
    for mode, key in (("batched", "batched_tick_p95_ms"), ("one at a time", "alone_tick_p95_ms")):
        held = [r["streams"] for r in rows if r[key] < chunk_ms]
        lines.append("")
        lines.append(f"Most streams held in real time, {mode}: {max(held) if held else 0} (of the counts tried)")
    return lines + [""]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="results/synthetic/corpus", help="corpus folder (dictionaries, test audio)")
    p.add_argument("--split", default="test")
    p.add_argument("--model", default=None, help="tiny checkpoint (default: random echostream_emformer_tiny)")
    p.add_argument("--vocoder", default=None, help="tiny CodeHiFiGAN generator (default: Griffin-Lim)")
    p.add_argument("--vocoder-cfg", default=None)
    p.add_argument("--chunk-ms", type=int, default=320)
    p.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 48, 64])
    p.add_argument("--full-size-streams", type=int, nargs="*", default=[1, 2, 4, 6, 8])
    p.add_argument("--warmup", type=int, default=12, help="chunks per stream before timing")
    p.add_argument("--ticks", type=int, default=10, help="timed ticks per count")
    p.add_argument("--utterances", type=int, default=64, help="source utterances to read")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--vocoder-batch",
        type=int,
        default=None,
        help="the most streams the vocoder synthesises in one call (a power of two; 1: one by one; "
        f"default: the streaming API's, {MAX_SUB_BATCH}, or {MAX_CAUSAL_SUB_BATCH} for a causal or iSTFT vocoder; "
        "the warm-up keeps the size up to it that costs least per stream)",
    )
    p.add_argument(
        "--full-size-vocoder",
        choices=FULL_SIZE_VOCODERS,
        default="hifigan",
        help="the full-size system's random vocoder: StreamSpeech's HiFi-GAN, its causal form (as "
        "echostream-train-vocoder --causal) or the iSTFT generator of the full preset (--generator istft)",
    )
    p.add_argument(
        "--vocoder-max-padding",
        type=int,
        default=MAX_PADDING,
        help="the most frames a shorter HiFi-GAN call is padded by to share a call with longer ones "
        f"(0: only calls of equal length share; the streaming API's setting is {MAX_PADDING}; "
        "the iSTFT generator lays calls end to end and pads nothing)",
    )
    p.add_argument(
        "--vocoder-left-context",
        type=int,
        default=VOCODER_LEFT_CONTEXT,
        help="unit frames the incremental vocoder re-synthesises as context (as the agents' flag)",
    )
    p.add_argument(
        "--model-dtype",
        default="fp32",
        choices=("fp32", "bf16", "int8"),
        help="inference precision of the models and the CodeHiFiGANs (as the agents' flag)",
    )
    p.add_argument(
        "--runtime",
        default="torch",
        choices=RUNTIMES,
        help="what runs the encoder stage, the MT decoder and the units' stage (as the agents' flag; onnx: the models' "
        "graphs, exported in the run)",
    )
    p.add_argument("--out", default="results/bench_batch")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from echostream_bench.common import write_report
    from echostream_fairseq.common.cpu import machine_header

    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        if args.model and not Path(args.model).is_file():
            raise BenchError(f"checkpoint not found: {args.model} (--model)")
        if args.vocoder and not args.vocoder_cfg:
            raise BenchError("--vocoder-cfg is required with --vocoder")
        if any(n < 1 for n in args.streams + args.full_size_streams):
            raise BenchError("stream counts must be >= 1")
        sources = _sources(Path(args.data), args.split, args.utterances)
        systems = _systems(args)
    except (BenchError, OSError, ValueError) as e:
        print(f"echostream-bench-batch: {e}", file=sys.stderr)
        return 2
    sub_batches = {
        name: t.vocoder.max_batch for name, t in systems.items() if t.vocoder is not None and t.config.speech_output
    }
    kinds = {
        name: _vocoder_kind(t.vocoder)
        for name, t in systems.items()
        if t.vocoder is not None and t.config.speech_output
    }
    results = {
        "machine": machine_header(),
        "chunk_ms": args.chunk_ms,
        "warmup": args.warmup,
        "ticks": args.ticks,
        "model_dtype": args.model_dtype,
        "runtime": args.runtime,
        "vocoder_max_batch": sub_batches,
        "vocoders": kinds,
        "systems": {},
    }
    counts = {
        "tiny": sorted(set(args.streams)),
        "tiny_text": sorted(set(args.streams)),
        "full": sorted(set(args.full_size_streams)),
    }
    lines = [
        "# Concurrent streams: batched against one at a time",
        "",
        f"Machine: {results['machine']}",
        f"Chunk {args.chunk_ms} ms, speech output; "
        f"tiny: {'trained, agent settings' if args.model else 'random, forced writing'}, full: random, forced writing; "
        f"{args.model_dtype}, runtime {args.runtime}; "
        f"{args.warmup} warm-up chunks, {args.ticks} timed ticks per count.",
        "Vocoder sub-batches (the most streams per synthesis call, as the warm-up chose them): "
        + ", ".join(f"{name} {n}" for name, n in sub_batches.items())
        + ".",
        "Vocoders: " + ", ".join(f"{name} {kind}" for name, kind in kinds.items()) + ".",
        "",
    ]
    with torch.inference_mode():
        for name, translator in systems.items():
            rows = []
            for n in counts[name]:
                rows.append(_run(translator, sources, n, args.warmup, args.ticks))
                print(f"{name} {n} streams: {rows[-1]}", flush=True)
            results["systems"][name] = rows
            lines += _table(name, rows, args.chunk_ms)
    write_report(Path(args.out), "bench_batch", results, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
