"""`/api/models`, `/api/ollama-models`, `/api/models/memory-pressure`, `/api/models/unload`:
the LLM backend's real model list and memory, 503 when it is unreachable. `/api/models` is
the user's: listed with their own stored key when it is in use (`chat/provider_keys.py`); the
others are the server's backend."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from harvis_common.llm import LLMError

from ...auth.context import AuthUser
from ...chat.backend import fetch_loaded, listing, machine_memory, pressure, unload_models
from ...chat.provider_keys import backend_for
from ..deps import Backend, Caller, admin_only, backend_error, backend_models
from ..schemas import UnloadRequest

router = APIRouter(tags=["models"])

# The models are loaded once for every user: unloading them is the operator's call. The front
# end's "Clear AI RAM" button shows this message to everyone else.
UNLOAD_ADMIN_ONLY = "Only an administrator can unload the AI models: they are shared by every user"
UnloadAdmin = Annotated[AuthUser, Depends(admin_only(UNLOAD_ADMIN_ONLY))]


@router.get("/api/models", responses={502: {}, 503: {}})
async def list_models(user: Caller, request: Request) -> dict[str, Any]:
    # The user's own key may see other models (or another server's, with their api_url).
    try:
        llm, owned = await backend_for(request.app.state, user.id)
    except LLMError as exc:
        raise backend_error(exc) from exc
    try:
        return await listing(llm, await backend_models(llm))
    finally:
        if owned:
            await llm.close()


@router.get("/api/ollama-models")
async def ollama_models(llm: Backend) -> list[str]:
    return [m.name for m in await backend_models(llm)]


@router.get("/api/models/memory-pressure")
async def memory_pressure(_: Caller, llm: Backend) -> dict[str, Any]:
    total, available = await asyncio.to_thread(machine_memory)
    try:
        loaded = await fetch_loaded(llm)
        backend_ok = True
    except (LLMError, TimeoutError):
        loaded, backend_ok = [], False
    allocated = float(sum((m.size or 0) for m in loaded))
    body = pressure(total, available, allocated, [m.name for m in loaded])
    body["backend_reachable"] = backend_ok
    return body


@router.post("/api/models/unload", responses={403: {}})
async def unload(body: UnloadRequest, _: UnloadAdmin, llm: Backend) -> dict[str, Any]:
    try:
        loaded = await fetch_loaded(llm)
    except (LLMError, TimeoutError) as exc:
        raise backend_error(exc) from exc
    unloaded, failed = await unload_models(llm, [m.name for m in loaded], body.model_type)
    return {
        "unloaded_models": unloaded,
        "failed": failed,
        "message": f"Unloaded {len(unloaded)} model(s)"
        + (f"; {llm.provider} cannot unload {', '.join(failed)}" if failed else ""),
    }
