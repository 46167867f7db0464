"""echostream-bench runs end to end on a tiny configuration and writes its table, JSON and plot."""

import json
import math
from dataclasses import replace

import pytest

from echostream_bench import emformer_step as bench
from echostream_bench import floor as bench_floor
from echostream_bench import system as bench_system
from echostream_fairseq.common.cpu import cpu_capabilities
from echostream_fairseq.modules import precision

TINY = [
    "--positions",
    "0.64,1.28",
    "--memory-minutes",
    "0.05",
    "--layers",
    "2",
    "--dim",
    "32",
    "--ffn-dim",
    "64",
    "--heads",
    "4",
    "--chunk-length",
    "4",
    "--left-context-length",
    "8",
    "--max-memory-size",
    "2",
]


@pytest.fixture
def no_int8(monkeypatch):
    """This CPU as one without fbgemm's int8 kernels (a CPU without AVX2), for every module that asks."""
    lesser = replace(cpu_capabilities(), flags=frozenset({"sse4_2"}), aten="DEFAULT", fbgemm=False)
    for module in (bench, bench_floor, bench_system, precision):
        monkeypatch.setattr(module, "cpu_capabilities", lambda: lesser)
    return lesser


def test_bench_tiny(tmp_path, capsys):
    out = tmp_path / "bench"
    bench.main(["--out", str(out), *TINY])
    table = (out / "bench.md").read_text()
    assert "| 0.64 s |" in table and "| 1.28 s |" in table
    assert table.count("x |") >= 4
    result = json.loads((out / "bench.json").read_text())
    assert [s["right_context_length"] for s in result["streams"]] == [0, 2]
    for s, rows in zip(result["streams"], ([4, 5, 6], [6, 7, 8])):
        v = s["variants"]
        int8 = ["ours int8"] if cpu_capabilities().fbgemm else []  # else a row says why (the test below)
        assert list(v) == [
            "torchaudio fp32",
            "ours fp32",
            "ours fp32, oneDNN packed",
            "ours fp32, F.linear",
            "ours bf16",
            *int8,
        ]
        assert v["torchaudio fp32"]["vs_torchaudio"] == 1.0
        for name in ("ours fp32", "ours fp32, oneDNN packed", "ours fp32, F.linear"):
            assert v[name]["relative_l2_vs_torchaudio"] < 1e-5 and v[name]["vs_floor"] > 0
        assert 0 < v["ours bf16"]["relative_l2_vs_torchaudio"] < 0.05
        assert not int8 or 0 < v["ours int8"]["relative_l2_vs_torchaudio"] < 0.1
        assert s["steps"] == 8  # 1.28 s of 160 ms chunks
        # 2 layers x (qkv, out, ffn in, ffn out); rows: chunk + look-ahead (+ summary, + memory)
        assert s["products_per_step"] == 8 and s["rows_per_product"] == rows
        assert set(s["floor_ms"]) == {"fp32", "bf16", "int8"}
        assert s["floor_ms"]["fp32"]["floor"] == min(
            s["floor_ms"]["fp32"]["F.linear"], s["floor_ms"]["fp32"].get("oneDNN packed", float("inf"))
        )
        assert s["weight_bytes"] == {
            "fp32": 4 * 2 * (3 * 32 * 32 + 32 * 32 + 2 * 32 * 64),
            "bf16": 2 * 2 * (3 * 32 * 32 + 32 * 32 + 2 * 32 * 64),
            "int8": 2 * (3 * 32 * 32 + 32 * 32 + 2 * 32 * 64),
        }
        assert s["profile"] and s["profile"][0]["ms_per_step"] >= s["profile"][-1]["ms_per_step"]
    assert result["memory_bandwidth_gbs"] > 0
    assert "| ours int8 |" in table and "| `aten::" in table
    assert set(result["conformer_ms"]) == {"0.64", "1.28"}
    assert (out / "bench.png").stat().st_size > 1000
    assert "Machine:" in capsys.readouterr().out


def test_bench_onnxruntime_rows_and_floor(tmp_path):
    out = tmp_path / "bench"
    bench.main(["--out", str(out), "--onnx", "--right-context-lengths", "2", *TINY])
    result = json.loads((out / "bench.json").read_text())
    (s,) = result["streams"]
    v = s["variants"]
    assert v["ours fp32, onnxruntime"]["relative_l2_vs_torchaudio"] < 1e-5
    assert 0 < v["ours int8, onnxruntime"]["relative_l2_vs_torchaudio"] < 0.1
    assert v["ours int8, onnxruntime"]["floor_dtype"] == "int8"
    for dtype in ("fp32", "int8"):  # onnxruntime's kernels count in the floor
        kernels = s["floor_ms"][dtype]
        assert kernels["onnxruntime"] > 0 and kernels["floor"] == min(k for n, k in kernels.items() if n != "floor")
    assert "| ours fp32, onnxruntime |" in (out / "bench.md").read_text()


def test_a_dtype_the_cpu_cannot_run_is_a_row_that_says_why(no_int8, tmp_path):
    out = tmp_path / "bench"
    bench.main(["--out", str(out), *TINY, "--right-context-lengths", "0"])
    result = json.loads((out / "bench.json").read_text())
    stream = result["streams"][0]
    assert "ours int8" not in stream["variants"] and list(stream["unavailable"]) == ["ours int8"]
    assert list(stream["floor_ms"]["int8"]) == ["floor"] and math.isnan(stream["floor_ms"]["int8"]["floor"])
    table = (out / "bench.md").read_text()
    why = no_int8.dtype_refusal("int8")
    assert why.startswith("--model-dtype int8 needs fbgemm's int8 kernels, which need AVX2")
    assert f"| ours int8 | not on this CPU: {why} | | | |" in table
    assert "| int8 | 0.0 | none on this CPU | nan |" in table
