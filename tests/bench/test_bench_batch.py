"""``echostream-bench-batch`` on the test corpus: the table and JSON it writes, and its input errors."""

import json

import torch

from echostream_bench.batch import main


def test_bench_batch_writes_the_table_with_both_modes_on_the_graph_runtime(corpus, trained, tmp_path, capsys):
    save, _ = trained
    out = tmp_path / "bench"
    assert (
        main(
            [
                "--data",
                str(corpus),
                "--model",
                str(save / "checkpoint_last.pt"),
                "--streams",
                "1",
                "3",
                "--full-size-streams",
                "--warmup",
                "2",
                "--ticks",
                "2",
                "--utterances",
                "4",
                "--runtime",
                "onnx",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    results = json.loads((out / "bench_batch.json").read_text())
    assert set(results["systems"]) == {"tiny", "tiny_text"} and results["runtime"] == "onnx"
    rows = results["systems"]["tiny"]
    assert [r["streams"] for r in rows] == [1, 3]
    for r in rows:
        assert r["batched_ms_per_stream"] > 0 and r["alone_ms_per_stream"] > 0
        assert set(r["batched_stage_ms_per_stream"]) == {"encoder", "mt", "units", "vocoder"}
    table = (out / "bench_batch.md").read_text()
    assert "Machine: " in table and "| 3 |" in table and "Most streams held in real time, batched:" in table


def test_bench_batch_names_a_bad_input(tmp_path, capsys):
    assert main(["--data", str(tmp_path), "--full-size-streams"]) == 2
    assert "simuleval/test.source not found: --data must be a corpus folder" in capsys.readouterr().err
    assert main(["--data", str(tmp_path), "--model", str(tmp_path / "x.pt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_the_full_size_system_takes_each_vocoder(corpus):
    """--full-size-vocoder: StreamSpeech's HiFi-GAN, its causal form or the iSTFT generator of the
    full preset, each named in the report; the iSTFT one shares calls of up to 32 streams."""
    from echostream_bench.batch import _vocoder_kind, random_full_size_vocoder

    istft = random_full_size_vocoder(corpus / "units" / "kmeans.pt", max_batch=None, generator="istft")
    assert istft.vocoder.istft and istft.vocoder.generator.n_fft == 1280 and istft.max_batch == 32
    assert _vocoder_kind(istft) == "iSTFT, re-synthesising 8 frames of context"
    audio, _ = istft.step([1, 2, 3], istft.initial_state(), finish=True)
    assert audio.numel() > 0


def test_the_report_names_each_kind_of_vocoder(tmp_path):
    from echostream_bench.batch import _vocoder_kind
    from echostream_fairseq.vocoder import CodeHiFiGANUnitVocoder, build_generator, preset_config
    from echostream_fairseq.vocoder.incremental import IncrementalVocoder

    kinds = []
    for name, config in (("h", preset_config("tiny", 16)), ("c", {**preset_config("tiny", 16), "causal": True})):
        torch.save({"generator": build_generator(config).state_dict()}, tmp_path / f"{name}.pt")
        kinds.append(_vocoder_kind(IncrementalVocoder(CodeHiFiGANUnitVocoder(str(tmp_path / f"{name}.pt"), config))))
    assert kinds == ["HiFi-GAN, re-synthesising 8 frames of context", "causal, from its caches"]
