"""GET /api/n8n/health: what this service depends on, each part checked (/ready checks only
what it needs to serve)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request

from harvis_common.health import ReadyCheck, run_check

from ..deps import Caller

router = APIRouter(prefix="/api/n8n", tags=["n8n"])


@router.get("/health")
async def health(request: Request, _: Caller) -> dict[str, Any]:
    """n8n, the database and the knowledge base, each with its state and latency."""
    deps: dict[str, ReadyCheck] = request.app.state.dependency_checks
    checks = await asyncio.gather(*(run_check(n, c) for n, c in deps.items()))
    return {"status": "ok" if all(c["ok"] for c in checks) else "degraded", "checks": list(checks)}
