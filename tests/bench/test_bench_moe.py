"""echostream-bench-moe: every variant at every row count under both runtimes, onnxruntime's output
equal to torch's, ratios against the dense block."""

import json

from echostream_bench.moe import EXPERTS, MoEFFN, main


def test_the_moe_benchmark_writes_every_cell_with_equal_outputs(tmp_path, capsys):
    assert main(["--dim", "32", "--rows", "3", "9", "--threads", "1", "--repeats", "2", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "bench_moe.json").read_text())["results"]
    assert sorted(results) == sorted(f"{v}@{n}" for v in ("dense", "narrow", "moe_row", "moe_chunk") for n in (3, 9))
    for r in results.values():
        assert r["onnx_max_difference"] < 1e-4 and r["torch_ms"] > 0 and r["onnx_ms"] > 0
        assert r["variant"] != "dense" or r["torch_vs_dense"] == r["onnx_vs_dense"] == 1.0
    assert "| 9 | moe_row |" in (tmp_path / "bench_moe.md").read_text() and "moe_chunk" in capsys.readouterr().out
    assert main(["--rows", "0", "--out", str(tmp_path)]) == 2


def test_per_row_routing_runs_each_row_through_its_two_best_experts():
    import torch

    torch.manual_seed(0)
    moe = MoEFFN(16, width=8).eval()
    x = torch.randn(5, 16)
    scores, chosen = moe.router(x).topk(2, dim=-1)
    weights = scores.softmax(dim=-1)
    expected = torch.stack(
        [
            sum(
                weights[i, j]
                * (
                    torch.relu(x[i] @ moe.w1[chosen[i, j]] + moe.b1[chosen[i, j]]) @ moe.w2[chosen[i, j]]
                    + moe.b2[chosen[i, j]]
                )
                for j in range(2)
            )
            for i in range(5)
        ]
    )
    with torch.no_grad():
        torch.testing.assert_close(moe(x), expected, atol=1e-5, rtol=1e-5)
    assert EXPERTS == 8
