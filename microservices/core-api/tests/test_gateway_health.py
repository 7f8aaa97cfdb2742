"""`GET /api/health`: every service checked, down ones shown as down."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from gateway_support import Fleet


async def _no_response(_: bytes) -> list[bytes]:
    return [b"<close>"]


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    fleet = Fleet(_no_response)
    yield fleet
    fleet.stop()


async def test_health_overview(fleet: Fleet) -> None:
    async with httpx.AsyncClient(base_url=fleet.url, trust_env=False) as client:
        start = time.perf_counter()
        r = await client.get("/api/health")  # public: no token
        elapsed = time.perf_counter() - start
    assert r.status_code == 200 and elapsed < 2.0
    assert r.headers["x-request-id"]
    body = r.json()
    assert body["status"] == "degraded"
    services = body["services"]
    assert set(services) == {
        "core-api",
        "research-service",
        "voice-service",
        "browser-service",
        "mcp-service",
        "n8n-integration",
        "vibe-coding",
    }
    for name in ("core-api", "research-service", "voice-service", "vibe-coding"):
        assert services[name]["status"] == "ok", (name, services[name])
        assert isinstance(services[name]["latency_ms"], float)
    assert services["research-service"]["version"] == "0.1.0"
    for name in ("mcp-service", "n8n-integration"):
        assert services[name]["status"] == "down"
        assert services[name]["error"]
    # The raw responder hangs up without answering: not healthy either.
    assert services["browser-service"]["status"] == "down"
