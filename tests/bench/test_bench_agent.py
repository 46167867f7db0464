"""echostream-bench-agent: the long-stream part on a tiny setting (structure, finite numbers), the
lag simulation, input errors, and the curve part with one utterance and one chunk size."""

import json
import math

import pytest

from echostream_bench.agent import build_parser, main, run
from echostream_bench.agent.inputs import build_stream
from echostream_bench.agent.timing import simulate_lag


def _finite(x):
    return isinstance(x, (int, float)) and math.isfinite(x)


def test_simulate_lag_queues_chunks_behind_slow_ones():
    # fast chunks: lag = cost; a slow chunk delays the ones after it until the queue drains
    assert simulate_lag([0.1, 0.1], 0.32) == pytest.approx([0.1, 0.1])
    lags = simulate_lag([0.5, 0.1, 0.1, 0.1], 0.32)
    # finish times 0.82, 0.92, 1.06, 1.38 against arrivals 0.32, 0.64, 0.96, 1.28
    assert lags == pytest.approx([0.5, 0.28, 0.1, 0.1])
    assert simulate_lag([], 0.32) == []


def test_build_stream_repeats_utterances_with_silence(corpus):
    paths = [line.strip() for line in (corpus / "simuleval" / "test.source").read_text().splitlines()][:2]
    stream, used = build_stream(paths, 12.0, 0.3)
    assert stream.numel() == 12 * 16000
    assert used > 2  # the two utterances had to be repeated
    assert stream.abs().max() > 0


def _long_stream_args(corpus, trained, out, *extra):
    ckpt = str(trained[0] / "checkpoint_last.pt")
    return build_parser().parse_args(
        [
            "--part",
            "long-stream",
            "--model",
            ckpt,
            "--baseline-model",
            ckpt,
            "--data",
            str(corpus),
            "--out",
            str(out),
            "--minutes",
            "0.1",
            "--positions",
            "1",
            "3",
            "6",
            "--window",
            "2",
            "--timed-chunks",
            "2",
            *extra,
        ]
    )


def test_long_stream_tiny(corpus, trained, tmp_path, capsys):
    out = tmp_path / "bench"
    results = run(_long_stream_args(corpus, trained, out))
    printed = capsys.readouterr().out
    assert "## Long stream" in printed and "| position |" in printed and "Headline" in printed

    for name in ("bench_agent.md", "bench_agent.json", "bench_agent_long_stream.png"):
        assert (out / name).stat().st_size > 0, name
    assert not (out / "bench_agent_curve.png").exists()
    md = (out / "bench_agent.md").read_text()
    assert "Computation-aware lag" in md and "Where the time goes" in md and "interpolated" in md
    assert "prefix up to it is fed as one chunk (untimed)" in md

    saved = json.loads((out / "bench_agent.json").read_text())
    assert saved["long_stream"]["config"]["chunks"] == results["long_stream"]["config"]["chunks"]
    ls = saved["long_stream"]
    n = ls["config"]["chunks"]
    assert n == 19  # ceil(6 s / 320 ms)
    assert set(ls["systems"]) == {"echostream", "echostream_forced", "model_reencode", "baseline"}
    for name, system in ls["systems"].items():
        assert len(system["lag_s"]) == n and all(_finite(v) and v >= 0 for v in system["lag_s"])
        assert set(system["at_position"]) == {"1", "3", "6"}, name
        for row in system["at_position"].values():
            assert _finite(row["median_ms"]) and row["median_ms"] > 0
            assert _finite(row["ratio_to_echostream_first"]) and _finite(row["lag_s"])
            assert set(row["stages_mean_ms"]) == {"encoder", "mt", "units", "vocoder", "other"}
            assert all(_finite(v) for v in row["stages_mean_ms"].values())
    full = ls["systems"]["echostream"]
    assert len(full["trace_ms"]) == n and all(_finite(v) and v > 0 for v in full["trace_ms"])
    assert full["at_position"]["1"]["ratio_to_echostream_first"] == pytest.approx(1.0)
    sampled = ls["systems"]["baseline"]
    assert sampled["lag_interpolated"] and "untimed" in sampled["measured"]
    for row in sampled["at_position"].values():
        assert len(row["chunk_ms"]) == 2 and _finite(row["prefix_step_s"])
    assert set(ls["headline"]) == {"echostream", "echostream_forced"}
    for h in ls["headline"].values():
        assert _finite(h["ratio"]) and isinstance(h["within_20_percent"], bool)
    assert ls["runtime_s"]["total"] > 0


def test_long_stream_without_peers_keeps_earlier_parts(corpus, trained, tmp_path):
    out = tmp_path / "bench"
    out.mkdir()
    (out / "bench_agent.json").write_text(json.dumps({"curve": {"kept": True}}))
    args = _long_stream_args(corpus, trained, out, "--no-baseline", "--no-forced-write", "--positions", "2", "4")
    args.baseline_model = str(tmp_path / "absent.pt")  # not needed with --no-baseline
    run(args)
    saved = json.loads((out / "bench_agent.json").read_text())
    assert saved["curve"] == {"kept": True}
    assert set(saved["long_stream"]["systems"]) == {"echostream", "model_reencode"}


def test_missing_inputs_are_clear_errors(corpus, trained, tmp_path, capsys):
    ckpt = str(trained[0] / "checkpoint_last.pt")
    assert (
        main(
            [
                "--part",
                "long-stream",
                "--model",
                str(tmp_path / "nope.pt"),
                "--baseline-model",
                ckpt,
                "--data",
                str(corpus),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "checkpoint not found" in err and "nope.pt" in err and "--model" in err
    assert (
        main(
            [
                "--part",
                "long-stream",
                "--model",
                ckpt,
                "--baseline-model",
                ckpt,
                "--data",
                str(tmp_path / "nodata"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "corpus folder not found" in capsys.readouterr().err
    assert (
        main(
            [
                "--part",
                "curve",
                "--model",
                ckpt,
                "--baseline-model",
                ckpt,
                "--data",
                str(corpus),
                "--lm-text",
                str(tmp_path / "lm.txt"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "ASR LM text not found" in capsys.readouterr().err


def test_curve_one_utterance_one_chunk_size(corpus, trained, tmp_path):
    """The real simuleval CLI, both systems (the test checkpoint in both modes), 1 utterance."""
    ckpt = str(trained[0] / "checkpoint_last.pt")
    out = tmp_path / "bench"
    results = run(
        build_parser().parse_args(
            [
                "--part",
                "curve",
                "--model",
                ckpt,
                "--baseline-model",
                ckpt,
                "--data",
                str(corpus),
                "--out",
                str(out),
                "--num-utterances",
                "1",
                "--chunk-sizes",
                "640",
            ]
        )
    )
    curve = results["curve"]
    assert curve["asr_bleu_state"] == "ready"
    assert [(r["system"], r["chunk_ms"]) for r in curve["runs"]] == [("echostream", 640), ("baseline", 640)]
    for r in curve["runs"]:
        assert _finite(r["asr_bleu"]) and 0 <= r["asr_bleu"] <= 100
        assert _finite(r["wall_s"]) and (run_dir := out / "curve" / f"{r['system']}_640ms").is_dir()
        if r.get("error"):  # a 6-update model may say nothing: SimulEval then has no latency to give
            assert "no instance produced speech" in r["error"] and r["speech_s_per_utt"] == 0
        else:
            for m in ("AL", "AP", "DAL", "StartOffset", "EndOffset", "ATD"):
                assert _finite(r[m]), m
            assert (run_dir / "scores.tsv").is_file()
    assert (out / "bench_agent_curve.png").stat().st_size > 0
    md = (out / "bench_agent.md").read_text()
    assert "## Latency-quality curve" in md and "| system | chunk (ms) | ASR-BLEU | AL |" in md
