"""/api/browser/sessions and /api/browser/session[/{id}]: list, open, inspect and close
the caller's browser sessions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from ..deps import Caller, Manager
from ..schemas import SessionIn

router = APIRouter()


@router.get("/api/browser/sessions")
async def list_sessions(identity: Caller, mgr: Manager) -> dict[str, Any]:
    return {"sessions": [s.public() for s in mgr.list(identity.user_id)], "limits": mgr.stats()}


@router.post("/api/browser/session")
async def create_session(identity: Caller, mgr: Manager, body: SessionIn | None = None) -> dict[str, Any]:
    session = await mgr.create(identity.user_id, body.idle_timeout_s if body else None)
    return session.public()


@router.get("/api/browser/session/{session_id}")
async def get_session(session_id: str, identity: Caller, mgr: Manager) -> dict[str, Any]:
    return mgr.get(session_id, identity.user_id).public()


@router.delete("/api/browser/session/{session_id}")
async def close_session(session_id: str, identity: Caller, mgr: Manager) -> dict[str, Any]:
    session = mgr.sessions.get(session_id)
    if session is None or session.user_id != identity.user_id or session.state == "closed":
        raise HTTPException(404, "Browser session not found")
    await mgr.close(session)
    return {"session_id": session_id, "closed": True}
