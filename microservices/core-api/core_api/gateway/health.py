"""`GET /api/health`: every service's `/health`, checked concurrently, plus core-api."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from harvis_common.app import VERSION

from .upstream import UpstreamError, UpstreamPool

if TYPE_CHECKING:
    from .proxy import Gateway

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


def health_overview_router(gateway: Gateway) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/api/health", summary="Health of core-api and every service")
    async def health_overview() -> JSONResponse:
        start = time.perf_counter()
        names = gateway.routes.services()
        pools = gateway.pools
        checks = await asyncio.gather(
            *(check_service(pools[name]) for name in names if name in pools),
        )
        services: dict[str, dict[str, Any]] = {
            SELF: {"status": "ok", "version": VERSION, "latency_ms": round((time.perf_counter() - start) * 1000, 1)}
        }
        checked = iter(checks)
        for name in names:
            services[name] = next(checked) if name in pools else {"status": "unknown", "error": "gateway not started"}
        healthy = all(s["status"] == "ok" for s in services.values())
        return JSONResponse(
            {
                "status": "ok" if healthy else "degraded",
                "service": SELF,
                "version": VERSION,
                "checked_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "services": services,
            }
        )

    return router
