"""`/health` (liveness: the process answers) and `/ready` (its dependencies answer)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse

# A readiness check returns a short detail string, or raises when the dependency is down.
ReadyCheck = Callable[[], Awaitable[str]]

CHECK_TIMEOUT_S = 2.0
OPEN_PATHS = ("/health", "/ready")


async def run_check(name: str, check: ReadyCheck) -> dict[str, object]:
    start = time.perf_counter()
    try:
        detail = await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
        ok = True
    except Exception as exc:  # any failure means "not ready", with the reason shown
        detail, ok = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, False
    return {"name": name, "ok": ok, "detail": detail, "latency_ms": round((time.perf_counter() - start) * 1000, 1)}


def health_router(service: str, version: str, checks: dict[str, ReadyCheck]) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok", "service": service, "version": version})

    @router.get("/ready")
    async def ready() -> JSONResponse:
        results = await asyncio.gather(*(run_check(n, c) for n, c in checks.items()))
        ok = all(r["ok"] for r in results)
        return JSONResponse(
            {"status": "ready" if ok else "not_ready", "service": service, "checks": list(results)},
            status_code=200 if ok else 503,
        )

    return router
