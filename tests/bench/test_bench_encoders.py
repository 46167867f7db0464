"""echostream-bench-encoders runs end to end on the tiny presets and writes its table and JSON."""

import json

import pytest

from echostream_bench import encoders as bench_encoders


def test_bench_encoders_tiny(tmp_path, capsys):
    out = tmp_path / "bench"
    bench_encoders.main(
        ["--out", str(out), "--sizes", "tiny", "--positions", "0.64,1.28", "--window", "2", "--threads", "1"]
    )
    table = (out / "bench_encoders.md").read_text()
    assert "| 0.64 s | 1.28 s |" in table
    assert table.count("| tiny |") == 2
    result = json.loads((out / "bench_encoders.json").read_text())
    rows = {r["encoder"]: r for r in result["results"][0]["rows"]}
    assert set(rows) == {"Emformer", "Zipformer"}
    assert rows["Emformer"]["vs_emformer"] == 1.0
    for r in rows.values():
        assert r["step_ms"]["0.64"] > 0 and r["step_ms"]["1.28"] > 0
        assert r["rtf"] == pytest.approx(r["step_ms"]["1.28"] / 320)
        assert r["state_kib"] > 0 and r["vs_fresh"]["1.28"] > 0
    assert 1.5e6 < rows["Zipformer"]["params"] < 2.5e6
    assert "Machine:" in capsys.readouterr().out


def test_bench_encoders_refuses_a_chunk_the_zipformer_cannot_split(tmp_path):
    with pytest.raises(SystemExit, match="--chunk-ms must be a multiple of 160 ms"):
        bench_encoders.main(["--out", str(tmp_path), "--chunk-ms", "200"])
    with pytest.raises(SystemExit, match="--sizes takes"):
        bench_encoders.main(["--out", str(tmp_path), "--sizes", "huge"])


def test_bench_encoders_times_steady_state_steps_on_graphs(tmp_path):
    # the onnxruntime rows; the compiled ones take the same path through torch.compile, whose
    # compilation (over a minute for the two tiny encoders) only `make bench` pays
    out = tmp_path / "bench"
    bench_encoders.main(
        ["--out", str(out), "--sizes", "tiny", "--positions", "0.32", "--window", "1", "--onnx-sizes", "tiny"]
    )
    steps = json.loads((out / "bench_encoders.json").read_text())["steady_state_ms"]["tiny"]
    assert list(steps) == ["Emformer eager", "Emformer onnxruntime", "Zipformer eager", "Zipformer onnxruntime"]
    assert all(ms > 0 for ms in steps.values())
    assert "| Zipformer onnxruntime |" in (out / "bench_encoders.md").read_text()
    with pytest.raises(SystemExit, match="--compile-sizes takes"):
        bench_encoders.main(["--out", str(out), "--compile-sizes", "huge"])
    with pytest.raises(SystemExit, match="--onnx-sizes takes"):
        bench_encoders.main(["--out", str(out), "--onnx-sizes", "huge"])
