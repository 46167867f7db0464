"""``echostream-bench-system`` on the test corpus: one row per dtype with its stages, and its input errors."""

import json

import pytest

from echostream_bench.system import main


def test_bench_system_times_every_dtype_and_stage(corpus, tmp_path):
    out = tmp_path / "bench"
    assert (
        main(
            [
                "--data",
                str(corpus),
                "--sizes",
                "tiny",
                "--warmup",
                "2",
                "--chunks",
                "3",
                "--utterances",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads((out / "bench_system.json").read_text())
    rows = result["results"]["tiny"]
    from echostream_fairseq.common.cpu import cpu_capabilities

    int8 = ["int8"] if cpu_capabilities().fbgemm else []  # else a row says why (the test below)
    assert list(rows) == ["fp32", "bf16", *int8, "fp32, onnx", *[f"{d}, onnx" for d in int8]]
    for r in rows.values():
        assert set(r["stage_ms"]) == {"encoder", "mt", "units", "vocoder"}
        assert all(v > 0 for v in r["stage_ms"].values())  # random weights are forced to write and speak
        assert r["real_time_factor"] == pytest.approx(r["median_ms"] / 320)
        assert sum(r["stage_ms"].values()) <= r["mean_ms"]  # the stages are parts of the step
    table = (out / "bench_system.md").read_text()
    assert "Machine: " in table and "| tiny | int8 |" in table  # a result or the reason


def test_bench_system_says_which_dtype_this_cpu_cannot_run(corpus, tmp_path, monkeypatch, capsys):
    from dataclasses import replace

    from echostream_bench import system as bench_system
    from echostream_fairseq.common.cpu import cpu_capabilities

    lesser = replace(cpu_capabilities(), flags=frozenset({"sse4_2"}), fbgemm=False)
    monkeypatch.setattr(bench_system, "cpu_capabilities", lambda: lesser)
    out = tmp_path / "bench"
    assert (
        main(
            [
                "--data",
                str(corpus),
                "--sizes",
                "tiny",
                "--model-dtypes",
                "fp32",
                "int8",
                "--runtimes",
                "torch",
                "--warmup",
                "1",
                "--chunks",
                "1",
                "--utterances",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads((out / "bench_system.json").read_text())
    assert list(result["results"]["tiny"]) == ["fp32"] and list(result["unavailable"]) == ["int8"]
    table = (out / "bench_system.md").read_text()
    assert f"| tiny | int8 | not on this CPU: {lesser.dtype_refusal('int8')} |" in table
    assert main(["--data", str(corpus), "--sizes", "tiny", "--model-dtypes", "int8", "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith(
        "echostream-bench-system: this CPU runs none of --model-dtypes: --model-dtype int8 needs fbgemm's int8 kernels"
    )


def test_bench_system_names_a_bad_input(tmp_path, capsys):
    assert main(["--data", str(tmp_path), "--sizes", "tiny"]) == 2
    assert "simuleval/test.source not found: --data must be a corpus folder" in capsys.readouterr().err
    assert main(["--data", str(tmp_path), "--chunks", "0"]) == 2
    assert "--chunks must be >= 1" in capsys.readouterr().err
