"""The gateway's traces and metrics over real sockets: the service's `traceparent` is the
gateway's own hop (same trace as the caller's, never the caller's header as is), and each
proxied request is counted per upstream service, connect failures and streams included."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from gateway_support import BEARER, Fleet
from prometheus_client import REGISTRY

from harvis_common.tracing import parse_traceparent

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def respond(head: bytes) -> list[bytes]:
    return [b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"]


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    fleet = Fleet(respond)
    yield fleet
    fleet.stop()


@pytest.fixture
async def client(fleet: Fleet) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fleet.url, trust_env=False, timeout=10) as c:
        yield c


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def sent_traceparents(r: httpx.Response) -> list[str]:
    return [value for name, value in r.json()["headers"] if name == "traceparent"]


async def test_the_service_gets_the_gateways_hop_under_the_callers_trace(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/tts/headers", headers={**BEARER, "traceparent": PARENT})
    assert r.status_code == 200
    (sent,) = sent_traceparents(r)  # exactly one: the caller's own is not passed on as well
    ids = parse_traceparent(sent)
    assert ids is not None
    assert ids.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert ids.span_id != "00f067aa0ba902b7"


async def test_a_trace_is_minted_when_the_caller_has_none_or_a_bad_one(client: httpx.AsyncClient) -> None:
    seen = set()
    for extra in ({}, {"traceparent": "00-nonsense"}):
        r = await client.get("/api/tts/headers", headers={**BEARER, **extra})
        (sent,) = sent_traceparents(r)
        ids = parse_traceparent(sent)
        assert ids is not None
        seen.add(ids.trace_id)
    assert len(seen) == 2


async def test_proxied_requests_are_counted_per_upstream(client: httpx.AsyncClient) -> None:
    ok = sample("harvis_gateway_requests_total", upstream="voice-service", status="2xx")
    hist = sample("harvis_gateway_request_duration_seconds_count", upstream="voice-service", status="2xx")
    denied = sample("harvis_gateway_requests_total", upstream="voice-service", status="4xx")
    for _ in range(3):
        assert (await client.get("/api/tts/headers", headers=BEARER)).status_code == 200
    assert (await client.get("/api/tts/headers")).status_code == 401
    assert sample("harvis_gateway_requests_total", upstream="voice-service", status="2xx") == ok + 3
    assert sample("harvis_gateway_request_duration_seconds_count", upstream="voice-service", status="2xx") == hist + 3
    assert sample("harvis_gateway_requests_total", upstream="voice-service", status="4xx") == denied + 1


async def test_connect_failures_are_counted(client: httpx.AsyncClient) -> None:
    before = sample("harvis_gateway_upstream_connect_failures_total", upstream="mcp-service")
    r = await client.get("/api/mcp/tools", headers=BEARER)  # mcp-service is down in this fleet
    assert r.status_code == 503
    assert sample("harvis_gateway_upstream_connect_failures_total", upstream="mcp-service") == before + 1
    assert sample("harvis_gateway_requests_total", upstream="mcp-service", status="5xx") >= 1


async def test_open_streams_gauge_goes_up_and_down(client: httpx.AsyncClient) -> None:
    path = "/api/research/diagnostics/stream?count=3&interval_ms=100"
    async with client.stream("GET", path, headers=BEARER) as r:
        assert r.status_code == 200
        async for _ in r.aiter_bytes():
            assert sample("harvis_gateway_open_streams", upstream="research-service", kind="stream") == 1
            break
    for _ in range(50):
        if sample("harvis_gateway_open_streams", upstream="research-service", kind="stream") == 0:
            break
        await asyncio.sleep(0.05)
    assert sample("harvis_gateway_open_streams", upstream="research-service", kind="stream") == 0


async def test_core_apis_own_routes_are_counted_by_template(client: httpx.AsyncClient) -> None:
    before = sample("harvis_http_requests_total", route="/api/local", method="GET", status="2xx")
    assert (await client.get("/api/local")).status_code == 200
    assert sample("harvis_http_requests_total", route="/api/local", method="GET", status="2xx") == before + 1
