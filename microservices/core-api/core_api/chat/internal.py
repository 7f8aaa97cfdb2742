"""The internal history API: other services (voice's mic-chat, research-chat) write
into the same chat history as `/api/chat`.

Where it is reachable: under `/internal/history/…`, which is outside `/api/`, so
nginx never forwards it (it sends only `/api/*` and `/health` to core-api) and
the gateway does not proxy it. Only containers on the compose network (or
loopback, natively) can call core-api there directly.

Who may call it: services hold only the internal-auth *public* key, so they cannot
mint tokens. A service sends back the `X-Internal-Auth` token the gateway gave it
for the user's request. core-api verifies it with its own key pair: EdDSA
signature, issuer, `typ`, and an audience that is one of the fleet's services;
it then acts as that token's user — a service can only write into sessions of
the user whose request it is serving (others' session ids are 404).

A mic-chat or research answer can take longer than the token's 60 s lifetime, so
here a token is accepted up to `INTERNAL_HISTORY_TOKEN_MAX_AGE_S` (default 900 s)
after it was issued, instead of until its `exp`. Anything else — no header, a
bad signature, a token for core-api itself, one older than that — is a 401.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from harvis_common.internal_auth import ALGORITHM, HEADER, ISSUER, TOKEN_TYPE, Identity, load_private_key

from ..gateway.routes import SERVICE_PREFIXES
from .store import TITLE_MAX, ChatStore, NewMessage, title_from

router = APIRouter(prefix="/internal/history", tags=["internal"], include_in_schema=False)

AUDIENCES = tuple(sorted(SERVICE_PREFIXES))  # the services the gateway signs tokens for
UNAUTHORIZED = "Missing or invalid internal authentication"


class InternalTokenChecker:
    def __init__(self, private_key: str, max_age_s: int, leeway_s: int = 5) -> None:
        self._public = load_private_key(private_key).public_key()
        self.max_age_s = max_age_s
        self.leeway_s = leeway_s

    def public_key_b64(self) -> str:
        import base64

        raw = self._public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def verify(self, token: str | None) -> tuple[Identity, str]:
        """(identity, audience) of a valid token, else HTTPException 401."""
        if not token:
            raise HTTPException(401, UNAUTHORIZED)
        try:
            claims = jwt.decode(
                token,
                self._public,
                algorithms=[ALGORITHM],
                audience=list(AUDIENCES),
                issuer=ISSUER,
                options={"require": ["exp", "iat", "aud", "iss", "sub", "typ"], "verify_exp": False},
            )
            iat = int(claims["iat"])
            user_id = int(claims["sub"])
        except (jwt.PyJWTError, TypeError, ValueError) as exc:
            raise HTTPException(401, UNAUTHORIZED) from exc
        now = time.time()
        if claims.get("typ") != TOKEN_TYPE or iat > now + self.leeway_s or now - iat > self.max_age_s:
            raise HTTPException(401, UNAUTHORIZED)
        identity = Identity(
            user_id=user_id,
            email=str(claims.get("email", "")),
            username=str(claims.get("username", "")),
            is_admin=bool(claims.get("adm", False)),
            request_id=claims.get("rid"),
        )
        return identity, str(claims["aud"])


def internal_identity(request: Request) -> Identity:
    checker: InternalTokenChecker | None = request.app.state.internal_checker
    if checker is None:
        raise HTTPException(401, UNAUTHORIZED)
    identity, audience = checker.verify(request.headers.get(HEADER))
    request.scope.setdefault("state", {})["user_id"] = identity.user_id
    request.scope["state"]["internal_caller"] = audience
    return identity


Caller = Annotated[Identity, Depends(internal_identity)]


def _store(request: Request) -> ChatStore:
    return request.app.state.chat_store


class MessageIn(BaseModel):
    content: str = Field(max_length=100_000)
    reasoning: str | None = Field(default=None, max_length=100_000)
    model_used: str | None = Field(default=None, max_length=200)
    input_type: Literal["text", "voice", "screen"] = "text"
    metadata: dict[str, Any] | None = None


class ExchangeIn(BaseModel):
    session_id: str | None = Field(default=None, max_length=64)
    title: str | None = Field(default=None, max_length=TITLE_MAX)
    user_message: MessageIn
    assistant_message: MessageIn | None = None


class OneMessageIn(MessageIn):
    session_id: str = Field(max_length=64)
    role: Literal["user", "assistant", "system"]


class SessionIn(BaseModel):
    title: str = Field(default="New Chat", min_length=1, max_length=TITLE_MAX)
    model_used: str | None = Field(default=None, max_length=200)


def _new(role: str, m: MessageIn) -> NewMessage:
    return NewMessage(role, m.content, m.reasoning, m.model_used, m.input_type, m.metadata)


@router.post("/exchange")
async def save_exchange(body: ExchangeIn, caller: Caller, request: Request) -> dict[str, Any]:
    """A user message and (optionally) the answer, in one transaction. With no
    `session_id`, or one that is not this user's, a new session is created."""
    messages = [_new("user", body.user_message)]
    if body.assistant_message is not None:
        messages.append(_new("assistant", body.assistant_message))
    model = body.assistant_message.model_used if body.assistant_message else body.user_message.model_used
    session, saved = await _store(request).add_messages(  # type: ignore[misc]
        caller.user_id,
        body.session_id,
        messages,
        create_title=body.title or title_from(body.user_message.content),
        model_used=model,
    )
    return {
        "session_id": session["id"],
        "session": session,
        "user_message_id": saved[0]["id"],
        "message_id": saved[-1]["id"],
        "messages": saved,
    }


@router.post("/messages")
async def save_message(body: OneMessageIn, caller: Caller, request: Request) -> dict[str, Any]:
    saved = await _store(request).add_messages(
        caller.user_id, body.session_id, [_new(body.role, body)], model_used=body.model_used, create_if_missing=False
    )
    if saved is None:
        raise HTTPException(404, "Chat session not found")
    return saved[1][0]


@router.post("/sessions")
async def create_session(body: SessionIn, caller: Caller, request: Request) -> dict[str, Any]:
    return await _store(request).create_session(caller.user_id, body.title, body.model_used)


@router.get("/sessions/{session_id}/messages")
async def recent_messages(
    session_id: str, caller: Caller, request: Request, limit: Annotated[int, Query(ge=1, le=500)] = 40
) -> dict[str, Any]:
    store = _store(request)
    if await store.get_session(caller.user_id, session_id) is None:
        raise HTTPException(404, "Chat session not found")
    return {"session_id": session_id, "messages": await store.recent_messages(caller.user_id, session_id, limit)}
