"""harvis_common.metrics and harvis_common.tracing: route templates as labels, /metrics open,
trace context taken, minted, logged and passed on; OpenTelemetry spans with their parents."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys

import orjson
import pytest
from aiohttp import web
from fastapi import APIRouter
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from harvis_common import tracing
from harvis_common.app import create_service_app
from harvis_common.config import ServiceSettings
from harvis_common.llm.openai import OpenAIClient
from harvis_common.logging import JsonFormatter
from harvis_common.tracing import current_trace, parse_traceparent
from harvis_testkit import InternalAuthKit

SERVICE = "obs-test-service"
PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def make_app(kit: InternalAuthKit, seen: list[str | None]) -> TestClient:
    router = APIRouter()

    @router.get("/api/obs/items/{item_id}")
    async def item(item_id: int) -> dict[str, object]:
        ids = current_trace.get()
        seen.append(ids.traceparent if ids else None)
        logging.getLogger("obs.test").info("serving item")
        return {"item": item_id}

    settings = ServiceSettings(service_name=SERVICE, internal_auth_public_key=kit.public_key)
    app = create_service_app(settings, title="t", description="d", slug="/api/obs", routers=[router])
    return TestClient(app)


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def kit() -> InternalAuthKit:
    return InternalAuthKit()


def test_metrics_open_and_counted_by_route_template(kit: InternalAuthKit) -> None:
    seen: list[str | None] = []
    client = make_app(kit, seen)
    labels = {"route": "/api/obs/items/{item_id}", "method": "GET", "status": "2xx"}
    before = sample("harvis_http_requests_total", labels)
    for n in (1, 2, 3):
        assert client.get(f"/api/obs/items/{n}", headers=kit.headers(SERVICE)).status_code == 200
    assert sample("harvis_http_requests_total", labels) == before + 3
    assert sample("harvis_http_request_duration_seconds_count", labels) >= 3
    unmatched = {"route": "unmatched", "method": "GET", "status": "4xx"}
    before = sample("harvis_http_requests_total", unmatched)
    client.get("/api/obs/nowhere/12345", headers=kit.headers(SERVICE))
    client.get("/api/obs/items/1")  # no internal auth: 401, before any route matched
    assert sample("harvis_http_requests_total", unmatched) == before + 2

    r = client.get("/metrics")  # no X-Internal-Auth: open, like /health
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    body = r.text
    assert 'harvis_http_requests_total{method="GET",route="/api/obs/items/{item_id}",status="2xx"}' in body
    assert "/api/obs/items/1" not in body and "/api/obs/nowhere" not in body  # never raw paths
    assert "harvis_http_requests_in_flight" in body
    assert "/metrics" not in client.app.openapi()["paths"]


def test_trace_context_taken_or_minted_and_logged(kit: InternalAuthKit) -> None:
    seen: list[str | None] = []
    client = make_app(kit, seen)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(SERVICE))
    logging.getLogger().addHandler(handler)
    try:
        client.get("/api/obs/items/1", headers={**kit.headers(SERVICE), "traceparent": PARENT})
        client.get("/api/obs/items/2", headers=kit.headers(SERVICE))
        client.get("/api/obs/items/3", headers={**kit.headers(SERVICE), "traceparent": "00-zz-nonsense-01"})
    finally:
        logging.getLogger().removeHandler(handler)
    first, minted, bad = (parse_traceparent(tp) for tp in seen)
    assert first is not None and minted is not None and bad is not None
    assert first.trace_id == "0af7651916cd43dd8448eb211c80319c"  # the caller's trace
    assert first.span_id != "b7ad6b7169203331"  # our own span under it
    assert minted.trace_id != first.trace_id and bad.trace_id not in (first.trace_id, minted.trace_id)
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    served = [x for x in lines if x["msg"] == "serving item"]
    assert [x["trace_id"] for x in served] == [first.trace_id, minted.trace_id, bad.trace_id]
    assert served[0]["span_id"] == first.span_id and served[0]["request_id"]
    access = [x for x in lines if x["msg"] == "request"]
    assert access and all("trace_id" in x for x in access)


def test_parse_traceparent() -> None:
    assert parse_traceparent(PARENT) == ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", "01")
    assert parse_traceparent(PARENT.encode()) is not None
    for bad in (
        None,
        "",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
    ):
        assert parse_traceparent(bad) is None, bad
    # A later version may add fields after the flags.
    assert parse_traceparent("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-more") is not None


async def test_model_call_carries_a_child_traceparent() -> None:
    got: list[str] = []

    async def chat(request: web.Request) -> web.StreamResponse:
        got.append(request.headers.get("traceparent", ""))
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        chunk = {"model": "m", "choices": [{"delta": {"content": "hi"}, "finish_reason": "stop"}]}
        await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\ndata: [DONE]\n\n")
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client = OpenAIClient(f"http://127.0.0.1:{port}/v1")
    token = current_trace.set(parse_traceparent(PARENT))
    try:
        result = await client.chat([{"role": "user", "content": "x"}], "m")
    finally:
        current_trace.reset(token)
        await client.close()
        await runner.cleanup()
    assert result.content == "hi"
    sent = parse_traceparent(got[0])
    assert sent is not None and sent.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert sent.span_id != "b7ad6b7169203331"


def test_otel_spans_have_the_right_parents(kit: InternalAuthKit, monkeypatch: pytest.MonkeyPatch) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("test"))
    seen: list[str | None] = []
    client = make_app(kit, seen)
    client.get("/api/obs/items/7", headers={**kit.headers(SERVICE), "traceparent": PARENT})
    client.get("/api/obs/items/8", headers=kit.headers(SERVICE))
    for probe in ("/health", "/ready", "/metrics"):  # probes and scrapes: no spans
        client.get(probe, headers={"traceparent": PARENT})
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["GET /api/obs/items/{item_id}"] * 2
    first, second = spans
    assert f"{first.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert first.parent is not None and f"{first.parent.span_id:016x}" == "b7ad6b7169203331"
    assert f"{first.context.span_id:016x}" == parse_traceparent(seen[0]).span_id  # what the logs show
    assert second.parent is None and second.context.trace_id != first.context.trace_id
    assert first.attributes["http.response.status_code"] == 200
    assert first.attributes["http.route"] == "/api/obs/items/{item_id}"


def test_tracing_off_imports_no_sdk() -> None:
    """Off by default, the SDK is never imported: a service pays nothing for it."""
    code = (
        "import sys, harvis_common.app, harvis_common.llm, harvis_common.tracing as t;"
        "assert not t.configure_tracing('x');"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry.sdk')], 'sdk imported'"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_tracing_on_by_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
    assert tracing._enabled_by_env()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert not tracing._enabled_by_env()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not tracing._enabled_by_env()
