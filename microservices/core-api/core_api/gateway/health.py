"""Health of the fleet: every replica of every service's `/health`, checked concurrently,
plus core-api.

The public `/api/health` says only ok or degraded (issue 14: it listed internal URLs
and made six upstream calls per request); the per-service view is for admins
(the routes: api/routes/health.py).

A service with several replicas (its URL setting lists them) is ok when at least one replica
is: requests naming no session still get served. Its entry in the admin view is that replica's
check (the first ok one, else the first), with every replica's under `replicas`. The fleet's
status, public and admin, is degraded when any replica is not ok: capacity is down, and the
sessions that replica held are gone, which an administrator should know about."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from harvis_common.app import VERSION

from .upstream import UpstreamError, UpstreamPool

if TYPE_CHECKING:
    from .proxy import Gateway
    from .replicas import Replicas

CHECK_TIMEOUT_S = 1.5
SELF = "core-api"


async def check_service(pool: UpstreamPool, limit_s: float = CHECK_TIMEOUT_S) -> dict[str, Any]:
    start = time.perf_counter()
    result: dict[str, Any] = {"url": pool.endpoint.url}
    try:
        status, body = await asyncio.wait_for(pool.fetch("GET", "/health", limit_s), limit_s)
    except (UpstreamError, TimeoutError) as exc:
        result.update(status="down", error=str(exc) or "timed out")
    else:
        if status == 200:
            result["status"] = "ok"
            with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
                result["version"] = orjson.loads(body).get("version")
        else:
            result.update(status="unhealthy", error=f"/health answered {status}")
    result["latency_ms"] = round((time.perf_counter() - start) * 1000, 1)
    return result


def service_health(replicas: list[dict[str, Any]]) -> dict[str, Any]:
    """One service's entry from its replicas' checks (in ordinal order): ok when one is."""
    ok = [check for check in replicas if check["status"] == "ok"]
    return {**(ok[0] if ok else replicas[0]), "replicas": [{"ordinal": i, **c} for i, c in enumerate(replicas)]}


class FleetHealth:
    """Checks every service concurrently; the public summary reuses one check for `cache_s`
    seconds and concurrent callers share the check in flight."""

    def __init__(self, gateway: Gateway, cache_s: float) -> None:
        self.gateway = gateway
        self.cache_s = cache_s
        self._last: tuple[float, dict[str, Any]] | None = None  # (monotonic time, report)
        self._running: asyncio.Future[dict[str, Any]] | None = None
        self.checks = 0

    async def check(self) -> dict[str, Any]:
        """A fresh report with every service's status, latency, version and URL."""
        self.checks += 1
        start = time.perf_counter()
        names = self.gateway.routes.services()
        fleet = self.gateway.replicas
        started: list[Replicas] = [fleet[name] for name in names if name in fleet]
        checks = await asyncio.gather(*(check_service(pool) for service in started for pool in service.pools))
        services: dict[str, dict[str, Any]] = {
            SELF: {"status": "ok", "version": VERSION, "latency_ms": round((time.perf_counter() - start) * 1000, 1)}
        }
        checked = iter(checks)
        for name in names:
            if name in fleet:
                services[name] = service_health([next(checked) for _ in fleet[name].pools])
            else:
                services[name] = {"status": "unknown", "error": "gateway not started"}
        healthy = all(
            s["status"] == "ok" and all(r["status"] == "ok" for r in s.get("replicas", ())) for s in services.values()
        )
        report = {
            "status": "ok" if healthy else "degraded",
            "service": SELF,
            "version": VERSION,
            "checked_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "services": services,
        }
        self._last = (time.monotonic(), report)
        return report

    async def cached(self) -> dict[str, Any]:
        last = self._last
        if last is not None and time.monotonic() - last[0] < self.cache_s:
            return last[1]
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self.check())
        # Shielded: one caller going away must not cancel the check the others wait for.
        return await asyncio.shield(self._running)
