"""``echostream-serve`` as clients use it, all on localhost: the protocol, many streams at once,
faults and limits (each closes one stream with a clear error, the others go on), a restart, and
the page in a real (headless) browser with a fake microphone."""

import asyncio
import json

import numpy as np
import pytest
import soundfile as sf

from echostream_fairseq.cli.client import ClientError, stream_file
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


def self_signed(folder):
    """A certificate and key for 127.0.0.1 made with openssl, and its public key's SHA-256 (base64)."""
    import subprocess

    cert, key = folder / "cert.pem", folder / "key.pem"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"]
        + ["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        capture_output=True,
    )
    assert made.returncode == 0, made.stderr.decode()[-2000:]
    spki = subprocess.run(
        f"openssl x509 -pubkey -noout -in {cert} | openssl pkey -pubin -outform der "
        "| openssl dgst -sha256 -binary | base64",
        shell=True,
        capture_output=True,
        text=True,
    )
    return cert, key, spki.stdout.strip()


class Server:
    """An ``echostream-serve`` app on a free localhost port, inside the test's event loop (over
    HTTPS with ``certificate=(cert, key)``)."""

    def __init__(self, system, port=0, chunk_sizes=(320,), certificate=None, **limits):
        # clients here send as fast as they can (speed=0) unless a test says otherwise, so the
        # pace limit is off unless a test sets it
        limits.setdefault("max_speed", 1000.0)
        self.app = make_app(system, ServerLimits(**limits), chunk_sizes)
        self.port = port
        self.ssl_context = None
        if certificate is not None:
            import ssl

            self.ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.ssl_context.load_cert_chain(*map(str, certificate))

    async def __aenter__(self):
        from aiohttp import web

        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port, ssl_context=self.ssl_context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self.url = f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}"
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


def test_32_clients_for_half_a_minute_are_all_answered_and_independent(text_system, corpus):
    waves = _waves(corpus, 4)
    seconds = 30
    # each client streams half a minute: its own order of the utterances, 0.4 s apart
    gap = np.zeros(6400, dtype=np.float32)
    streams = []
    for k in range(32):
        pieces, n, j = [], 0, k
        while n < seconds * 16000:
            pieces += [waves[j % 4], gap]
            n += waves[j % 4].size + gap.size
            j += 1 + k % 3
        streams.append(np.concatenate(pieces)[: seconds * 16000])

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
        assert result["messages"][-1]["source_seconds"] == pytest.approx(seconds)  # every chunk answered
    # batched: far fewer ticks than 32 streams x their chunks
    assert ticks < 32 * (seconds * 1000 // 320) / 4
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


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_the_page_translates_a_fake_microphone_in_a_real_browser(speech_system, corpus, tmp_path, scheme):
    from browser import Browser, browser_available

    reason = browser_available()
    if reason:
        pytest.skip(reason)
    certificate, spki = None, None
    if scheme == "https":  # a self-signed certificate the browser is told to trust, as a lab's would be
        cert, key, spki = self_signed(tmp_path)
        certificate = (cert, key)
    waves = _waves(corpus, 3)
    gap = np.zeros(8000, dtype=np.float32)
    sf.write(tmp_path / "mic.wav", np.concatenate([x for w in waves for x in (w, gap)]), 16000, subtype="PCM_16")

    async def scenario():
        async with (
            Server(speech_system, certificate=certificate) as server,
            Browser(str(tmp_path / "mic.wav"), trusted_spki=spki) as browser,
        ):
            assert server.url.startswith(scheme + "://")
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


async def _get(url):
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.get(url) as r:
            return r.status, await r.text()


def test_a_page_of_another_site_cannot_open_a_stream(text_system, corpus):
    import aiohttp

    wave = _waves(corpus, 1)[0]

    async def connect(url, origin):
        headers = {} if origin is None else {"Origin": origin}
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(url.replace("http", "ws") + "/ws", headers=headers) as ws:
                    await ws.send_json({**START, "format": "f32le"})
                    return (await ws.receive_json())["type"]
            except aiohttp.WSServerHandshakeError as e:
                return e.status

    async def scenario():
        out = {}
        async with Server(text_system, allowed_origins=("https://lab.example.org",)) as server:
            out["forged"] = await connect(server.url, "https://evil.example.com")
            out["ticks_after_forged"] = server.pool.ticks
            out["own"] = await connect(server.url, server.url)
            out["allowed"] = await connect(server.url, "https://lab.example.org")
            out["no_origin"] = await stream_file(server.url, wave, 16000, speed=0)
            out["metrics"] = (await _get(server.url + "/metrics"))[1]
        return out

    out = asyncio.run(scenario())
    assert out["forged"] == 403 and out["ticks_after_forged"] == 0  # refused before any model work
    assert out["own"] == "ready" and out["allowed"] == "ready"
    assert out["no_origin"]["error"] is None and out["no_origin"]["messages"][-1]["type"] == "finished"
    assert 'echostream_streams_refused_total{reason="origin"} 1.0' in out["metrics"]


def test_the_token_is_compared_whole_and_never_shown(text_system, corpus):
    from echostream_fairseq.server.app import token_matches

    assert token_matches("sesame", "sesame") and not token_matches("sesam", "sesame")
    assert not token_matches(None, "sesame") and not token_matches("sésame", "sesame")
    limits = ServerLimits(token="sesame")
    assert "sesame" not in repr(limits)
    wave = _waves(corpus, 1)[0]

    async def scenario():
        import aiohttp

        async with Server(text_system, token="sesame") as server:
            info = json.loads((await _get(server.url + "/api/info"))[1])
            # the token in the URL is not taken: only the start message carries it
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(server.url.replace("http", "ws") + "/ws?token=sesame") as ws:
                    await ws.send_json({**START, "format": "f32le"})
                    in_url = await ws.receive_json()
            right = await stream_file(server.url, wave, 16000, speed=0, token="sesame")
        return info, in_url, right

    info, in_url, right = asyncio.run(scenario())
    assert info["token_required"] is True and "sesame" not in json.dumps(info)
    assert in_url["code"] == "unauthorized" and "in the start message" in in_url["message"]
    assert right["error"] is None


def test_health_metrics_and_a_graceful_drain(text_system, corpus):
    waves = _waves(corpus, 2)
    timed = EchoStream(text_system.translator.with_config(time_stages=True))

    async def scenario():
        out = {}
        async with Server(timed) as server:
            out["ready"] = await _get(server.url + "/healthz")
            holder = asyncio.create_task(stream_file(server.url, waves[0], 16000, speed=1.0))
            await asyncio.sleep(0.8)
            drain = asyncio.create_task(server.pool.drain(30.0))
            await asyncio.sleep(0.1)
            out["draining"] = await _get(server.url + "/healthz")
            out["live"] = await _get(server.url + "/livez")
            out["refused"] = await stream_file(server.url, waves[1], 16000, speed=0)
            out["holder"] = await holder
            out["cut"] = await drain
            out["metrics"] = (await _get(server.url + "/metrics"))[1]
        # a drain that runs out of time ends the streams still open, with a message
        async with Server(timed) as server:
            holder = asyncio.create_task(stream_file(server.url, waves[0], 16000, speed=1.0))
            await asyncio.sleep(0.8)
            out["short_cut"] = await server.pool.drain(0.3)
            out["short_holder"] = await holder
        return out

    out = asyncio.run(scenario())
    assert out["ready"][0] == 200 and json.loads(out["ready"][1])["status"] == "ready"
    assert out["draining"][0] == 503 and json.loads(out["draining"][1])["open_streams"] == 1
    assert out["live"][0] == 200
    refused = out["refused"]["error"]
    assert refused["code"] == "draining" and out["refused"]["close_code"] == 1012
    assert out["holder"]["error"] is None and out["holder"]["messages"][-1]["type"] == "finished"
    assert out["cut"] == 0
    assert out["short_cut"] == 1 and out["short_holder"]["error"]["code"] == "shutting_down"
    assert out["short_holder"]["close_code"] == 1001
    metrics = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in out["metrics"].splitlines()
        if line and not line.startswith("#")
    }
    assert metrics["echostream_streams_opened_total"] == 1 and metrics["echostream_streams_open"] == 0
    assert metrics['echostream_streams_refused_total{reason="draining"}'] == 1
    assert metrics["echostream_ticks_total"] == metrics["echostream_tick_compute_seconds_count"] > 0
    seconds = waves[0].size / 16000
    assert metrics["echostream_audio_in_seconds_total"] == pytest.approx(seconds, abs=1e-3)
    assert metrics['echostream_stage_seconds_total{stage="encoder"}'] > 0
    assert 0 < metrics["echostream_tick_compute_seconds_sum"] < metrics["echostream_ticks_total"] * 0.32


def test_the_command_over_https_with_a_token_file_drains_on_sigterm(writing, corpus, tmp_path):
    import signal
    import subprocess
    import time

    from cli_runs import BIN

    save, _ = writing
    cert, key, _ = self_signed(tmp_path)
    (tmp_path / "token").write_text("sesame\n")
    server = subprocess.Popen(
        [BIN / "echostream-serve", "--model-path", save / "checkpoint_last.pt", "--data-bin", corpus]
        + ["--output", "text", "--max-len", "12", "--port", "0", "--certfile", cert, "--keyfile", key]
        + ["--token-file", tmp_path / "token", "--drain-seconds", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline()
        assert line.startswith("EchoStream server on https://127.0.0.1:"), line + server.stderr.read()[-3000:]
        url = line.split()[3]
        wave = _waves(corpus, 1)[0]

        async def scenario():
            holder = asyncio.create_task(stream_file(url, wave, 16000, speed=1.0, token="sesame", cafile=str(cert)))
            await asyncio.sleep(1.0)
            server.send_signal(signal.SIGTERM)  # as a deployment stops it
            await asyncio.sleep(0.3)
            try:
                late = await stream_file(url, wave, 16000, speed=0, token="sesame", cafile=str(cert))
            except ClientError as e:  # it stopped listening: a balancer would try the next server
                late = str(e)
            return await holder, late

        holder, late = asyncio.run(scenario())
        assert holder["error"] is None and holder["messages"][-1]["type"] == "finished"
        assert "cannot reach an EchoStream server" in late
        started = time.monotonic()
        assert server.wait(timeout=30) == 0 and time.monotonic() - started < 10
        log = server.stderr.read()
        assert "sesame" not in log and "draining: 1 streams open" in log and "opened (16000 Hz" in log
    finally:
        if server.poll() is None:
            server.kill()


@pytest.mark.parametrize(
    "flags, env, says",
    [
        (["--token-file", "{tmp}/missing"], None, "--token-file {tmp}/missing: No such file or directory"),
        (["--token-file", "{tmp}/empty"], None, "--token-file {tmp}/empty is empty"),
        (["--token-file", "{tmp}/token"], "x", "give the token one way, not --token-file and ECHOSTREAM_TOKEN"),
        (["--keyfile", "{tmp}/token"], None, "--keyfile needs --certfile"),
        (["--certfile", "{tmp}/token"], None, "cannot use --certfile {tmp}/token"),
        (["--allow-origin", "lab.example.org"], None, "--allow-origin takes http(s)://host[:port] or *"),
    ],
)
def test_the_commands_access_flags_are_checked_before_the_model_loads(flags, env, says, tmp_path, capsys, monkeypatch):
    from echostream_fairseq.cli import serve

    (tmp_path / "empty").write_text("\n")
    (tmp_path / "token").write_text("sesame\n")
    monkeypatch.delenv("ECHOSTREAM_TOKEN", raising=False)
    if env:
        monkeypatch.setenv("ECHOSTREAM_TOKEN", env)
    argv = ["--model-path", "nowhere.pt", "--data-bin", "nowhere"] + [f.format(tmp=tmp_path) for f in flags]
    assert serve.main(argv) == 2
    assert says.format(tmp=tmp_path) in capsys.readouterr().err


def test_bad_clients_beside_a_good_stream_take_nothing_from_it(text_system, corpus):
    import aiohttp

    waves = _waves(corpus, 2)

    async def bad(url, origin=None, start=None, send=(), leave=False):
        headers = {} if origin is None else {"Origin": origin}
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(url.replace("http", "ws") + "/ws", headers=headers) as ws:
                    await ws.send_json(start or {**START, "token": "sesame"})
                    for message in send:
                        await ws.send_bytes(message)
                    if leave:  # mid-chunk, no finish
                        return "left"
                    async for m in ws:
                        if m.type == aiohttp.WSMsgType.TEXT and json.loads(m.data)["type"] == "error":
                            return json.loads(m.data)["code"]
                    return "closed"
            except aiohttp.WSServerHandshakeError as e:
                return e.status

    async def scenario():
        async with Server(text_system, token="sesame", max_message_bytes=4096, max_speed=1.5) as server:
            good = asyncio.create_task(stream_file(server.url, waves[0], 16000, speed=1.0, piece_ms=50, token="sesame"))
            await asyncio.sleep(0.5)
            third = np.zeros(1000, dtype="<f4").tobytes()
            outcomes = await asyncio.gather(
                bad(server.url, origin="https://evil.example.com"),
                bad(server.url, start={**START, "token": "guess"}),
                bad(server.url, send=[b"\0" * 5000]),
                bad(server.url, send=[b"\0" * 3]),
                bad(server.url, send=[third] * 60),  # 3.75 s of audio at once: faster than the declared rate
                bad(server.url, send=[third] * 3, leave=True),
            )
            return await good, outcomes, len(server.pool.connections)

    good, outcomes, left_open = asyncio.run(scenario())
    assert outcomes == [403, "unauthorized", "too_large", "bad_audio", "rate_mismatch", "left"]
    assert good["error"] is None and _got_text(good) == _alone_text(text_system, waves[0])
    assert left_open == 0
