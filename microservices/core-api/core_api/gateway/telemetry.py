"""The gateway's Prometheus metrics, per upstream service (labels: the service's name, the
status class, the stream kind: all bounded). core-api's own routes are counted by
harvis_common.metrics like every service's."""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram

from harvis_common.metrics import LATENCY_BUCKETS, status_class

PROXIED = Counter(
    "harvis_gateway_requests",
    "Requests the gateway proxied (WebSocket sessions included), by upstream service and status class.",
    ("upstream", "status"),
)
PROXY_LATENCY = Histogram(
    "harvis_gateway_request_duration_seconds",
    "Time from the request reaching the gateway to the end of the service's answer (a stream's whole length).",
    ("upstream", "status"),
    buckets=LATENCY_BUCKETS,
)
CONNECT_FAILURES = Counter(
    "harvis_gateway_upstream_connect_failures",
    "Connections to a service that could not be made (refused, unreachable, timed out).",
    ("upstream",),
)
OPEN_STREAMS = Gauge(
    "harvis_gateway_open_streams",
    "Streams open through the gateway now: SSE and other streamed responses, WebSocket sessions.",
    ("upstream", "kind"),
)


def observe_proxied(upstream: str, status: int, start: float) -> None:
    cls = status_class(status)
    PROXIED.labels(upstream, cls).inc()
    PROXY_LATENCY.labels(upstream, cls).observe(time.perf_counter() - start)
