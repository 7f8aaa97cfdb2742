"""`/api/models`, `/api/ollama-models`, `/api/models/memory-pressure`, `/api/models/unload`:
the LLM backend's real model list and memory, 503 when it is unreachable. `/api/models` is
the user's: listed with their own stored key when it is in use (`provider_keys.py`); the
others are the server's backend."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from harvis_common.llm import LLMError, LLMTimeout, LLMUnavailable, human_size

from ..auth.context import AuthUser
from ..auth.dependencies import admin_only, current_user
from .backend import LLMBackend, machine_memory, pressure
from .provider_keys import backend_for

router = APIRouter(tags=["models"])

User = Annotated[AuthUser, Depends(current_user)]
# The models are loaded once for every user: unloading them is the operator's call. The front
# end's "Clear AI RAM" button shows this message to everyone else.
UNLOAD_ADMIN_ONLY = "Only an administrator can unload the AI models: they are shared by every user"
UnloadAdmin = Annotated[AuthUser, Depends(admin_only(UNLOAD_ADMIN_ONLY))]
LIST_TIMEOUT_S = 8.0  # the front end shows "Offline Mode" after 10 s


def backend_of(request: Request) -> LLMBackend:
    return request.app.state.llm


Backend = Annotated[LLMBackend, Depends(backend_of)]


def _unavailable(exc: Exception) -> HTTPException:
    """503 when the backend is down or silent, 502 when it answered with an error (or the
    user's own stored key or URL can't be used: the message names it)."""
    if isinstance(exc, LLMError):
        return HTTPException(503 if isinstance(exc, (LLMUnavailable, LLMTimeout)) else 502, exc.message)
    return HTTPException(503, "The language model backend did not answer in time")


async def _models(llm: LLMBackend) -> list[Any]:
    try:
        return await asyncio.wait_for(llm.models(), LIST_TIMEOUT_S)
    except (LLMError, TimeoutError) as exc:
        raise _unavailable(exc) from exc


def _display(name: str) -> str:
    base, _, tag = name.partition(":")
    return base if tag in ("", "latest") else f"{base} ({tag})"


@router.get("/api/models", responses={502: {}, 503: {}})
async def list_models(user: User, request: Request) -> dict[str, Any]:
    # The user's own key may see other models (or another server's, with their api_url).
    try:
        llm, owned = await backend_for(request.app.state, user.id)
    except LLMError as exc:
        raise _unavailable(exc) from exc
    try:
        return await _listing(llm)
    finally:
        if owned:
            await llm.close()


async def _listing(llm: LLMBackend) -> dict[str, Any]:
    models = await _models(llm)
    return {
        "models": [
            {
                "name": m.name,
                "displayName": _display(m.name),
                "size": human_size(m.size),
                "status": "available",
                # The front end knows the provider as "ollama"; `backend` names the real one.
                "provider": "ollama",
                "backend": llm.provider,
                "family": m.family,
                "parameter_size": m.parameter_size,
                "quantization": m.quantization,
            }
            for m in models
        ],
        "default_model": (await llm.resolve(None)).model if models else None,
    }


@router.get("/api/ollama-models")
async def ollama_models(llm: Backend) -> list[str]:
    return [m.name for m in await _models(llm)]


@router.get("/api/models/memory-pressure")
async def memory_pressure(_: User, llm: Backend) -> dict[str, Any]:
    total, available = await asyncio.to_thread(machine_memory)
    try:
        loaded = await asyncio.wait_for(llm.client.loaded_models(), LIST_TIMEOUT_S)
        backend_ok = True
    except (LLMError, TimeoutError):
        loaded, backend_ok = [], False
    allocated = float(sum((m.size or 0) for m in loaded))
    body = pressure(total, available, allocated, [m.name for m in loaded])
    body["backend_reachable"] = backend_ok
    return body


class UnloadRequest(BaseModel):
    model_type: str = Field(default="all", max_length=200)


@router.post("/api/models/unload", responses={403: {}})
async def unload(body: UnloadRequest, _: UnloadAdmin, llm: Backend) -> dict[str, Any]:
    try:
        loaded = await asyncio.wait_for(llm.client.loaded_models(), LIST_TIMEOUT_S)
    except (LLMError, TimeoutError) as exc:
        raise _unavailable(exc) from exc
    targets = [m.name for m in loaded if body.model_type in ("all", "llm", "ollama") or m.name == body.model_type]
    unloaded: list[str] = []
    failed: list[str] = []
    for name in targets:
        try:
            if await llm.client.unload(name):
                unloaded.append(name)
            else:
                failed.append(name)
        except LLMError:
            failed.append(name)
    return {
        "unloaded_models": unloaded,
        "failed": failed,
        "message": f"Unloaded {len(unloaded)} model(s)"
        + (f"; {llm.provider} cannot unload {', '.join(failed)}" if failed else ""),
    }
