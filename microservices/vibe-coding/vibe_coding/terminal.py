"""The session terminal: a WebSocket bridged to a shell on a pty inside the sandbox.

Protocol (text frames). Client → server, JSON:
  {"type": "input", "data": "ls\\r"}          keystrokes
  {"type": "resize", "cols": 120, "rows": 40}  window size
  {"type": "ping"}                             nothing but keeping the terminal from idling out
A frame that is not JSON is taken as input as is. Server → client: the shell's
output as plain text frames (UTF-8, decoded incrementally). The server closes
with 1000 when the shell exits, 4408 after VIBE_TERMINAL_IDLE_S without input, 4413
when the workspace outgrows VIBE_MAX_WORKSPACE_BYTES (the shell is killed),
4404 for an unknown session, 4429 when the sandbox slots are full, 4501 when
the backend has no terminal.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from .sandbox import BwrapSandbox
from .sandbox.bwrap import PtyShell, watch_quota
from .service import VibeService

log = logging.getLogger("harvis.vibe.terminal")
router = APIRouter(tags=["vibe-coding"])

MAX_INPUT = 64 * 1024


def _size(value: object, default: int, top: int) -> int:
    try:
        return max(1, min(int(value), top))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return default


@router.websocket("/api/vibecoding/container/{session_id}/terminal")
async def terminal(websocket: WebSocket, session_id: str) -> None:
    svc: VibeService = websocket.app.state.vibe
    identity = websocket.scope.get("state", {}).get("identity")
    await websocket.accept()
    if identity is None:  # the middleware closes before this; never reached
        await websocket.close(4401)
        return
    row = await svc.store.get(identity.user_id, session_id)
    if row is None:
        await websocket.close(4404, "Session not found")
        return
    if not isinstance(svc.sandbox, BwrapSandbox):
        await websocket.close(4501, f"The {svc.sandbox.name} backend has no terminal")
        return
    if svc.slots.locked():
        await websocket.close(4429, "Too many sandboxes are running; try again shortly")
        return
    sid = str(row["id"])
    ws = svc.workspace(identity.user_id, sid)
    if not ws.root.exists():
        await asyncio.to_thread(ws.create)
    params = websocket.query_params
    cols, rows = _size(params.get("cols"), 80, 1000), _size(params.get("rows"), 24, 500)
    limits = svc.limits(float(svc.settings.vibe_terminal_idle_s))
    async with svc.slots:
        target = svc.target(identity.user_id, sid)
        shell = await PtyShell.start(svc.sandbox, target, limits, cols, rows)
        log.info("terminal opened", extra={"session_id": sid})
        quota = limits.workspace_bytes or 0
        watcher = asyncio.create_task(watch_quota(target.workspace, quota, shell.over_quota)) if quota else None
        try:
            await _bridge(websocket, shell, svc.settings.vibe_terminal_idle_s)
        finally:
            if watcher is not None:
                watcher.cancel()
            await shell.close()
            log.info("terminal closed", extra={"session_id": sid})


async def _bridge(websocket: WebSocket, shell: PtyShell, idle_s: float) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")("replace")

    async def output() -> None:
        while data := await shell.read():
            await websocket.send_text(decoder.decode(data))
        tail = decoder.decode(b"", final=True)
        if tail:
            await websocket.send_text(tail)
        if shell.quota_exceeded:
            await websocket.close(4413, "The workspace exceeded its size limit")
        else:
            await websocket.close(1000, "The shell exited")

    async def input_() -> None:
        while True:
            try:
                message = await asyncio.wait_for(websocket.receive(), idle_s)
            except TimeoutError:
                await websocket.close(4408, "Idle timeout")
                return
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                raw = message.get("bytes") or b""
                shell.write(raw[:MAX_INPUT])
                continue
            try:
                event = json.loads(text)
            except ValueError:
                event = None
            if not isinstance(event, dict):
                shell.write(text.encode()[:MAX_INPUT])
                continue
            kind = event.get("type")
            if kind == "input" and isinstance(event.get("data"), str):
                shell.write(event["data"].encode()[:MAX_INPUT])
            elif kind == "resize":
                shell.resize(_size(event.get("cols"), 80, 1000), _size(event.get("rows"), 24, 500))

    tasks = [asyncio.create_task(output()), asyncio.create_task(input_())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError, Exception):
                await task
        with contextlib.suppress(RuntimeError, Exception):
            await websocket.close(1000)
