"""HTTP routes: sessions, workspace files, execution, AI assist."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from harvis_common.identity import current_identity
from harvis_common.internal_auth import Identity

from . import assist
from .capacity import Refused
from .sandbox import LANGUAGES, Program, RunResult, language, program_for
from .sandbox.base import MAX_CODE_BYTES
from .service import VibeService
from .store import parse_id, session_json
from .workspace import Workspace, WorkspaceError

log = logging.getLogger("harvis.vibe")
router = APIRouter(tags=["vibe-coding"])

Caller = Annotated[Identity, Depends(current_identity)]

TEMPLATES: dict[str, dict[str, str]] = {
    "python": {"main.py": 'def main() -> None:\n    print("Hello from Harvis")\n\n\nmain()\n'},
    "node": {"main.js": 'console.log("Hello from Harvis");\n'},
    "bash": {"main.sh": '#!/usr/bin/env bash\nset -euo pipefail\necho "Hello from Harvis"\n'},
}


def vibe(request: Request) -> VibeService:
    return request.app.state.vibe


Service = Annotated[VibeService, Depends(vibe)]


def _lang(name: str) -> str:
    lang = language(name)
    if lang is None:
        raise HTTPException(400, f"Unsupported language '{name}': choose one of {', '.join(LANGUAGES)}")
    return lang.name


async def _fs(call: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking workspace operation off the event loop; its errors become 4xx."""
    try:
        return await asyncio.to_thread(call, *args, **kwargs)
    except WorkspaceError as exc:
        raise HTTPException(exc.status, exc.message) from exc
    except assist.AssistError as exc:
        raise HTTPException(exc.status, exc.message) from exc


def _refused(exc: Refused) -> HTTPException:
    return HTTPException(exc.status, exc.message, headers={"Retry-After": str(exc.retry_after_s)})


async def _owned(svc: VibeService, caller: Identity, session_id: str) -> tuple[Any, Workspace]:
    row = await svc.store.get(caller.user_id, session_id)
    if row is None:
        raise HTTPException(404, "Session not found")
    ws = svc.workspace(row)
    await _fs(ws.ensure)
    return row, ws


# ---------------------------------------------------------------- sessions


class SessionCreate(BaseModel):
    name: str = Field(default="Untitled", min_length=1, max_length=200)
    language: str = Field(default="python", max_length=32)
    template: str | None = Field(default=None, max_length=64)


class SessionUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    language: str | None = Field(default=None, max_length=32)


@router.post("/api/vibe/session/create")
@router.post("/api/vibe/sessions")
async def create_session(body: SessionCreate, caller: Caller, svc: Service) -> dict[str, Any]:
    lang = _lang(body.language)
    template = body.template.strip().lower() if body.template else None
    if template not in (None, "", "blank", "empty", "hello", "default"):
        raise HTTPException(400, f"Unknown template '{body.template}': use blank or hello")
    try:
        row = await svc.store.create(
            caller.user_id,
            body.name.strip() or "Untitled",
            lang,
            template or None,
            max_sessions=svc.settings.vibe_max_sessions_per_user,
            uid_count=svc.settings.vibe_sandbox_uid_count,
        )
    except Refused as exc:
        raise _refused(exc) from exc
    ws = svc.workspace(row)
    await _fs(ws.create)
    if template in ("hello", "default"):
        for path, content in TEMPLATES[lang].items():
            await _fs(ws.write, path, content.encode())
    log.info("session created", extra={"session_id": str(row["id"]), "language": lang})
    return session_json(row)


@router.get("/api/vibe/sessions")
async def list_sessions(caller: Caller, svc: Service) -> list[dict[str, Any]]:
    return [session_json(r) for r in await svc.store.list(caller.user_id)]


@router.get("/api/vibe/session/{session_id}")
@router.get("/api/vibe/sessions/{session_id}")
async def get_session(session_id: str, caller: Caller, svc: Service) -> dict[str, Any]:
    row, ws = await _owned(svc, caller, session_id)
    return {**session_json(row), "files": await _fs(ws.tree), "backend": svc.sandbox.name}


@router.patch("/api/vibe/session/{session_id}")
@router.patch("/api/vibe/sessions/{session_id}")
async def update_session(session_id: str, body: SessionUpdate, caller: Caller, svc: Service) -> dict[str, Any]:
    lang = _lang(body.language) if body.language is not None else None
    row = await svc.store.update(caller.user_id, session_id, name=body.name, language=lang)
    if row is None:
        raise HTTPException(404, "Session not found")
    return session_json(row)


@router.delete("/api/vibe/session/{session_id}")
@router.delete("/api/vibe/sessions/{session_id}")
async def delete_session(session_id: str, caller: Caller, svc: Service) -> dict[str, Any]:
    """Hidden from the owner at once; answers once its sandboxes are stopped and its
    workspace is gone (its uid is free once nothing runs as it)."""
    row = await svc.store.begin_delete(caller.user_id, session_id)
    if row is None:
        raise HTTPException(404, "Session not found")
    # Shielded: a client that hangs up must not leave the deletion (and the uid) halfway.
    await asyncio.shield(svc.finish_delete(row))
    return {"deleted": True, "session_id": str(row["id"])}


# ---------------------------------------------------------------- files


class FileWrite(BaseModel):
    path: str = Field(min_length=1, max_length=1024)
    content: str = ""
    encoding: Literal["utf-8", "base64"] = "utf-8"


class FileCreate(FileWrite):
    type: Literal["file", "directory"] = "file"


class FileMove(BaseModel):
    src: str = Field(min_length=1, max_length=1024)
    dst: str = Field(min_length=1, max_length=1024)


def _decode(body: FileWrite) -> bytes:
    if body.encoding == "base64":
        try:
            return base64.b64decode(body.content, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise HTTPException(400, "content is not valid base64") from exc
    return body.content.encode()


@router.get("/api/vibe/files/{session_id}/tree")
async def file_tree(session_id: str, caller: Caller, svc: Service) -> dict[str, Any]:
    _, ws = await _owned(svc, caller, session_id)
    return {"session_id": session_id, "files": await _fs(ws.tree)}


@router.get("/api/vibe/files/{session_id}/read")
async def read_file(
    session_id: str, caller: Caller, svc: Service, path: Annotated[str, Query(min_length=1, max_length=1024)]
) -> dict[str, Any]:
    _, ws = await _owned(svc, caller, session_id)
    data: bytes = await _fs(ws.read, path)
    try:
        return {"path": path, "content": data.decode("utf-8"), "encoding": "utf-8", "size": len(data)}
    except UnicodeDecodeError:
        return {"path": path, "content": base64.b64encode(data).decode(), "encoding": "base64", "size": len(data)}


@router.put("/api/vibe/files/{session_id}/write")
@router.post("/api/vibe/files/{session_id}/write")
async def write_file(session_id: str, body: FileWrite, caller: Caller, svc: Service) -> dict[str, Any]:
    _, ws = await _owned(svc, caller, session_id)
    size = await _fs(ws.write, body.path, _decode(body))
    return {"path": body.path, "size": size}


@router.post("/api/vibe/files/{session_id}/create")
async def create_file(session_id: str, body: FileCreate, caller: Caller, svc: Service) -> dict[str, Any]:
    _, ws = await _owned(svc, caller, session_id)
    if body.type == "directory":
        await _fs(ws.mkdir, body.path)
        return {"path": body.path, "type": "directory"}
    size = await _fs(ws.write, body.path, _decode(body), exclusive=True)
    return {"path": body.path, "type": "file", "size": size}


@router.post("/api/vibe/files/{session_id}/move")
async def move_file(session_id: str, body: FileMove, caller: Caller, svc: Service) -> dict[str, Any]:
    _, ws = await _owned(svc, caller, session_id)
    await _fs(ws.move, body.src, body.dst)
    return {"src": body.src, "dst": body.dst}


@router.delete("/api/vibe/files/{session_id}")
async def delete_file(
    session_id: str, caller: Caller, svc: Service, path: Annotated[str, Query(min_length=1, max_length=1024)]
) -> dict[str, Any]:
    _, ws = await _owned(svc, caller, session_id)
    await _fs(ws.delete, path)
    return {"path": path, "deleted": True}


# ---------------------------------------------------------------- execution


class ExecuteRequest(BaseModel):
    session_id: str
    code: str | None = Field(default=None, max_length=MAX_CODE_BYTES)
    command: str | None = Field(default=None, max_length=10_000)
    language: str = "python"
    timeout: float = Field(default=30, gt=0)


async def _run(svc: VibeService, caller: Identity, session_id: str, program: Program, timeout_s: float) -> RunResult:
    """Run `program` in the session's sandbox: within the user's cap (else 429), in one of the
    server's slots (503 when none frees within VIBE_EXEC_QUEUE_WAIT_S), stopped (409) if the
    session is deleted meanwhile."""
    try:
        # Admitted (counted against the user's cap) before the session is looked up, so a
        # deletion that starts meanwhile finds this execution and stops it.
        with svc.capacity.admit(caller.user_id, session_id, "execution") as run:
            row, _ = await _owned(svc, caller, session_id)
            await run.take_slot(svc.settings.vibe_exec_queue_wait_s)
            running = asyncio.create_task(svc.sandbox.run(svc.target(row), program, svc.limits(timeout_s)))
            run.on_stop(running.cancel)
            try:
                return await running
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if run.stopped and current is not None and not current.cancelling():
                    raise HTTPException(
                        409, "The session was deleted while this ran; the program was stopped"
                    ) from None
                raise
    except Refused as exc:
        raise _refused(exc) from exc


@router.post("/api/vibe/execute")
async def execute(body: ExecuteRequest, caller: Caller, svc: Service) -> dict[str, Any]:
    lang = language(body.language)
    if lang is None:
        raise HTTPException(400, f"Unsupported language '{body.language}': choose one of {', '.join(LANGUAGES)}")
    if (body.code is None) == (body.command is None):
        raise HTTPException(400, "Give either code or command")
    if body.timeout > svc.settings.vibe_exec_timeout_max_s:
        raise HTTPException(400, f"timeout may be at most {svc.settings.vibe_exec_timeout_max_s} s")
    sid = parse_id(body.session_id)
    if sid is None:
        raise HTTPException(404, "Session not found")
    session_id = str(sid)
    execution_id = str(uuid.uuid4())
    result = await _run(svc, caller, session_id, program_for(lang, body.code, body.command), body.timeout)
    await svc.store.touch_run(caller.user_id, session_id)
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
        "backend": svc.sandbox.name,
    }


# ---------------------------------------------------------------- AI assist


class ProposeRequest(BaseModel):
    session_id: str
    instruction: str = Field(min_length=1, max_length=20_000)
    files: list[str] = Field(default_factory=list, max_length=50)


class ApplyRequest(BaseModel):
    session_id: str
    diff: str = Field(min_length=1, max_length=assist.MAX_DIFF_BYTES)


@router.post("/api/vibe/ai/propose")
async def ai_propose(body: ProposeRequest, caller: Caller, svc: Service) -> dict[str, Any]:
    """Ask the model for edits to the files in scope; returns them as a unified diff
    (nothing is written: POST /api/vibe/ai/apply with the diff to apply it)."""
    _, ws = await _owned(svc, caller, body.session_id)
    if svc.model is None:
        raise HTTPException(503, "No language model is configured for AI assist")
    files = await _fs(assist.gather_files, ws, body.files)
    try:
        reply, model = await svc.model.complete(assist.SYSTEM_PROMPT, assist.build_prompt(body.instruction, files))
    except assist.AssistError as exc:
        raise HTTPException(exc.status, exc.message) from exc
    try:
        edits = assist.parse_reply(reply)
    except WorkspaceError as exc:
        raise HTTPException(502, f"The model proposed an edit outside the workspace: {exc.message}") from exc
    diff, changed = await _fs(assist.diff_for_edits, ws, edits)
    return {
        "session_id": body.session_id,
        "diff": diff,
        "files": changed,
        "model": model,
        "explanation": assist.explanation(reply),
    }


@router.post("/api/vibe/ai/apply")
async def ai_apply(body: ApplyRequest, caller: Caller, svc: Service) -> dict[str, Any]:
    _, ws = await _owned(svc, caller, body.session_id)
    applied = await _fs(assist.apply_diff, ws, body.diff)
    return {"session_id": body.session_id, "applied": applied}
