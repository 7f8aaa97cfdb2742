"""Prometheus metrics every service serves at `GET /metrics` (its own port only: nginx never
routes it), with the official client library.

`MetricsMiddleware` is raw ASGI like `ServiceMiddleware`: per request it reads the clock twice
and updates a histogram, a counter and a gauge. Labels are bounded: the matched route's
template (`/api/vibe/sessions/{session_id}`, or "unmatched"), the method and the status class
(`2xx`…); never user ids or raw paths. Domain metrics live beside the code they count; they
are declared here when several services share them, else in the service (a few lines each).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from starlette.responses import Response

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

METRICS_PATH = "/metrics"
# Seconds: from a cached health answer (~1 ms) to a long model answer.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "WS"})
_STATUS_CLASS = {n: f"{n}xx" for n in range(1, 6)}

REQUESTS = Counter(
    "harvis_http_requests",
    "HTTP requests (and WebSocket sessions) served, by route template, method and status class.",
    ("route", "method", "status"),
)
LATENCY = Histogram(
    "harvis_http_request_duration_seconds",
    "Time to serve a request, to the end of its body (a stream's whole length).",
    ("route", "method", "status"),
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge("harvis_http_requests_in_flight", "Requests being served now.")
# Pages and files fetched for users (harvis_common.http_client: research's fetches, the
# browser's vetting): by outcome ok | blocked (the SSRF policy refused it) | error | timeout.
FETCHES = Counter("harvis_fetches", "Outbound fetches for users, by outcome.", ("outcome",))


def status_class(status: int) -> str:
    """`2xx`…; `none` when no response was sent, `other` for a WebSocket close code."""
    return _STATUS_CLASS.get(status // 100) or ("none" if status == 0 else "other")


def route_template(scope: Scope) -> str:
    """The template of the route the app matched (set by Starlette on the scope), else
    "unmatched": a 404 for any path counts once, not once per path."""
    route = scope.get("route")
    if route is None:
        return "unmatched"
    return getattr(route, "path_format", None) or getattr(route, "path", None) or "unmatched"


def observe_request(scope: Scope, status: int, start: float) -> str:
    """Count one served request (core-api's gateway calls this for its own routes); returns
    the route template it was counted under."""
    route = route_template(scope)
    method = scope.get("method", "WS") if scope["type"] == "http" else "WS"
    labels = (route, method if method in _METHODS else "other", status_class(status))
    REQUESTS.labels(*labels).inc()
    LATENCY.labels(*labels).observe(time.perf_counter() - start)
    return route


class MetricsMiddleware:
    """Counts every request but the scrape itself and the probes."""

    def __init__(self, app: ASGIApp, skip_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.skip = frozenset({METRICS_PATH}) | skip_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or scope["path"] in self.skip:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "websocket.accept":
                status = 101
            elif message["type"] == "websocket.close" and not status:
                status = 403  # closed before accepting: refused
            await send(message)

        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            IN_FLIGHT.dec()
            observe_request(scope, status, start)


def metrics_response() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def metrics_router() -> APIRouter:
    """`GET /metrics`, outside the OpenAPI document (it is for the scraper, not for clients)."""
    router = APIRouter()

    @router.get(METRICS_PATH, include_in_schema=False)
    async def metrics() -> Response:
        return metrics_response()

    return router
