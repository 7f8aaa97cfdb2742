"""The internal history API: other services (voice's mic-chat, research-chat) write
into the same chat history as `/api/chat`.

Who may call it and how: `core_api.internal.callers` — a service sends back the
user's forwarded `X-Internal-Auth`, and acts as that token's user here: it can
only write into sessions of the user whose request it is serving (others'
session ids are 404).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field

from ..internal.callers import CallerIdentity as Caller
from ..pg_input import JsonObject, PgText
from .store import TITLE_MAX, ChatStore, NewMessage, title_from

router = APIRouter(prefix="/internal/history", tags=["internal"], include_in_schema=False)


def _store(request: Request) -> ChatStore:
    return request.app.state.chat_store


class MessageIn(BaseModel):
    content: PgText = Field(max_length=100_000)
    reasoning: PgText | None = Field(default=None, max_length=100_000)
    model_used: PgText | None = Field(default=None, max_length=200)
    input_type: Literal["text", "voice", "screen"] = "text"
    metadata: JsonObject | None = None


class ExchangeIn(BaseModel):
    session_id: str | None = Field(default=None, max_length=64)
    title: PgText | None = Field(default=None, max_length=TITLE_MAX)
    user_message: MessageIn
    assistant_message: MessageIn | None = None


class OneMessageIn(MessageIn):
    session_id: str = Field(max_length=64)
    role: Literal["user", "assistant", "system"]


class SessionIn(BaseModel):
    title: PgText = Field(default="New Chat", min_length=1, max_length=TITLE_MAX)
    model_used: PgText | None = Field(default=None, max_length=200)


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
