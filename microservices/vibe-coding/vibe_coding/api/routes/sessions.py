"""Sessions: create, list, read, rename or change language, delete (each also under /sessions)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, HTTPException

from ...capacity import Refused
from ...sessions import TEMPLATES
from ...store import session_json
from ..deps import Caller, SessionsDep, fs, known_language, owned, refused
from ..schemas import SessionCreate, SessionUpdate

log = logging.getLogger("harvis.vibe")
router = APIRouter(tags=["vibe-coding"])


@router.post("/api/vibe/session/create")
@router.post("/api/vibe/sessions")
async def create_session(body: SessionCreate, caller: Caller, sessions: SessionsDep) -> dict[str, Any]:
    lang = known_language(body.language).name
    template = body.template.strip().lower() if body.template else None
    if template not in (None, "", "blank", "empty", "hello", "default"):
        raise HTTPException(400, f"Unknown template '{body.template}': use blank or hello")
    try:
        row = await sessions.store.create(
            caller.user_id,
            body.name.strip() or "Untitled",
            lang,
            template or None,
            max_sessions=sessions.settings.vibe_max_sessions_per_user,
            uid_count=sessions.settings.vibe_sandbox_uid_count,
        )
    except Refused as exc:
        raise refused(exc) from exc
    ws = sessions.workspace(row)
    await fs(ws.create)
    if template in ("hello", "default"):
        for path, content in TEMPLATES[lang].items():
            await fs(ws.write, path, content.encode())
    log.info("session created", extra={"session_id": str(row["id"]), "language": lang})
    return session_json(row)


@router.get("/api/vibe/sessions")
async def list_sessions(caller: Caller, sessions: SessionsDep) -> list[dict[str, Any]]:
    return [session_json(r) for r in await sessions.store.list(caller.user_id)]


@router.get("/api/vibe/session/{session_id}")
@router.get("/api/vibe/sessions/{session_id}")
async def get_session(session_id: str, caller: Caller, sessions: SessionsDep) -> dict[str, Any]:
    row, ws = await owned(sessions, caller, session_id)
    return {**session_json(row), "files": await fs(ws.tree), "backend": sessions.sandbox.name}


@router.patch("/api/vibe/session/{session_id}")
@router.patch("/api/vibe/sessions/{session_id}")
async def update_session(session_id: str, body: SessionUpdate, caller: Caller, sessions: SessionsDep) -> dict[str, Any]:
    lang = known_language(body.language).name if body.language is not None else None
    row = await sessions.store.update(caller.user_id, session_id, name=body.name, language=lang)
    if row is None:
        raise HTTPException(404, "Session not found")
    return session_json(row)


@router.delete("/api/vibe/session/{session_id}")
@router.delete("/api/vibe/sessions/{session_id}")
async def delete_session(session_id: str, caller: Caller, sessions: SessionsDep) -> dict[str, Any]:
    """Hidden from the owner at once; answers once its sandboxes are stopped and its
    workspace is gone (its uid is free once nothing runs as it)."""
    row = await sessions.store.begin_delete(caller.user_id, session_id)
    if row is None:
        raise HTTPException(404, "Session not found")
    # Shielded: a client that hangs up must not leave the deletion (and the uid) halfway.
    await asyncio.shield(sessions.finish_delete(row))
    return {"deleted": True, "session_id": str(row["id"])}
