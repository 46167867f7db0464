"""``echostream-bench-balancer``: clients held by one ``echostream-serve`` process and by several
behind nginx (the repository's ``deploy/nginx/echostream.conf``), and what stopping one costs.

::

    echostream-bench-balancer --model-path CKPT --data-bin CORPUS [--servers 2] [--clients 8 16 32]
        [--seconds 30] [--out results/bench_balancer]

For each layout (one process reached directly; ``--servers`` processes behind nginx on loopback)
and each client count, the clients stream ``--seconds`` of the corpus's test audio at real-time
pace, all at once, text output. A client is *held* when its stream finished without an error and
its translation never fell more than ``--held-seconds`` behind the audio it had sent (the
``progress`` messages' ``received_seconds - source_seconds``). Then the drain: clients stream
through nginx, one server gets SIGTERM, and new clients connect while it drains: how long it took
to exit, and whether every stream, on it or new, finished. Writes ``bench_balancer.md`` and
``bench_balancer.json`` to ``--out``. Needs nginx (``apt-get install nginx``).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from echostream_bench.common import write_report
from echostream_fairseq.common.cpu import machine_header

__all__ = ["start_server", "start_nginx", "wait_for_port", "free_port", "streams_opened", "main"]

NGINX_CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "nginx" / "echostream.conf"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {seconds:g} s") from None
            time.sleep(0.05)


def start_server(model_path, data_bin, port: int, log: Path, flags: Sequence[str] = ()) -> subprocess.Popen:
    """``echostream-serve`` (text output) on ``port``, its log lines to the file ``log`` (a pipe
    nobody reads would fill and stop it), returned once it has printed its address."""
    command = Path(sys.executable).parent / "echostream-serve"
    with open(log, "w") as log_file:
        process = subprocess.Popen(
            [str(command), "--model-path", str(model_path), "--data-bin", str(data_bin), "--output", "text"]
            + ["--port", str(port), *map(str, flags)],
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
        )
    line = process.stdout.readline()
    if not line.startswith("EchoStream server on "):
        process.kill()
        raise RuntimeError(f"echostream-serve did not start: {line}{Path(log).read_text()[-3000:]}")
    return process


def find_nginx() -> Optional[str]:
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def start_nginx(folder: Path, port: int, upstreams: Sequence[int]) -> subprocess.Popen:
    """nginx in the foreground on ``port`` with the repository's config, its two upstream servers
    replaced by ``upstreams`` (any number), once it listens."""
    nginx = find_nginx()
    if nginx is None:
        raise RuntimeError("nginx is not installed (apt-get install nginx)")
    site = NGINX_CONFIG.read_text()
    servers = "".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=10s;\n" for p in upstreams)
    lines = [line for line in site.splitlines(keepends=True) if not line.strip().startswith("server 127.0.0.1:")]
    at = next(i for i, line in enumerate(lines) if "least_conn;" in line) + 1
    site = "".join(lines[:at]) + servers + "".join(lines[at:])
    site = site.replace("listen 8000;", f"listen 127.0.0.1:{port};")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "site.conf").write_text(site)
    (folder / "nginx.conf").write_text(
        f"daemon off;\nworker_processes 1;\npid {folder}/nginx.pid;\nerror_log {folder}/error.log;\n"
        "events { worker_connections 1024; }\n"
        f"http {{ access_log off; client_body_temp_path {folder}; proxy_temp_path {folder}; "
        f"include {folder}/site.conf; }}\n"
    )
    process = subprocess.Popen([nginx, "-p", str(folder), "-c", str(folder / "nginx.conf")], stderr=subprocess.DEVNULL)
    wait_for_port(port)
    return process


def streams_opened(port: int) -> float:
    """How many streams the server on ``port`` has opened (its ``/metrics``)."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as r:
        for line in r.read().decode().splitlines():
            if line.startswith("echostream_streams_opened_total"):
                return float(line.split()[1])
    raise RuntimeError(f"the server on port {port} reports no echostream_streams_opened_total")


def _audio(data_bin: Path, seconds: float, offset: int) -> np.ndarray:
    from echostream_fairseq.data.audio import read_audio

    paths = sorted((data_bin / "audio" / "src").glob("test_*.wav"))
    if not paths:
        raise RuntimeError(f"{data_bin}/audio/src holds no test_*.wav: --data-bin must be an echostream-prep corpus")
    gap = np.zeros(6400, dtype=np.float32)
    pieces, n, j = [], 0, offset
    while n < seconds * 16000:
        wave = read_audio(paths[j % len(paths)]).numpy()
        pieces += [wave, gap]
        n += wave.size + gap.size
        j += 1
    return np.concatenate(pieces)[: int(seconds * 16000)]


def _client_row(result: Dict) -> Dict:
    backlog = [m["received_seconds"] - m["source_seconds"] for m in result["messages"] if m["type"] == "progress"] or [
        0.0
    ]
    compute = [m["compute_ms"] for m in result["messages"] if m["type"] == "progress"]
    finished = result["error"] is None and bool(result["messages"]) and result["messages"][-1]["type"] == "finished"
    return {"finished": finished, "error": result["error"], "max_backlog": max(backlog), "compute_ms": compute}


async def _clients(url: str, audios: List[np.ndarray]) -> List[Dict]:
    from echostream_fairseq.cli.client import stream_file

    results = await asyncio.gather(*[stream_file(url, a, 16000, speed=1.0, piece_ms=100) for a in audios])
    return [_client_row(r) for r in results]


def _summary(rows: List[Dict], held_seconds: float) -> Dict:
    held = [r["finished"] and r["max_backlog"] <= held_seconds for r in rows]
    compute = sorted(c for r in rows for c in r["compute_ms"])
    backlog = sorted(r["max_backlog"] for r in rows)
    return {
        "clients": len(rows),
        "held": sum(held),
        "errors": sum(r["error"] is not None for r in rows),
        "backlog_median_s": statistics.median(backlog),
        "backlog_max_s": backlog[-1],
        "tick_p95_ms": compute[int(0.95 * (len(compute) - 1))] if compute else 0.0,
    }


def run(args) -> Dict:
    folder = Path(tempfile.mkdtemp(prefix="echostream-bench-balancer-"))
    flags = ["--max-streams", str(max(args.clients) + 8), "--drain-seconds", str(args.drain_seconds)]
    results: Dict = {"layouts": {}, "drain": None}
    processes: List[subprocess.Popen] = []
    try:
        ports = [free_port() for _ in range(args.servers)]
        for i, port in enumerate(ports):
            processes.append(start_server(args.model_path, args.data_bin, port, folder / f"server{i}.log", flags))
        front = free_port()
        processes.append(start_nginx(folder, front, ports))
        layouts = {
            "one process": f"http://127.0.0.1:{ports[0]}",
            f"{args.servers} behind nginx": f"http://127.0.0.1:{front}",
        }
        for name, url in layouts.items():
            rows = {}
            for count in args.clients:
                before = [streams_opened(p) for p in ports]
                audios = [_audio(args.data_bin, args.seconds, k) for k in range(count)]
                summary = _summary(asyncio.run(_clients(url, audios)), args.held_seconds)
                summary["per_server"] = [streams_opened(p) - b for p, b in zip(ports, before)]
                rows[count] = summary
                print(f"{name}, {count} clients: {summary}", flush=True)
            results["layouts"][name] = rows
        results["drain"] = _drain(args, ports, front, processes)
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
        shutil.rmtree(folder, ignore_errors=True)
    return results


def _drain(args, ports: List[int], front: int, processes: List[subprocess.Popen]) -> Dict:
    """Clients through nginx; SIGTERM to the first server a few seconds in; new clients meanwhile."""
    url = f"http://127.0.0.1:{front}"
    count = args.drain_clients
    before = streams_opened(ports[0])
    others_before = sum(streams_opened(p) for p in ports[1:])

    async def scenario():
        held = asyncio.create_task(_clients(url, [_audio(args.data_bin, args.seconds, k) for k in range(count)]))
        await asyncio.sleep(3.0)
        on_stopped = streams_opened(ports[0]) - before
        stopped_at = time.monotonic()
        processes[0].send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        new = await _clients(url, [_audio(args.data_bin, 5.0, k) for k in range(count)])
        exit_code = await asyncio.get_running_loop().run_in_executor(None, processes[0].wait)
        return await held, new, on_stopped, time.monotonic() - stopped_at, exit_code

    held, new, on_stopped, exit_seconds, exit_code = asyncio.run(scenario())
    return {
        "clients": count,
        "on_stopped_server": on_stopped,
        # the held streams the other servers took, then every new one if none reached the stopped server
        "others_opened": sum(streams_opened(p) for p in ports[1:]) - others_before,
        "held_finished": sum(r["finished"] for r in held),
        "new_finished": sum(r["finished"] for r in new),
        "exit_seconds": exit_seconds,
        "exit_code": exit_code,
        "stream_seconds": args.seconds,
    }


def render(machine: str, results: Dict, args) -> str:
    lines = [
        f"Machine: {machine}",
        "",
        f"Clients streaming {args.seconds:g} s of test audio each at real-time pace, all at once, text output; "
        f"held = finished without an error and never more than {args.held_seconds:g} s behind the audio sent.",
        "",
        "| layout | clients | held | errors | backlog median / max (s) | tick p95 (ms) | streams per server |",
        "|---|---|---|---|---|---|---|",
    ]
    for layout, rows in results["layouts"].items():
        for count, r in rows.items():
            spread = " / ".join(f"{n:g}" for n in r["per_server"] if n or layout != "one process") or "0"
            lines.append(
                f"| {layout} | {count} | {r['held']} | {r['errors']} | {r['backlog_median_s']:.2f} / "
                f"{r['backlog_max_s']:.2f} | {r['tick_p95_ms']:.0f} | {spread} |"
            )
    d = results["drain"]
    if d:
        lines += [
            "",
            f"Drain: {d['clients']} clients of {d['stream_seconds']:g} s through nginx, SIGTERM to one server 3 s in "
            f"({d['on_stopped_server']:g} of the streams on it), {d['clients']} new 5 s clients during the drain.",
            "",
            "| streams finished (held) | new streams finished | streams the other servers opened | "
            "stopped server's exit after SIGTERM (s) | exit code |",
            "|---|---|---|---|---|",
            f"| {d['held_finished']} of {d['clients']} | {d['new_finished']} of {d['clients']} | "
            f"{d['others_opened']:g} | {d['exit_seconds']:.1f} | {d['exit_code']} |",
        ]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="echostream-bench-balancer", description=__doc__.split("\n\n")[0])
    p.add_argument("--model-path", required=True, type=Path)
    p.add_argument("--data-bin", required=True, type=Path, help="an echostream-prep corpus (its test audio is sent)")
    p.add_argument("--servers", type=int, default=2, help="echostream-serve processes behind nginx")
    p.add_argument("--clients", type=int, nargs="+", default=[8, 16, 32], help="client counts, each a run")
    p.add_argument("--seconds", type=float, default=30.0, help="audio per client")
    p.add_argument("--held-seconds", type=float, default=1.0, help="the most a held stream may fall behind")
    p.add_argument("--drain-clients", type=int, default=8)
    p.add_argument("--drain-seconds", type=float, default=30.0, help="the servers' --drain-seconds")
    p.add_argument("--out", default="results/bench_balancer")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.servers < 2 or min(args.clients) < 1 or args.seconds <= 0:
        print("echostream-bench-balancer: --servers must be >= 2, --clients >= 1, --seconds > 0", file=sys.stderr)
        return 2
    if find_nginx() is None:
        print("echostream-bench-balancer: nginx is not installed (apt-get install nginx)", file=sys.stderr)
        return 2
    machine = machine_header()
    print(f"Machine: {machine}", flush=True)
    try:
        results = run(args)
    except RuntimeError as e:
        print(f"echostream-bench-balancer: {e}", file=sys.stderr)
        return 2
    table = render(machine, results, args)
    print(table)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    write_report(Path(args.out), "bench_balancer", {"machine": machine, "args": settings, **results}, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
