"""Running code or a command in a session's sandbox (python, node, bash)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from harvis_common.core_client import report_audit
from harvis_common.internal_auth import HEADER

from ...metrics import observe_run
from ...sandbox import program_for
from ...store import parse_id
from ..deps import Caller, SessionsDep, known_language, run_program
from ..schemas import ExecuteRequest

log = logging.getLogger("harvis.vibe")
router = APIRouter(tags=["vibe-coding"])


@router.post("/api/vibe/execute")
async def execute(body: ExecuteRequest, caller: Caller, sessions: SessionsDep, request: Request) -> dict[str, Any]:
    lang = known_language(body.language)
    if (body.code is None) == (body.command is None):
        raise HTTPException(400, "Give either code or command")
    if body.timeout > sessions.settings.vibe_exec_timeout_max_s:
        raise HTTPException(400, f"timeout may be at most {sessions.settings.vibe_exec_timeout_max_s} s")
    sid = parse_id(body.session_id)
    if sid is None:
        raise HTTPException(404, "Session not found")
    session_id = str(sid)
    execution_id = str(uuid.uuid4())
    program = program_for(lang, body.code, body.command)
    result = await run_program(sessions, caller, session_id, program, body.timeout)
    observe_run(lang.name, result)
    # core-api's audit trail: a run in the user's sandbox (never the code or its output).
    target = f"{lang.name} session {session_id}"
    report_audit(sessions.settings.core_api_url, request.headers.get(HEADER), "sandbox_run", target, result.status)
    await sessions.store.touch_run(caller.user_id, session_id)
    log.info(
        "execution finished",
        extra={
            "session_id": session_id,
            "execution_id": execution_id,
            "language": lang.name,
            "status": result.status,
            "exit_code": result.exit_code,
            "duration_ms": round(result.duration_s * 1000, 1),
        },
    )
    return {
        "execution_id": execution_id,
        "session_id": session_id,
        "status": result.status,
        "output": result.stdout,
        "error": result.stderr,
        "exit_code": result.exit_code,
        "execution_time": round(result.duration_s, 4),
        "truncated": result.truncated,
        "language": lang.name,
        "backend": sessions.sandbox.name,
    }
