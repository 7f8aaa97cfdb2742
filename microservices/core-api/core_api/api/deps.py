"""What core-api's routes depend on: the caller (a user's token, or a service sending back a
user's forwarded internal token), the admin check, the chat quota, and the objects the
lifespan put on app.state (app.py)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from harvis_common.internal_auth import HEADER, Identity
from harvis_common.llm import LLMError, LLMTimeout, LLMUnavailable, ModelInfo
from harvis_common.quotas import charge

from ..artifacts.service import Artifacts
from ..auth.client_ip import client_ip
from ..auth.context import AUTH_UNAVAILABLE, STATE_RETRY_AFTER_S, Authenticator, AuthUser, token_from_headers
from ..auth.service import AuthService
from ..auth.user_state import StateUnavailable
from ..chat.backend import LLMBackend, fetch_models
from ..chat.key_cipher import KeyCipher
from ..chat.knowledge import Grounding, KnowledgeClient
from ..chat.provider_keys import backend_for
from ..chat.quotas import CHAT_TURNS
from ..chat.turn import BackendFor, KnowledgeSearch
from ..internal.callers import UNAUTHORIZED, InternalCaller, InternalTokenChecker
from ..settings import Settings
from ..store import preferences
from ..store.chat import ChatStore

CREDENTIALS_ERROR = "Could not validate credentials"
ADMIN_ONLY = "This needs an administrator account"

# ---------------------------------------------------------------- users


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


Service = Annotated[AuthService, Depends(auth_service)]
Caller = Annotated[AuthUser, Depends(current_user)]
Admin = Annotated[AuthUser, Depends(admin_only())]


def caller_ip(request: Request, auth: AuthService) -> str:
    """The client's address for per-IP limits (`auth.client_ip`: X-Real-IP only from our nginx)."""
    peer = request.client.host if request.client else None
    return client_ip(peer, request.headers.get("x-real-ip"), auth.trusted_proxies)


# ---------------------------------------------------------------- services (/internal/…)


def internal_caller(request: Request) -> InternalCaller:
    """The service sending back a user's forwarded X-Internal-Auth (`internal.callers`), else 401."""
    checker: InternalTokenChecker | None = getattr(request.app.state, "internal_checker", None)
    if checker is None:
        raise HTTPException(401, UNAUTHORIZED)
    caller = checker.verify(request.headers.get(HEADER))
    state = request.scope.setdefault("state", {})
    state["user_id"] = caller.identity.user_id  # for the access log and the audit trail
    state["internal_service"] = caller.service  # for the audit trail (gateway/proxy.py)
    return caller


def internal_identity(request: Request) -> Identity:
    return internal_caller(request).identity


Internal = Annotated[InternalCaller, Depends(internal_caller)]  # the service and the user it acts for
InternalUser = Annotated[Identity, Depends(internal_identity)]  # only the user


# ---------------------------------------------------------------- chat


def chat_store(request: Request) -> ChatStore:
    return request.app.state.chat_store


def llm_backend(request: Request) -> LLMBackend:
    """The server's own backend (not a user's key's: `backend_for`)."""
    return request.app.state.llm


Store = Annotated[ChatStore, Depends(chat_store)]
Backend = Annotated[LLMBackend, Depends(llm_backend)]


def chat_settings(request: Request) -> Settings:
    return request.app.state.chat_settings


def chat_state(request: Request) -> tuple[ChatStore, BackendFor, set[asyncio.Task[Any]]]:
    """The store, how to find a user's backend (their own key's, or the server's), and the
    background tasks."""
    state = request.app.state
    return state.chat_store, functools.partial(backend_for, state), state.background_tasks


async def charge_chat_turn(request: Request, user: AuthUser) -> None:
    """Count one turn against the user's CHAT_TURNS_PER_HOUR (`chat.quotas`), /api/chat and
    /api/vision-chat together; over it, a JSON 429 + Retry-After."""
    await charge(request.app.state.chat_quotas, user.id, CHAT_TURNS)


def knowledge_search(request: Request, user: AuthUser, wanted: bool | None) -> KnowledgeSearch:
    """The turn's knowledge-base search (`chat.knowledge`): the relevant excerpts when the
    request's flag (or, without one, the user's preference, read only once the stream has
    started) asks for grounding; None when it doesn't."""
    state = request.app.state
    client: KnowledgeClient = state.knowledge

    async def search(question: str) -> Grounding | None:
        use = wanted if wanted is not None else await preferences.use_knowledge_base(state.pool, user.id)
        if not use:
            return None
        return await client.search(getattr(state, "internal_signer", None), user, question)

    return search


def key_cipher(request: Request) -> KeyCipher:
    cipher = request.app.state.key_cipher
    if cipher is None:
        raise HTTPException(503, "API key storage is not configured (API_KEY_ENCRYPTION_KEY is not set)")
    return cipher


def backend_error(exc: Exception) -> HTTPException:
    """503 when the backend is down or silent, 502 when it answered with an error (or the
    user's own stored key or URL can't be used: the message names it)."""
    if isinstance(exc, LLMError):
        return HTTPException(503 if isinstance(exc, (LLMUnavailable, LLMTimeout)) else 502, exc.message)
    return HTTPException(503, "The language model backend did not answer in time")


async def backend_models(llm: LLMBackend) -> list[ModelInfo]:
    """The backend's models, or the 502/503 saying why not."""
    try:
        return await fetch_models(llm)
    except (LLMError, TimeoutError) as exc:
        raise backend_error(exc) from exc


# ---------------------------------------------------------------- artifacts


def artifacts(request: Request) -> Artifacts:
    return request.app.state.artifacts


ArtifactsDep = Annotated[Artifacts, Depends(artifacts)]
