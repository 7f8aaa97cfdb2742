"""Chat: the LLM backend, `/api/chat` (SSE), chat history, models, API keys, and the
internal history API other services write through. `install(app)` adds the routers;
`start(app, settings, pool)` / `stop(app)` run in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg
from fastapi import FastAPI

from harvis_common.ssrf import SSRFPolicy

from ..settings import Settings
from .api_keys import KeyCipher
from .api_keys import router as api_keys_router
from .backend import LLMBackend
from .history_routes import artifacts_router
from .history_routes import router as history_router
from .internal import router as internal_router
from .models_routes import router as models_router
from .quotas import chat_quotas
from .routes import router as chat_router
from .store import ChatStore

log = logging.getLogger("harvis.chat")

ROUTERS = (chat_router, history_router, artifacts_router, models_router, api_keys_router, internal_router)


def install(app: FastAPI) -> None:
    for router in ROUTERS:
        app.include_router(router)


def start(app: FastAPI, settings: Settings, pool: asyncpg.Pool, llm: LLMBackend | None = None) -> None:
    state: Any = app.state
    state.chat_settings = settings
    state.chat_store = ChatStore(pool)
    state.llm = llm or LLMBackend(settings)
    state.background_tasks = set()
    state.chat_quotas = chat_quotas(settings)
    # Users' own api_url (provider_keys.py): only the public internet, as for research and the browser.
    state.provider_url_policy = SSRFPolicy()
    state.key_cipher = KeyCipher(settings.api_key_encryption_key) if settings.api_key_encryption_key else None
    if state.key_cipher is None:
        log.warning("API_KEY_ENCRYPTION_KEY is not set: /api/user/api-keys cannot store keys")
    base = settings.llm_base_url
    log.info(
        "chat backend", extra={"provider": settings.llm_provider, "url": base, "default_model": settings.default_model}
    )


async def stop(app: FastAPI) -> None:
    state: Any = app.state
    tasks = set(getattr(state, "background_tasks", ()))
    if tasks:  # partial answers still being saved
        with contextlib.suppress(Exception):
            await asyncio.wait(tasks, timeout=5)
    llm = getattr(state, "llm", None)
    if llm is not None:
        await llm.close()
    quotas = getattr(state, "chat_quotas", None)
    if quotas is not None:
        await quotas.close()
