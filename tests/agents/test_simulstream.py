"""The EchoStream processor for simulstream, driven by simulstream's own inference loop."""

import json
import logging
from types import SimpleNamespace

import pytest

pytest.importorskip("simulstream", reason="simulstream is not installed (the simulstream extra)")


def _config(writing, corpus, **extra):
    save, _ = writing
    return SimpleNamespace(
        type="echostream_fairseq.agents.simulstream_processor.EchoStreamSpeechProcessor",
        model_path=str(save / "checkpoint_last.pt"),
        data_bin=str(corpus),
        speech_chunk_size=0.32,
        output="text",
        max_len=12,
        **extra,
    )


def test_simulstream_runs_the_processor_and_gets_our_words(writing, corpus, tmp_path):
    from simulstream.inference import run_inference
    from simulstream.metrics.logger import setup_metrics_logger
    from simulstream.server.speech_processors import build_speech_processor

    from echostream_fairseq.data.audio import read_audio
    from echostream_fairseq.streaming.api import EchoStream

    wavs = sorted((corpus / "audio" / "src").glob("test_*.wav"))[:2]
    log = tmp_path / "metrics.jsonl"
    setup_metrics_logger(SimpleNamespace(enabled=True, filename=str(log)))
    logging.getLogger("fbk_fairseq.simultaneous.metrics").setLevel(logging.INFO)
    processor = build_speech_processor(_config(writing, corpus))
    run_inference(processor, [str(w) for w in wavs])
    outputs = {}
    for line in log.read_text().splitlines():
        record = json.loads(line)
        if "id" in record and "generated_tokens" in record:
            outputs.setdefault(record["id"], []).extend(record["generated_tokens"])
    save, _ = writing
    system = EchoStream.load(str(save / "checkpoint_last.pt"), str(corpus), output="text", max_len=12)
    for k, wav in enumerate(wavs):
        samples = read_audio(wav).numpy()
        stream = system.open()
        events = []
        for i in range(0, samples.size, 5120):  # simulstream's 0.32 s chunks
            events += stream.feed(samples[i : i + 5120])
        events += stream.finish()
        words = " ".join(e.text for e in events if e.kind == "target_text").split()
        assert outputs[k] == words and words


def test_simulstream_config_errors_name_the_key(writing, corpus):
    from echostream_fairseq.agents.simulstream_processor import EchoStreamSpeechProcessor

    with pytest.raises(ValueError, match="needs 'data_bin'"):
        EchoStreamSpeechProcessor.load_model(SimpleNamespace(model_path="x", speech_chunk_size=0.32))
    with pytest.raises(ValueError, match="output must be text or asr"):
        EchoStreamSpeechProcessor.load_model(SimpleNamespace(**{**vars(_config(writing, corpus)), "output": "speech"}))
    with pytest.raises(ValueError, match="not an EchoStream setting: 'beam_size'"):
        EchoStreamSpeechProcessor.load_model(_config(writing, corpus, beam_size=5))


def test_bench_serving_puts_both_servers_in_one_table(writing, corpus, tmp_path):
    from echostream_bench.serving import main

    save, _ = writing
    out = tmp_path / "serving"
    assert (
        main(
            [
                "--model",
                str(save / "checkpoint_last.pt"),
                "--data",
                str(corpus),
                "--clients",
                "2",
                "--seconds",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rows = json.loads((out / "bench_serving.json").read_text())["rows"]
    assert [r["clients"] for r in rows] == [2]
    for server in ("echostream", "simulstream"):
        # 2 s of audio = 6 whole chunks per client, each answered
        assert rows[0][server]["chunks"] == 12 and rows[0][server]["median_ms"] > 0
    table = (out / "bench_serving.md").read_text()
    assert "| 2 |" in table and "Most clients kept up with" in table
