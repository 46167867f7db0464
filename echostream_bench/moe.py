"""``echostream-bench-moe``: the user's Mixture-of-Experts feed-forward proposal, measured against
the dense block it would replace and a narrower dense block of the same multiply-adds.

::

    echostream-bench-moe [--dim 256] [--rows 10 40 100] [--threads 2] [--out results/bench_moe]

The proposal (the user's notes): 8 experts of 768 hidden units, top-2 per row, in place of the
Emformer's 2048-wide FFN, for a quarter fewer multiply-adds. Measured here, each at 10, 40 and 100
rows (a 320 ms chunk of one stream is 8 rows plus its right context; a batch of streams more):

* ``dense``: ``D -> 2048 -> D``, the FFN today;
* ``narrow``: ``D -> 1536 -> D``, dense with the multiply-adds the MoE does per row;
* ``moe_row``: a router picks 2 of 8 experts for each row (weights from a softmax over the two),
  each expert runs on its rows;
* ``moe_chunk``: one choice of 2 experts for the whole chunk (from the router on the rows' mean),
  so each expert runs on all rows as one dense product.

under torch (eager, ``--threads``) and under onnxruntime (the same module exported, the same number
of threads), each output checked equal to torch's. The table gives milliseconds per call and each
variant's time against ``dense`` on the same runtime.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DenseFFN", "MoEFFN", "main"]

EXPERTS, TOP, EXPERT_WIDTH = 8, 2, 768


class DenseFFN(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.relu(self.fc1(x)))


class MoEFFN(nn.Module):
    """``EXPERTS`` experts of ``width`` hidden units, the ``TOP`` best of the router's for each row
    (``per_chunk=False``) or for the whole chunk (``per_chunk=True``). ``x``: ``[rows, dim]``."""

    def __init__(self, dim: int, width: int = EXPERT_WIDTH, per_chunk: bool = False) -> None:
        super().__init__()
        self.per_chunk = per_chunk
        self.router = nn.Linear(dim, EXPERTS)
        self.w1 = nn.Parameter(torch.randn(EXPERTS, dim, width) * dim**-0.5)
        self.b1 = nn.Parameter(torch.zeros(EXPERTS, width))
        self.w2 = nn.Parameter(torch.randn(EXPERTS, width, dim) * width**-0.5)
        self.b2 = nn.Parameter(torch.zeros(EXPERTS, dim))

    def forward(self, x: Tensor) -> Tensor:
        if self.per_chunk:
            scores, chosen = self.router(x.mean(dim=0, keepdim=True)).topk(TOP, dim=-1)  # [1, TOP]
            weights = scores.softmax(dim=-1)[0]
            out = x.new_zeros(x.shape)
            for j in range(TOP):
                e = chosen[0, j]
                h = F.relu(x @ self.w1[e] + self.b1[e])
                out = out + weights[j] * (h @ self.w2[e] + self.b2[e])
            return out
        scores, chosen = self.router(x).topk(TOP, dim=-1)  # [rows, TOP]
        weights = scores.softmax(dim=-1)
        out = x.new_zeros(x.shape)
        for e in range(EXPERTS):
            hit = chosen == e  # [rows, TOP]
            rows = hit.any(dim=-1).nonzero().squeeze(-1)
            gate = (weights * hit).sum(dim=-1).index_select(0, rows).unsqueeze(-1)
            xe = x.index_select(0, rows)
            h = F.relu(xe @ self.w1[e] + self.b1[e])
            out = out.index_add(0, rows, gate * (h @ self.w2[e] + self.b2[e]))
        return out


def variants(dim: int) -> Dict[str, nn.Module]:
    torch.manual_seed(0)
    return {
        "dense": DenseFFN(dim, 2048).eval(),
        "narrow": DenseFFN(dim, TOP * EXPERT_WIDTH).eval(),
        "moe_row": MoEFFN(dim).eval(),
        "moe_chunk": MoEFFN(dim, per_chunk=True).eval(),
    }


def _median_ms(call: Callable[[], object], repeats: int) -> float:
    for _ in range(3):
        call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


def onnx_session(module: nn.Module, dim: int, threads: int):
    """``module`` exported (rows a dynamic axis) and loaded in onnxruntime with ``threads`` threads."""
    import onnxruntime as ort

    buffer = io.BytesIO()
    example = torch.randn(16, dim)
    torch.onnx.export(
        module,
        (example,),
        buffer,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "rows"}, "y": {0: "rows"}},
        opset_version=17,
        dynamo=False,
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])


def run(dim: int, rows: List[int], threads: int, repeats: int) -> Dict:
    torch.set_num_threads(threads)
    modules = variants(dim)
    sessions = {name: onnx_session(m, dim, threads) for name, m in modules.items()}
    results: Dict[str, Dict] = {}
    for n in rows:
        x = torch.randn(n, dim)
        for name, module in modules.items():
            with torch.inference_mode():
                reference = module(x)
                torch_ms = _median_ms(lambda: module(x), repeats)
            feed = {"x": x.numpy()}
            onnx_out = torch.from_numpy(sessions[name].run(None, feed)[0])
            results[f"{name}@{n}"] = {
                "variant": name,
                "rows": n,
                "torch_ms": torch_ms,
                "onnx_ms": _median_ms(lambda: sessions[name].run(None, feed), repeats),
                "onnx_max_difference": float((onnx_out - reference).abs().max()),
            }
    for record in results.values():
        dense = results[f"dense@{record['rows']}"]
        record["torch_vs_dense"] = record["torch_ms"] / dense["torch_ms"]
        record["onnx_vs_dense"] = record["onnx_ms"] / dense["onnx_ms"]
    return results


def render(results: Dict, dim: int, threads: int) -> str:
    from echostream_fairseq.common.cpu import machine_header

    lines = [
        "# Mixture-of-Experts FFN against dense (echostream-bench-moe)",
        "",
        machine_header(),
        f"d={dim}; dense 2048 wide; narrow {TOP * EXPERT_WIDTH} wide (the MoE's multiply-adds per row); "
        f"MoE {EXPERTS} experts of {EXPERT_WIDTH}, top-{TOP}, per row or per chunk; {threads} threads for torch "
        "and for onnxruntime; median ms per call",
        "",
        "| rows | variant | torch ms | × dense | onnxruntime ms | × dense | onnxruntime max diff |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results.values():
        lines.append(
            f"| {r['rows']} | {r['variant']} | {r['torch_ms']:.3f} | {r['torch_vs_dense']:.2f} "
            f"| {r['onnx_ms']:.3f} | {r['onnx_vs_dense']:.2f} | {r['onnx_max_difference']:.1e} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="echostream-bench-moe", description=__doc__.split("\n\n")[0])
    p.add_argument("--dim", type=int, default=256, help="the model dimension (the Emformer's: 256)")
    p.add_argument("--rows", type=int, nargs="+", default=[10, 40, 100])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=200, help="timed calls per cell (the median is kept)")
    p.add_argument("--out", type=Path, default=Path("results/bench_moe"))
    args = p.parse_args(argv)
    if args.dim < 8 or min(args.rows) < 1 or args.threads < 1 or args.repeats < 1:
        print("error: --dim >= 8, --rows >= 1, --threads >= 1 and --repeats >= 1 are needed", file=sys.stderr)
        return 2
    from echostream_bench.common import write_report

    results = run(args.dim, args.rows, args.threads, args.repeats)
    table = render(results, args.dim, args.threads)
    write_report(args.out, "bench_moe", {"dim": args.dim, "threads": args.threads, "results": results}, table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
