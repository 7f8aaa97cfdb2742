"""A session's workspace files: tree, read, write, create, move, delete. Paths are
workspace-relative; workspace.py refuses `..`, NUL bytes and links."""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter

from ..deps import FilePath, OwnedWorkspace, file_content, fs
from ..schemas import FileCreate, FileMove, FileWrite

router = APIRouter(tags=["vibe-coding"])


@router.get("/api/vibe/files/{session_id}/tree")
async def file_tree(session_id: str, ws: OwnedWorkspace) -> dict[str, Any]:
    return {"session_id": session_id, "files": await fs(ws.tree)}


@router.get("/api/vibe/files/{session_id}/read")
async def read_file(ws: OwnedWorkspace, path: FilePath) -> dict[str, Any]:
    data: bytes = await fs(ws.read, path)
    try:
        return {"path": path, "content": data.decode("utf-8"), "encoding": "utf-8", "size": len(data)}
    except UnicodeDecodeError:
        return {"path": path, "content": base64.b64encode(data).decode(), "encoding": "base64", "size": len(data)}


@router.put("/api/vibe/files/{session_id}/write")
@router.post("/api/vibe/files/{session_id}/write")
async def write_file(body: FileWrite, ws: OwnedWorkspace) -> dict[str, Any]:
    size = await fs(ws.write, body.path, file_content(body))
    return {"path": body.path, "size": size}


@router.post("/api/vibe/files/{session_id}/create")
async def create_file(body: FileCreate, ws: OwnedWorkspace) -> dict[str, Any]:
    if body.type == "directory":
        await fs(ws.mkdir, body.path)
        return {"path": body.path, "type": "directory"}
    size = await fs(ws.write, body.path, file_content(body), exclusive=True)
    return {"path": body.path, "type": "file", "size": size}


@router.post("/api/vibe/files/{session_id}/move")
async def move_file(body: FileMove, ws: OwnedWorkspace) -> dict[str, Any]:
    await fs(ws.move, body.src, body.dst)
    return {"src": body.src, "dst": body.dst}


@router.delete("/api/vibe/files/{session_id}")
async def delete_file(ws: OwnedWorkspace, path: FilePath) -> dict[str, Any]:
    await fs(ws.delete, path)
    return {"path": path, "deleted": True}
