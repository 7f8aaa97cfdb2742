"""A session's workspace files: tree, read, write, create, move, delete. Paths are
workspace-relative; workspace.py refuses `..`, NUL bytes and links."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Query

from ..deps import Caller, SessionsDep, file_content, fs, owned
from ..schemas import FileCreate, FileMove, FileWrite

router = APIRouter(tags=["vibe-coding"])


@router.get("/api/vibe/files/{session_id}/tree")
async def file_tree(session_id: str, caller: Caller, sessions: SessionsDep) -> dict[str, Any]:
    _, ws = await owned(sessions, caller, session_id)
    return {"session_id": session_id, "files": await fs(ws.tree)}


@router.get("/api/vibe/files/{session_id}/read")
async def read_file(
    session_id: str,
    caller: Caller,
    sessions: SessionsDep,
    path: Annotated[str, Query(min_length=1, max_length=1024)],
) -> dict[str, Any]:
    _, ws = await owned(sessions, caller, session_id)
    data: bytes = await fs(ws.read, path)
    try:
        return {"path": path, "content": data.decode("utf-8"), "encoding": "utf-8", "size": len(data)}
    except UnicodeDecodeError:
        return {"path": path, "content": base64.b64encode(data).decode(), "encoding": "base64", "size": len(data)}


@router.put("/api/vibe/files/{session_id}/write")
@router.post("/api/vibe/files/{session_id}/write")
async def write_file(session_id: str, body: FileWrite, caller: Caller, sessions: SessionsDep) -> dict[str, Any]:
    _, ws = await owned(sessions, caller, session_id)
    size = await fs(ws.write, body.path, file_content(body))
    return {"path": body.path, "size": size}


@router.post("/api/vibe/files/{session_id}/create")
async def create_file(session_id: str, body: FileCreate, caller: Caller, sessions: SessionsDep) -> dict[str, Any]:
    _, ws = await owned(sessions, caller, session_id)
    if body.type == "directory":
        await fs(ws.mkdir, body.path)
        return {"path": body.path, "type": "directory"}
    size = await fs(ws.write, body.path, file_content(body), exclusive=True)
    return {"path": body.path, "type": "file", "size": size}


@router.post("/api/vibe/files/{session_id}/move")
async def move_file(session_id: str, body: FileMove, caller: Caller, sessions: SessionsDep) -> dict[str, Any]:
    _, ws = await owned(sessions, caller, session_id)
    await fs(ws.move, body.src, body.dst)
    return {"src": body.src, "dst": body.dst}


@router.delete("/api/vibe/files/{session_id}")
async def delete_file(
    session_id: str,
    caller: Caller,
    sessions: SessionsDep,
    path: Annotated[str, Query(min_length=1, max_length=1024)],
) -> dict[str, Any]:
    _, ws = await owned(sessions, caller, session_id)
    await fs(ws.delete, path)
    return {"path": path, "deleted": True}
