"""``echostream-bench-agent``: agent-level evidence: per-chunk compute over a long stream, and the
latency-quality curve.

::

    echostream-bench-agent --part long-stream [--minutes 5] [--source-segment-size 320] [--out results/bench_agent]
    echostream-bench-agent --part curve [--chunk-sizes 160 320 640 1000 2000] [--num-utterances 40]

Both parts run the whole agent (:class:`~echostream_fairseq.streaming.translator.SimultaneousTranslator`:
fbank, encoder, CTC heads, READ/WRITE policy, MT decoder, text-to-unit, unit CTC, vocoder), with speech
output, on checkpoints loaded as the SimulEval agent loads them
(:func:`~echostream_fairseq.streaming.options.translator_from_args`).

**long-stream.** The split's utterances, concatenated in order (repeated when needed) with
``--silence`` seconds of silence between them, up to ``--minutes``, fed in ``--source-segment-size``
chunks. Systems:

* ``echostream``: ``--model`` (the Emformer checkpoint) in incremental mode; every chunk of the
  whole stream is timed (wall time of ``translator.step``). Value at a position: the median of the
  chunks within ``--window`` chunks of it.
* ``echostream_forced``: the same, with the MT decoder's end of sentence banned, so the decoder,
  the text-to-unit stack and the vocoder keep working along the stream (the models are trained on
  single sentences: on a concatenated stream their decoder ends its sentence after the first
  few seconds and then writes nothing, so the late chunks of ``echostream`` skip those stages).
  Stepped interleaved with ``echostream``, chunk by chunk, in the same process.
* ``model_reencode``: ``--model`` with ``reencode=True`` (StreamSpeech's agent: re-encode and
  re-decode the whole prefix every chunk): same weights, both modes.
* ``baseline``: ``--baseline-model`` (the chunk Conformer) with ``reencode=True``.

The re-encoding systems' per-chunk cost grows with the position, so running them chunk by chunk to
minute 5 would take hours: at each of ``--positions`` the prefix up to that position is fed as one
chunk (untimed), then ``--timed-chunks`` normal chunks are timed, the two systems interleaved.

Computation-aware lag: real time is simulated from the per-chunk costs (chunk ``k`` arrives at
``(k + 1) * segment``; its processing starts at ``max(arrival, previous finish)``); the lag of a
chunk is ``finish - arrival``. For the sampled systems the per-chunk cost between measured positions
is interpolated linearly (held at the first measurement before it).

Per-stage time (the translator's own ``time_stages`` split of each chunk's wall time into resampling,
fbank, encoder and CTC; MT memory, policy and decoding; T2U and units; the vocoder) is recorded along
the way, with what each chunk produced (subwords, units, speech).

**curve.** ASR-BLEU against AL over chunk sizes for ``echostream`` and ``baseline`` on the first
``--num-utterances`` utterances of the split: the real ``simuleval`` CLI on
``agents/echostream_s2st_agent.py`` as a subprocess per (system, chunk size), quality metric
``ASR_BLEU_OFFLINE`` (pocketsphinx with a bigram LM from ``--lm-text``), latency metrics AL AP DAL
StartOffset EndOffset ATD, read back from SimulEval's ``scores.tsv``. The agent's text translation
is also scored with BLEU (from ``--extra-output-dir``), and the ASR-BLEU of the split's reference
target speech is given as the recogniser's ceiling.

Writes ``bench_agent.md`` (tables), ``bench_agent.json``, ``bench_agent_long_stream.png`` and
``bench_agent_curve.png`` to ``--out``; running one part keeps the other part's earlier results there.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from echostream_bench.agent.curve import curve
from echostream_bench.agent.inputs import REPO, BenchError, check_file, check_inputs
from echostream_bench.agent.long_stream import long_stream
from echostream_bench.agent.plots import plot_curve, plot_long_stream
from echostream_bench.agent.render import render, render_curve, render_long_stream
from echostream_fairseq.common.files import atomic_open

__all__ = ["build_parser", "main", "run"]


def _json_safe(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def _positive_float(text: str) -> float:
    v = float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return v


def build_parser() -> argparse.ArgumentParser:
    tiny = "results/synthetic_tiny"
    p = argparse.ArgumentParser(
        prog="echostream-bench-agent",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--part", choices=("long-stream", "curve", "all"), default="all", help="what to measure")
    p.add_argument("--out", default="results/bench_agent", help="output folder")
    p.add_argument(
        "--model",
        default=f"{tiny}/echostream_emformer_tiny/checkpoint_last.pt",
        help="EchoStream checkpoint (Emformer: incremental, and re-encode as the same-model peer)",
    )
    p.add_argument(
        "--baseline-model",
        default=f"{tiny}/echostream_conformer_tiny/checkpoint_last.pt",
        help="re-encoding baseline checkpoint (run with reencode=True)",
    )
    p.add_argument("--data", default=f"{tiny}/corpus", help="corpus folder (echostream-prep output)")
    p.add_argument("--split", default="test", help="split under DATA/simuleval/")
    p.add_argument("--vocoder", default=None, help="vocoder checkpoint (default: DATA/units/kmeans.pt for Griffin-Lim)")
    p.add_argument("--vocoder-type", choices=("griffin_lim", "code_hifigan"), default="griffin_lim")
    p.add_argument("--vocoder-cfg", default=None, help="CodeHiFiGAN config.json")
    p.add_argument("--no-dur-prediction", action="store_true", help="do not pass --dur-prediction to the agent")
    p.add_argument("--threads", type=int, default=1, help="torch / OpenMP threads")
    g = p.add_argument_group("long-stream")
    g.add_argument("--minutes", type=_positive_float, default=5.0, help="stream length")
    g.add_argument("--source-segment-size", type=int, default=320, help="chunk size (ms)")
    g.add_argument("--silence", type=float, default=0.3, help="seconds of silence between utterances")
    g.add_argument(
        "--positions",
        type=_positive_float,
        nargs="+",
        default=[5, 30, 60, 120, 180, 300],
        help="stream positions (s) for the table and the sampled re-encoding systems",
    )
    g.add_argument("--window", type=int, default=10, help="EchoStream: chunks either side of a position in its median")
    g.add_argument("--timed-chunks", type=int, default=3, help="re-encoding systems: chunks timed at each position")
    g.add_argument(
        "--no-forced-write", dest="forced_write", action="store_false", help="leave out the forced-write EchoStream run"
    )
    g.add_argument("--no-baseline", action="store_true", help="long-stream: leave out --baseline-model")
    g = p.add_argument_group("curve")
    g.add_argument("--chunk-sizes", type=int, nargs="+", default=[160, 320, 640, 1000, 2000], help="ms")
    g.add_argument("--num-utterances", type=int, default=40, help="first N utterances of the split")
    g.add_argument(
        "--lm-text",
        default=None,
        help="English sentences for the ASR LM: a text file, or a TSV with a tgt_text column "
        "(default: DATA/text/train.tsv)",
    )
    g.add_argument("--simuleval", default=str(Path(sys.executable).parent / "simuleval"), help="SimulEval's CLI")
    g.add_argument("--agent", default=str(REPO / "agents" / "echostream_s2st_agent.py"), help="SimulEval agent file")
    return p


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Run the selected parts, print their tables, write bench_agent.{md,json} and the plots."""
    from echostream_fairseq.common.cpu import machine_header

    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    for name in ("fairseq", "echostream_fairseq", "echostream.asr_bleu"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if args.threads < 1:
        raise BenchError("--threads must be >= 1")
    torch.set_num_threads(args.threads)
    if args.source_segment_size < 40 or any(c < 40 for c in args.chunk_sizes):
        raise BenchError("chunk sizes must be at least 40 ms (one encoder frame)")
    if args.window < 0 or args.timed_chunks < 1 or args.num_utterances < 1:
        raise BenchError("--window must be >= 0, --timed-chunks and --num-utterances >= 1")
    args.positions = sorted(set(args.positions))
    if args.lm_text is None:
        args.lm_text = str(Path(args.data) / "text" / "train.tsv")
    parts = ("long-stream", "curve") if args.part == "all" else (args.part,)
    check_inputs(args, need_baseline="curve" in parts or not args.no_baseline)
    if "curve" in parts:
        check_file(args.lm_text, "ASR LM text", "--lm-text")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "bench_agent.json"
    results: Dict[str, Any] = {}
    if json_path.is_file():  # keep the other part's earlier results
        try:
            results = json.loads(json_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            results = {}
    machine = machine_header()
    results["machine"] = machine
    print(f"Machine: {machine}", flush=True)
    if "long-stream" in parts:
        results["long_stream"] = long_stream(args)
        print()
        print(render_long_stream(results["long_stream"]), flush=True)
        plot_long_stream(out / "bench_agent_long_stream.png", results["long_stream"])
    if "curve" in parts:
        results["curve"] = curve(args)
        print()
        print(render_curve(results["curve"]), flush=True)
        plot_curve(out / "bench_agent_curve.png", results["curve"])
    results = _json_safe(results)
    with atomic_open(json_path) as f:
        f.write(json.dumps(results))
    with atomic_open(out / "bench_agent.md") as f:
        f.write(render(results))
    print(f"wrote {out / 'bench_agent.md'} and {json_path} (plots: bench_agent_long_stream.png, bench_agent_curve.png)")
    return results


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    warnings.filterwarnings("ignore")
    try:
        run(args)
    except BenchError as e:
        print(f"echostream-bench-agent: error: {e}", file=sys.stderr)
        return 2
    return 0
