"""`/api/chat-history/…`: the caller's own records only (another user's session id answers
404, exactly like a missing one). The artifacts' list is in artifacts.py."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from ...pg_input import PgText
from ...query_bounds import Offset
from ...store.chat import NewMessage
from ..deps import Caller, Store
from ..schemas import MessageCreate, SessionCreate, TitleUpdate

router = APIRouter(prefix="/api/chat-history", tags=["chat-history"])

NOT_FOUND = "Chat session not found"


@router.get("/sessions")
async def list_sessions(
    user: Caller,
    store: Store,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    return await store.list_sessions(user.id, limit, offset)


@router.post("/sessions")
async def create_session(body: SessionCreate, user: Caller, store: Store) -> dict[str, Any]:
    return await store.create_session(user.id, body.title.strip() or "New Chat", body.model_used)


@router.get("/sessions/{session_id}")
async def get_session(
    session_id: str,
    user: Caller,
    store: Store,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    found = await store.messages(user.id, session_id, limit, offset)
    if found is None:
        raise HTTPException(404, NOT_FOUND)
    session, messages, total = found
    return {"messages": messages, "session": session, "total_count": total, "has_more": offset + len(messages) < total}


@router.put("/sessions/{session_id}/title")
async def rename_session(session_id: str, body: TitleUpdate, user: Caller, store: Store) -> dict[str, Any]:
    session = await store.rename(user.id, session_id, body.title.strip() or "New Chat")
    if session is None:
        raise HTTPException(404, NOT_FOUND)
    return session


@router.delete("/sessions/{session_id}")
async def delete_session(session_id: str, user: Caller, store: Store) -> dict[str, Any]:
    if not await store.delete_session(user.id, session_id):
        raise HTTPException(404, NOT_FOUND)
    return {"success": True, "session_id": session_id, "message": "Session deleted"}


@router.delete("/sessions/{session_id}/messages")
async def clear_messages(session_id: str, user: Caller, store: Store) -> dict[str, Any]:
    deleted = await store.clear_messages(user.id, session_id)
    if deleted is None:
        raise HTTPException(404, NOT_FOUND)
    return {"success": True, "session_id": session_id, "deleted_count": deleted}


@router.post("/messages")
async def add_message(body: MessageCreate, user: Caller, store: Store) -> dict[str, Any]:
    saved = await store.add_messages(
        user.id,
        body.session_id,
        [NewMessage(body.role, body.content, body.reasoning, body.model_used, body.input_type, body.metadata)],
        model_used=body.model_used,
        create_if_missing=False,
    )
    if saved is None:
        raise HTTPException(404, NOT_FOUND)
    return saved[1][0]


@router.get("/search")
async def search(
    user: Caller,
    store: Store,
    query: Annotated[PgText, Query(min_length=1, max_length=500)],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """Messages whose text contains `query` (newest first), and sessions whose title does."""
    results = await store.search(user.id, query, limit)
    sessions = await store.search_sessions(user.id, query, limit)
    return {"query": query, "results": results, "sessions": sessions, "total": len(results)}


@router.get("/stats")
async def stats(user: Caller, store: Store) -> dict[str, Any]:
    return await store.stats(user.id)
