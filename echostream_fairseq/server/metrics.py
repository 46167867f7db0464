"""The server's Prometheus metrics (``GET /metrics``), one registry per application.

Names follow Prometheus' conventions (``_total`` for counters, base units); what each measures is
in its help text and in docs/server.md.
"""

from __future__ import annotations

from typing import Dict

__all__ = ["ServerMetrics", "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# the tick's compute time: from a millisecond to past the longest chunk a client may choose
COMPUTE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56)
# the chunk's duration minus the tick's compute: below zero the streams fall behind real time
MARGIN_BUCKETS = (-0.64, -0.32, -0.16, -0.08, -0.04, 0.0, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServerMetrics:
    """Counters, gauges and histograms of one server; :meth:`exposition` is the ``/metrics`` body."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        r = self.registry = CollectorRegistry()
        self.streams_open = Gauge("echostream_streams_open", "Streams open now.", registry=r)
        self.streams_opened = Counter("echostream_streams_opened", "Streams opened.", registry=r)
        self.streams_refused = Counter(
            "echostream_streams_refused",
            "Connections refused before a stream opened, by reason (origin, unauthorized, busy, draining, ...).",
            ["reason"],
            registry=r,
        )
        self.streams_failed = Counter(
            "echostream_streams_failed", "Open streams closed by an error, by error code.", ["code"], registry=r
        )
        self.ticks = Counter("echostream_ticks", "Model steps, each a batch of streams.", registry=r)
        self.tick_compute = Histogram(
            "echostream_tick_compute_seconds", "Wall time of one model step.", buckets=COMPUTE_BUCKETS, registry=r
        )
        self.tick_margin = Histogram(
            "echostream_tick_margin_seconds",
            "The shortest chunk of a step's streams minus the step's compute time (negative: behind real time).",
            buckets=MARGIN_BUCKETS,
            registry=r,
        )
        self.tick_streams = Histogram(
            "echostream_tick_streams", "Streams stepped together in one step.", buckets=BATCH_BUCKETS, registry=r
        )
        self.stage_seconds = Counter(
            "echostream_stage_seconds", "Compute time per translator stage.", ["stage"], registry=r
        )
        self.audio_in = Counter("echostream_audio_in_seconds", "Source audio received.", registry=r)
        self.audio_out = Counter("echostream_audio_out_seconds", "Translated speech sent.", registry=r)

    def tick(self, compute_seconds: float, chunk_seconds: float, streams: int, stages: Dict[str, float]) -> None:
        self.ticks.inc()
        self.tick_compute.observe(compute_seconds)
        self.tick_margin.observe(chunk_seconds - compute_seconds)
        self.tick_streams.observe(streams)
        for stage, seconds in stages.items():
            self.stage_seconds.labels(stage).inc(seconds)

    def exposition(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
