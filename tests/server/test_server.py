"""``echostream-serve`` as clients use it, all on localhost: the protocol, many streams at once,
faults and limits (each closes one stream with a clear error, the others go on), a restart, and
the page in a real (headless) browser with a fake microphone."""

import asyncio
import json

import numpy as np
import pytest
import soundfile as sf

from echostream_fairseq.cli.client import stream_file
from echostream_fairseq.data.audio import read_audio
from echostream_fairseq.server.app import POOL, ServerLimits, make_app
from echostream_fairseq.streaming.api import EchoStream


@pytest.fixture(scope="module")
def speech_system(writing, corpus):
    save, _ = writing
    return EchoStream.load(
        str(save / "checkpoint_last.pt"),
        str(corpus),
        vocoder=str(corpus / "units" / "kmeans.pt"),
        vocoder_type="griffin_lim",
        max_len=12,
    )


@pytest.fixture(scope="module")
def text_system(writing, corpus):
    save, _ = writing
    return EchoStream.load(str(save / "checkpoint_last.pt"), str(corpus), output="text", max_len=12)


def _waves(corpus, n):
    return [read_audio(p).numpy() for p in sorted((corpus / "audio" / "src").glob("test_*.wav"))[:n]]


class Server:
    """An ``echostream-serve`` app on a free localhost port, inside the test's event loop."""

    def __init__(self, system, port=0, chunk_sizes=(320,), **limits):
        # clients here send as fast as they can (speed=0) unless a test says otherwise, so the
        # pace limit is off unless a test sets it
        limits.setdefault("max_speed", 1000.0)
        self.app = make_app(system, ServerLimits(**limits), chunk_sizes)
        self.port = port

    async def __aenter__(self):
        from aiohttp import web

        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    async def __aexit__(self, *exc):
        await self.runner.cleanup()

    @property
    def pool(self):
        return self.app[POOL]


def _alone_text(system, wave):
    stream = system.open()
    events = stream.feed(wave) + stream.finish()
    stream.close()
    return [(e.kind, e.text) for e in events if e.kind in ("source_text", "target_text", "sentence_end")]


def _got_text(result):
    return [
        (m["type"], m.get("text", ""))
        for m in result["messages"]
        if m["type"] in ("source_text", "target_text", "sentence_end")
    ]


async def _raw(url, first, *more, receive=True):
    """Open the stream endpoint, send messages (str: text, bytes: binary), return (replies, close code)."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url.replace("http", "ws") + "/ws") as ws:
            for message in (first, *more):
                if isinstance(message, bytes):
                    await ws.send_bytes(message)
                else:
                    await ws.send_str(message if isinstance(message, str) else json.dumps(message))
            replies = []
            if receive:
                async for m in ws:
                    if m.type == aiohttp.WSMsgType.TEXT:
                        replies.append(json.loads(m.data))
            return replies, ws.close_code


START = {"type": "start", "sample_rate": 16000}


def test_a_stream_through_the_server_equals_the_api_and_brings_speech(speech_system, corpus):
    wave = _waves(corpus, 1)[0]

    async def scenario():
        import aiohttp

        async with Server(speech_system) as server:
            async with aiohttp.ClientSession() as session:
                async with session.get(server.url + "/api/info") as r:
                    info = await r.json()
            return info, await stream_file(server.url, wave, 16000, speed=1.0, piece_ms=100)

    info, result = asyncio.run(scenario())
    assert info["stream_endpoint"] == "/ws" and info["output"] == "speech" and info["model_dtype"] == "fp32"
    assert info["vocoder_dtype"] == "fp32"
    kinds = [m["type"] for m in result["messages"]]
    assert kinds[0] == "ready" and kinds[-1] == "finished" and result["error"] is None
    assert result["ready"]["output_sample_rate"] == 16000 and result["close_code"] == 1000
    assert _got_text(result) == _alone_text(speech_system, wave)
    headers = [m for m in result["messages"] if m["type"] == "target_speech"]
    assert headers and sum(m["samples"] for m in headers) == result["speech"].size > 0
    alone = speech_system.open()
    events = alone.feed(wave) + alone.finish()
    alone.close()
    np.testing.assert_allclose(
        result["speech"], np.concatenate([e.audio for e in events if e.audio is not None]), atol=1e-4
    )
    assert any(m["type"] == "progress" and m["compute_ms"] > 0 for m in result["messages"])


def test_32_clients_for_a_minute_are_all_answered_and_independent(text_system, corpus):
    waves = _waves(corpus, 4)
    # each client streams a minute: its own order of the utterances, 0.4 s apart
    gap = np.zeros(6400, dtype=np.float32)
    streams = []
    for k in range(32):
        pieces, n, j = [], 0, k
        while n < 60 * 16000:
            pieces += [waves[j % 4], gap]
            n += waves[j % 4].size + gap.size
            j += 1 + k % 3
        streams.append(np.concatenate(pieces)[: 60 * 16000])

    async def scenario():
        async with Server(text_system, max_streams=32) as server:
            results = await asyncio.gather(
                *[stream_file(server.url, s, 16000, speed=1.0, piece_ms=100) for s in streams]
            )
            return results, server.pool.ticks, len(server.pool.connections)

    results, ticks, left_open = asyncio.run(scenario())
    assert left_open == 0
    for stream, result in zip(streams, results):
        assert result["error"] is None and result["messages"][-1]["type"] == "finished"
        assert result["messages"][-1]["source_seconds"] == pytest.approx(60.0)  # every chunk answered
    # batched: far fewer ticks than 32 streams x 188 chunks
    assert ticks < 32 * 188 / 4
    # no stream's output is affected by another's: each equals its stream alone (a sample of them)
    for k in (0, 7, 31):
        assert _got_text(results[k]) == _alone_text(text_system, streams[k])


def test_a_client_leaving_mid_sentence_frees_its_state_and_others_go_on(text_system, corpus):
    waves = _waves(corpus, 2)

    async def scenario():
        async with Server(text_system) as server:
            leaver = asyncio.create_task(stream_file(server.url, waves[0], 16000, speed=1.0, stop_after=1.0))
            stayer = asyncio.create_task(stream_file(server.url, waves[1], 16000, speed=1.0))
            await leaver
            await asyncio.sleep(0.5)
            open_after_leaving = len(server.pool.connections)
            done = await stayer
            return open_after_leaving, done, len(server.pool.connections), text_system.streams

    open_after_leaving, done, open_at_end, system_streams = asyncio.run(scenario())
    assert open_after_leaving == 1 and open_at_end == 0 and system_streams == []
    assert done["messages"][-1]["type"] == "finished"
    assert _got_text(done) == _alone_text(text_system, waves[1])


@pytest.mark.parametrize(
    "messages, code, close_code, says",
    [
        (["not json"], "bad_message", 1008, "text messages must be JSON objects"),
        ([b"\x00\x00\x00\x00"], "bad_message", 1008, 'the first message must be the JSON {"type": "start"'),
        ([{"type": "start", "sample_rate": "16000"}], "bad_message", 1008, '"sample_rate" must be an integer'),
        (
            [{"type": "start", "sample_rate": 16000, "chunk_ms": 999}],
            "bad_message",
            1008,
            '"chunk_ms" must be one of [320]',
        ),
        ([START, {"type": "pause"}], "bad_message", 1008, "after start, text messages must be"),
        ([START, b"\x00\x00\x00"], "bad_audio", 1008, "whole f32le frames of 1 channel(s) (4 bytes each); got 3 bytes"),
        ([START, b"\x00" * 5000], "too_large", 1009, "a message of 5000 bytes is over the limit of 4096"),
    ],
)
def test_bad_messages_get_an_error_and_a_close_and_the_server_goes_on(
    text_system, corpus, messages, code, close_code, says
):
    wave = _waves(corpus, 1)[0]

    async def scenario():
        async with Server(text_system, max_message_bytes=4096) as server:
            replies, closed = await _raw(server.url, *messages)
            after = await stream_file(server.url, wave, 16000, speed=0, piece_ms=50)  # 3200-byte messages
            return replies, closed, after, len(server.pool.connections)

    replies, closed, after, left_open = asyncio.run(scenario())
    errors = [r for r in replies if r["type"] == "error"]
    assert len(errors) == 1 and errors[0]["code"] == code and says in errors[0]["message"]
    assert closed == close_code and left_open == 0
    assert after["error"] is None and after["messages"][-1]["type"] == "finished"


def test_limits_rate_duration_streams_and_token(text_system, corpus):
    wave = _waves(corpus, 1)[0]
    fast = np.repeat(wave, 3)  # 48 kHz audio declared as 16 kHz, sent in real time: 3x too fast

    async def scenario():
        out = {}
        async with Server(text_system, max_speed=ServerLimits.max_speed) as server:  # the default limit
            out["rate"] = await stream_file(server.url, np.tile(fast, 3), 16000, speed=3.0, piece_ms=100)
        async with Server(text_system, max_stream_seconds=1.0, max_speed=100.0) as server:
            out["long"] = await stream_file(server.url, wave, 16000, speed=0, piece_ms=100)
        async with Server(text_system, max_streams=2) as server:
            holders = [asyncio.create_task(stream_file(server.url, wave, 16000, speed=1.0)) for _ in range(2)]
            await asyncio.sleep(1.0)
            out["busy"] = await stream_file(server.url, wave, 16000, speed=0)
            out["holders"] = await asyncio.gather(*holders)
        async with Server(text_system, token="sesame") as server:
            out["no_token"] = await stream_file(server.url, wave, 16000, speed=0)
            out["token"] = await stream_file(server.url, wave, 16000, speed=0, token="sesame")
        return out

    out = asyncio.run(scenario())
    checks = {
        "rate": ("rate_mismatch", 1008, "faster than real time at the declared 16000 Hz"),
        "long": ("too_long", 1008, "over its limit of 1 s (--max-stream-seconds)"),
        "busy": ("busy", 1013, "its limit of 2 streams (--max-streams)"),
        "no_token": ("unauthorized", 1008, "this server needs its token"),
    }
    for name, (code, close_code, says) in checks.items():
        error = out[name]["error"]
        assert error is not None and error["code"] == code and says in error["message"], (name, error)
        assert out[name]["close_code"] == close_code
    assert all(h["messages"][-1]["type"] == "finished" for h in out["holders"])
    assert out["token"]["error"] is None and out["token"]["messages"][-1]["type"] == "finished"


def test_a_restarted_server_serves_new_streams_at_once(text_system, corpus):
    wave = _waves(corpus, 1)[0]

    async def scenario():
        async with Server(text_system) as first:
            port = first.port
            before = await stream_file(first.url, wave, 16000, speed=0)
        async with Server(text_system, port=port) as second:
            after = await stream_file(second.url, wave, 16000, speed=0)
        return before, after

    before, after = asyncio.run(scenario())
    assert _got_text(before) == _got_text(after) and after["messages"][-1]["type"] == "finished"


def test_the_page_translates_a_fake_microphone_in_a_real_browser(speech_system, corpus, tmp_path):
    from browser import Browser, browser_available

    reason = browser_available()
    if reason:
        pytest.skip(reason)
    waves = _waves(corpus, 3)
    gap = np.zeros(8000, dtype=np.float32)
    sf.write(tmp_path / "mic.wav", np.concatenate([x for w in waves for x in (w, gap)]), 16000, subtype="PCM_16")

    async def scenario():
        async with Server(speech_system) as server, Browser(str(tmp_path / "mic.wav")) as browser:
            await browser.open(server.url + "/")
            await browser.wait_for("!document.getElementById('mic').disabled", 30)
            await browser.evaluate("document.getElementById('mic').click()")  # start
            await browser.wait_for("document.getElementById('status').textContent.startsWith('streaming')", 30)
            await browser.wait_for("parseFloat(document.getElementById('sent-seconds').textContent) > 3", 30)
            streaming = len(server.pool.connections)
            # stop: the page sends finish; the rest of the translation and its speech come back
            await browser.evaluate("document.getElementById('mic').click()")
            await browser.wait_for("document.getElementById('status').textContent === 'finished'", 60)
            page = await browser.evaluate("""({target: document.getElementById('target').textContent.trim(),
                speech: parseFloat(document.getElementById('speech-seconds').textContent),
                speech_messages: window.echostreamCounts.speech_samples || 0,
                done: parseFloat(document.getElementById('done-seconds').textContent)})""")
            return streaming, page, len(server.pool.connections)

    streaming, page, connections = asyncio.run(scenario())
    # the tiny test model says nonsense, but it says it: text on the page and speech received
    assert streaming == 1 and connections == 0
    assert page["target"] and page["speech_messages"] > 0 and page["speech"] > 0 and page["done"] > 3
