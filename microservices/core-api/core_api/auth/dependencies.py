"""FastAPI dependencies for routes that need the caller (auth routes, chat, admin, …)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from .context import Authenticator, AuthUser, token_from_headers
from .service import AuthService
from .user_state import StateUnavailable

CREDENTIALS_ERROR = "Could not validate credentials"
AUTH_UNAVAILABLE = "Sign-in is temporarily unavailable, try again in a moment"
ADMIN_ONLY = "This needs an administrator account"
STATE_RETRY_AFTER_S = "2"


def auth_service(request: Request) -> AuthService:
    return request.app.state.auth


def request_token(request: Request) -> str | None:
    return token_from_headers(request.scope["headers"])


async def current_user(request: Request) -> AuthUser:
    """The authenticated caller (Bearer or cookie) as they are now, else 401 with
    `WWW-Authenticate: Bearer` (also for a user disabled or deleted since the token was issued)."""
    token = request_token(request)
    authenticator: Authenticator = request.app.state.auth
    try:
        user = await authenticator.authenticate(token) if token else None
    except StateUnavailable:
        # Not a 401: the token may be fine, and the front end drops its token on a 401.
        raise HTTPException(503, AUTH_UNAVAILABLE, headers={"Retry-After": STATE_RETRY_AFTER_S}) from None
    if user is None:
        raise HTTPException(401, CREDENTIALS_ERROR, headers={"WWW-Authenticate": "Bearer"})
    request.scope.setdefault("state", {})["user_id"] = user.id  # for the access log
    return user


def admin_only(message: str = ADMIN_ONLY) -> Callable[[AuthUser], Awaitable[AuthUser]]:
    """A dependency: the caller if they are an administrator now, else 403 with `message`."""

    async def admin(user: Annotated[AuthUser, Depends(current_user)]) -> AuthUser:
        if not user.is_admin:
            raise HTTPException(403, message)
        return user

    return admin


require_admin = admin_only()
Admin = Annotated[AuthUser, Depends(require_admin)]
