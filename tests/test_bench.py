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
    for s, rows in zip(result["streams"], ([4, 5, 6], [6, 7, 8])):
        v = s["variants"]
        assert list(v) == ["torchaudio fp32", "ours fp32", "ours fp32, oneDNN packed", "ours fp32, F.linear",
                           "ours bf16", "ours int8"]
        assert v["torchaudio fp32"]["vs_torchaudio"] == 1.0
        for name in ("ours fp32", "ours fp32, oneDNN packed", "ours fp32, F.linear"):
            assert v[name]["relative_l2_vs_torchaudio"] < 1e-5 and v[name]["vs_floor"] > 0
        assert 0 < v["ours bf16"]["relative_l2_vs_torchaudio"] < 0.05
        assert 0 < v["ours int8"]["relative_l2_vs_torchaudio"] < 0.1
        assert s["steps"] == 8  # 1.28 s of 160 ms chunks
        # 2 layers x (qkv, out, ffn in, ffn out); rows: chunk + look-ahead (+ summary, + memory)
        assert s["products_per_step"] == 8 and s["rows_per_product"] == rows
        assert set(s["floor_ms"]) == {"fp32", "bf16", "int8"}
        assert s["floor_ms"]["fp32"]["floor"] == min(s["floor_ms"]["fp32"]["F.linear"],
                                                     s["floor_ms"]["fp32"].get("oneDNN packed", float("inf")))
        assert s["weight_bytes"] == {"fp32": 4 * 2 * (3 * 32 * 32 + 32 * 32 + 2 * 32 * 64),
                                     "bf16": 2 * 2 * (3 * 32 * 32 + 32 * 32 + 2 * 32 * 64),
                                     "int8": 2 * (3 * 32 * 32 + 32 * 32 + 2 * 32 * 64)}
        assert s["profile"] and s["profile"][0]["ms_per_step"] >= s["profile"][-1]["ms_per_step"]
    assert result["memory_bandwidth_gbs"] > 0
    assert "| ours int8 |" in table and "| `aten::" in table
    assert set(result["conformer_ms"]) == {"0.64", "1.28"}
    assert (out / "bench.png").stat().st_size > 1000
    assert "Machine:" in capsys.readouterr().out
