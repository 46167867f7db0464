"""echostream-bench runs end to end on a tiny configuration and writes its table, JSON and plot."""

import json

from echostream_fairseq.cli import bench


def test_bench_tiny(tmp_path, capsys):
    out = tmp_path / "bench"
    bench.main([
        "--out", str(out), "--positions", "0.64,1.28", "--memory-minutes", "0.05",
        "--layers", "2", "--dim", "32", "--ffn-dim", "64", "--heads", "4",
        "--chunk-length", "4", "--left-context-length", "8", "--max-memory-size", "2",
    ])
    table = (out / "bench.md").read_text()
    assert "| 0.64 s |" in table and "| 1.28 s |" in table
    assert table.count("x |") >= 4
    result = json.loads((out / "bench.json").read_text())
    assert [s["right_context_length"] for s in result["streams"]] == [0, 2]
    for s in result["streams"]:
        assert s["ratio_fp32"] > 0 and s["ratio_bf16"] > 0
        assert 0 <= s["bf16_relative_l2"] < 0.05
        assert s["steps"] == 8  # 1.28 s of 160 ms chunks
    assert set(result["conformer_ms"]) == {"0.64", "1.28"}
    assert (out / "bench.png").stat().st_size > 1000
    assert "Machine:" in capsys.readouterr().out
