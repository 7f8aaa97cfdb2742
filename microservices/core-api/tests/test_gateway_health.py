"""Health: the public `GET /api/health` says only ok/degraded, from a briefly cached
check (issue 14: it listed internal service URLs and made six upstream calls per
request); the per-service view is `GET /api/admin/health`, for admins only."""

from __future__ import annotations

import asyncio
import time

import httpx
from gateway_support import Fleet

ALL_SERVICES = {
    "core-api",
    "research-service",
    "voice-service",
    "browser-service",
    "mcp-service",
    "n8n-integration",
    "vibe-coding",
}


async def test_public_health_says_only_ok_or_degraded(fleet: Fleet) -> None:
    async with httpx.AsyncClient(base_url=fleet.url, trust_env=False) as client:
        start = time.perf_counter()
        r = await client.get("/api/health")  # public: no token
        elapsed = time.perf_counter() - start
    assert r.status_code == 200 and elapsed < 2.0
    assert r.headers["x-request-id"]
    body = r.json()
    assert body["status"] == "degraded"  # mcp, n8n and browser are down in this fleet
    assert set(body) == {"status", "checked_at"}, body
    # Nothing about the inside: no addresses, ports, service names or errors.
    for secret in ("127.0.0.1", "http://", "url", "services", "research-service", "error"):
        assert secret not in r.text, secret


async def test_public_health_is_cached_and_shared(fleet: Fleet) -> None:
    """Many callers at once cost one round of upstream checks, and the answer is reused for
    HEALTH_CACHE_S: a flood of /api/health is not a flood on every service."""
    calls_before = fleet.research_health_calls()
    async with httpx.AsyncClient(base_url=fleet.url, trust_env=False) as client:
        answers = await asyncio.gather(*(client.get("/api/health") for _ in range(30)))
        again = await client.get("/api/health")
    assert {a.json()["checked_at"] for a in answers} == {again.json()["checked_at"]}
    assert fleet.research_health_calls() - calls_before <= 1
    await asyncio.sleep(fleet.settings.health_cache_s + 0.1)
    async with httpx.AsyncClient(base_url=fleet.url, trust_env=False) as client:
        later = await client.get("/api/health")
    assert later.json()["checked_at"] != again.json()["checked_at"]


async def test_detailed_health_is_admin_only(fleet: Fleet) -> None:
    async with httpx.AsyncClient(base_url=fleet.url, trust_env=False) as client:
        anonymous = await client.get("/api/admin/health")
        ordinary = await client.get("/api/admin/health", headers={"Authorization": "Bearer tok-alice"})
        admin = await client.get("/api/admin/health", headers={"Authorization": "Bearer tok-bob"})
    assert anonymous.status_code == 401
    assert ordinary.status_code == 403 and "administrator" in ordinary.json()["message"].lower()
    assert admin.status_code == 200
    body = admin.json()
    assert body["status"] == "degraded"
    services = body["services"]
    assert set(services) == ALL_SERVICES
    for name in ("core-api", "research-service", "voice-service", "vibe-coding"):
        assert services[name]["status"] == "ok", (name, services[name])
        assert isinstance(services[name]["latency_ms"], float)
    assert services["research-service"]["version"] == "0.1.0"
    assert services["research-service"]["url"] == fleet.research.url
    for name in ("mcp-service", "n8n-integration"):
        assert services[name]["status"] == "down"
        assert services[name]["error"]
    # The raw responder hangs up without answering: not healthy either.
    assert services["browser-service"]["status"] == "down"
