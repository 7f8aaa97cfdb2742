"""`GET /api/health` (public: ok or degraded, nothing about the inside, cached) and
`GET /api/admin/health` (administrators: every service's status, latency, version, URL).

The checks are the gateway's (`gateway/health.py`: every service's `/health` through its
upstream pool), so the router is made for one gateway."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ...gateway.health import FleetHealth
from ..deps import Admin

if TYPE_CHECKING:
    from ...gateway.proxy import Gateway


def health_overview_router(gateway: Gateway) -> APIRouter:
    router = APIRouter(tags=["health"])
    health = FleetHealth(gateway, gateway.settings.health_cache_s)

    @router.get("/api/health", summary="Is Harvis up? ok or degraded")
    async def health_summary() -> JSONResponse:
        report = await health.cached()
        # Anyone may ask, so nothing about the inside: no service names, addresses or errors.
        return JSONResponse({"status": report["status"], "checked_at": report["checked_at"]})

    @router.get(
        "/api/admin/health",
        summary="Health of core-api and every service (administrators)",
        responses={401: {}, 403: {}},
    )
    async def health_detailed(_: Admin) -> JSONResponse:
        return JSONResponse(await health.check())

    return router
