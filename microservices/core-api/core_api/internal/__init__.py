"""core-api's internal API for the other services (`/internal/…`, never behind nginx):
who may call it (`callers`) and token exchange (`token_exchange`); the chat history
part lives with the chat (`core_api.chat.internal`).

`install(app)` adds the routes; `start(app, settings)` sets up the checker for
forwarded tokens and the signer (shared with the gateway) in the lifespan."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from harvis_common.internal_auth import InternalSigner

from ..settings import Settings
from .callers import InternalTokenChecker
from .token_exchange import router as token_router


def install(app: FastAPI) -> None:
    app.include_router(token_router)


def start(app: FastAPI, settings: Settings) -> InternalSigner:
    """The signer every internal token is minted with (gateway and token exchange)."""
    state: Any = app.state
    state.internal_signer = InternalSigner(settings.internal_auth_private_key, settings.internal_auth_ttl_s)
    state.internal_checker = InternalTokenChecker(
        settings.internal_auth_private_key,
        settings.internal_history_token_max_age_s,
        settings.internal_auth_leeway_s,
    )
    return state.internal_signer
