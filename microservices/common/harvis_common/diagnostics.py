"""Diagnostics every service exposes under `/api/<slug>/diagnostics/`.

`whoami` shows the identity the service verified (what the gateway vouched
for); `stream` emits timed SSE events, so an operator can check that every
proxy between the browser and the service passes streams unbuffered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from .identity import current_identity
from .internal_auth import Identity

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse_event(payload: dict[str, object]) -> bytes:
    """One contract-framed SSE event: `data: <single-line json>` + blank line."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def diagnostics_router(slug: str, service: str) -> APIRouter:
    router = APIRouter(prefix=f"/api/{slug}/diagnostics", tags=["diagnostics"])

    @router.get("/whoami")
    async def whoami(identity: Annotated[Identity, Depends(current_identity)]) -> dict[str, object]:
        return {"service": service, **identity.as_dict()}

    @router.get("/stream")
    async def stream(
        identity: Annotated[Identity, Depends(current_identity)],
        count: Annotated[int, Query(ge=1, le=100)] = 5,
        interval_ms: Annotated[int, Query(ge=0, le=5000)] = 200,
    ) -> StreamingResponse:
        async def events() -> AsyncIterator[bytes]:
            start = time.time()
            for i in range(count):
                if i:
                    await asyncio.sleep(interval_ms / 1000)
                yield sse_event({"status": "streaming", "seq": i, "sent_at": time.time(), "service": service})
            yield sse_event({"status": "complete", "count": count, "elapsed_s": round(time.time() - start, 3)})

        return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)

    return router
