"""AI assist: the model proposes edits as a unified diff; applying one is a separate,
explicit request (assist.py does the work)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from ... import assist
from ...workspace import WorkspaceError
from ..deps import Caller, SessionsDep, fs, owned
from ..schemas import ApplyRequest, ProposeRequest

router = APIRouter(tags=["vibe-coding"])


@router.post("/api/vibe/ai/propose")
async def ai_propose(body: ProposeRequest, caller: Caller, sessions: SessionsDep) -> dict[str, Any]:
    """Ask the model for edits to the files in scope; returns them as a unified diff
    (nothing is written: POST /api/vibe/ai/apply with the diff to apply it)."""
    _, ws = await owned(sessions, caller, body.session_id)
    if sessions.model is None:
        raise HTTPException(503, "No language model is configured for AI assist")
    files = await fs(assist.gather_files, ws, body.files)
    try:
        reply, model = await sessions.model.complete(assist.SYSTEM_PROMPT, assist.build_prompt(body.instruction, files))
    except assist.AssistError as exc:
        raise HTTPException(exc.status, exc.message) from exc
    try:
        edits = assist.parse_reply(reply)
    except WorkspaceError as exc:
        raise HTTPException(502, f"The model proposed an edit outside the workspace: {exc.message}") from exc
    diff, changed = await fs(assist.diff_for_edits, ws, edits)
    return {
        "session_id": body.session_id,
        "diff": diff,
        "files": changed,
        "model": model,
        "explanation": assist.explanation(reply),
    }


@router.post("/api/vibe/ai/apply")
async def ai_apply(body: ApplyRequest, caller: Caller, sessions: SessionsDep) -> dict[str, Any]:
    _, ws = await owned(sessions, caller, body.session_id)
    applied = await fs(assist.apply_diff, ws, body.diff)
    return {"session_id": body.session_id, "applied": applied}
