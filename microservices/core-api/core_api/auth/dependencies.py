"""FastAPI dependencies for routes that need the caller (auth routes, chat, …)."""

from __future__ import annotations

from fastapi import HTTPException, Request

from .context import AuthUser, token_from_headers
from .service import AuthService

CREDENTIALS_ERROR = "Could not validate credentials"


def auth_service(request: Request) -> AuthService:
    return request.app.state.auth


def request_token(request: Request) -> str | None:
    return token_from_headers(request.scope["headers"])


# `async` on purpose: FastAPI would run a plain `def` dependency in a worker
# thread, and AuthService's in-memory state belongs to the event loop.
async def current_user(request: Request) -> AuthUser:
    """The authenticated caller (Bearer or cookie), else 401 with `WWW-Authenticate: Bearer`."""
    token = request_token(request)
    user = auth_service(request).authenticate(token) if token else None
    if user is None:
        raise HTTPException(401, CREDENTIALS_ERROR, headers={"WWW-Authenticate": "Bearer"})
    return user
