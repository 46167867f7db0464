"""Two ``echostream-serve`` processes behind nginx on loopback, with the repository's config
(deploy/nginx/echostream.conf): clients spread over both with nothing lost, and a server stopped
with SIGTERM lets its streams finish while new streams go to the other."""

import asyncio
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from echostream_fairseq.cli.client import stream_file
from echostream_fairseq.data.audio import read_audio

REPO = Path(__file__).resolve().parents[2]
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server(save, corpus, port):
    from cli_runs import BIN

    process = subprocess.Popen(
        [BIN / "echostream-serve", "--model-path", save / "checkpoint_last.pt", "--data-bin", corpus]
        + ["--output", "text", "--max-len", "12", "--port", str(port), "--drain-seconds", "30"]
        + ["--max-speed", "1000"],  # the clients after the stop send as fast as they can
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process


def _nginx(folder: Path, port: int, upstreams) -> subprocess.Popen:
    """nginx in the foreground with the repository's config, its ports replaced by the test's."""
    site = (REPO / "deploy" / "nginx" / "echostream.conf").read_text()
    for old, new in zip(("127.0.0.1:8001", "127.0.0.1:8002"), upstreams):
        site = site.replace(old, f"127.0.0.1:{new}")
    site = site.replace("listen 8000;", f"listen 127.0.0.1:{port};")
    (folder / "site.conf").write_text(site)
    (folder / "nginx.conf").write_text(
        f"daemon off;\nworker_processes 1;\npid {folder}/nginx.pid;\nerror_log {folder}/error.log;\n"
        f"events {{ worker_connections 256; }}\n"
        f"http {{ access_log off; client_body_temp_path {folder}; proxy_temp_path {folder}; "
        f"include {folder}/site.conf; }}\n"
    )
    return subprocess.Popen([NGINX, "-p", str(folder), "-c", str(folder / "nginx.conf")], stderr=subprocess.PIPE)


def _opened(port: int) -> float:
    """How many streams a server has opened, from its /metrics."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as r:
        for line in r.read().decode().splitlines():
            if line.startswith("echostream_streams_opened_total"):
                return float(line.split()[1])
    raise AssertionError("no echostream_streams_opened_total")


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed (tests/install_tools.sh installs it)")
def test_two_servers_behind_nginx_hold_every_client_and_drain_one(writing, corpus, tmp_path):
    save, _ = writing
    ports = [_free_port(), _free_port()]
    front = _free_port()
    servers = [_server(save, corpus, p) for p in ports]
    balancer = None
    try:
        for s in servers:  # each prints its address once the model is loaded and the socket bound
            line = s.stdout.readline()
            assert line.startswith("EchoStream server on http://"), line + s.stderr.read()[-3000:]
        balancer = _nginx(tmp_path, front, ports)
        url = f"http://127.0.0.1:{front}"
        for _ in range(100):  # nginx binds in a moment
            try:
                socket.create_connection(("127.0.0.1", front), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        waves = [read_audio(p).numpy() for p in sorted((corpus / "audio" / "src").glob("test_*.wav"))[:4]]

        async def scenario():
            # eight clients at real-time pace, through the balancer
            first = await asyncio.gather(*[stream_file(url, waves[k % 4], 16000, speed=1.0) for k in range(8)])
            spread = [_opened(p) for p in ports]
            # two streams open, then the first server is stopped as a deployment stops it
            held = [asyncio.create_task(stream_file(url, waves[k], 16000, speed=1.0)) for k in range(2)]
            await asyncio.sleep(1.0)
            on_first = _opened(ports[0]) - spread[0]
            servers[0].send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            later = await asyncio.gather(*[stream_file(url, waves[k % 4], 16000, speed=0) for k in range(4)])
            return first, spread, await asyncio.gather(*held), on_first, later

        first, spread, held, on_first, later = asyncio.run(scenario())
        for result in first + held + later:  # nothing lost: every stream finished without an error
            assert result["error"] is None and result["messages"][-1]["type"] == "finished"
        assert spread[0] >= 2 and spread[1] >= 2 and sum(spread) == 8  # least connections: both served
        assert on_first >= 1  # a held stream was on the stopped server, and it finished
        assert servers[0].wait(timeout=30) == 0
        assert _opened(ports[1]) == spread[1] + (2 - on_first) + 4  # the new streams all went to the other
    finally:
        for p in servers + ([balancer] if balancer else []):
            if p.poll() is None:
                p.kill()
