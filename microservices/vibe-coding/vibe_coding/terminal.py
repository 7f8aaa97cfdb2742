"""The session terminal: a WebSocket bridged to a shell on a pty inside the sandbox.

Protocol (text frames). Client → server, JSON:
  {"type": "input", "data": "ls\\r"}          keystrokes
  {"type": "resize", "cols": 120, "rows": 40}  window size
  {"type": "ping"}                             answered by nothing; keeps no terminal alive
A frame that is not JSON is taken as input as is. Server → client: the shell's
output as plain text frames (UTF-8, decoded incrementally). Input the shell does not
read waits in a buffer of VIBE_TERMINAL_INPUT_BUFFER_BYTES; beyond that the server
stops reading the client until the shell catches up.

Close codes: 1000 the shell exited; 4408 no input or output for VIBE_TERMINAL_IDLE_S;
4410 the terminal reached VIBE_TERMINAL_MAX_LIFETIME_S; 4413 the workspace outgrew
VIBE_MAX_WORKSPACE_BYTES (the shell is killed); 4404 unknown (or deleted) session;
1008 the user already has VIBE_MAX_TERMINALS_PER_USER terminals open; 4429 the
server's sandbox slots are full; 4501 the backend has no terminal. The route
(api/routes/terminal.py) closes with 4404, 1008, 4429 and 4501 before a shell starts; the
bridge below with the others (4404 there: the session was deleted under the shell).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import logging
import time

import asyncpg
from fastapi import WebSocket, WebSocketDisconnect

from .capacity import Run
from .sandbox.bwrap import watch_quota
from .sandbox.pty import PtyShell
from .sessions import Sessions
from .settings import Settings

log = logging.getLogger("harvis.vibe.terminal")


def _size(value: object, default: int, top: int) -> int:
    try:
        return max(1, min(int(value), top))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return default


async def serve(websocket: WebSocket, sessions: Sessions, row: asyncpg.Record, run: Run) -> None:
    """The session's shell on a pty in its sandbox, bridged to the WebSocket until either ends."""
    sid = str(row["id"])
    ws = sessions.workspace(row)
    await asyncio.to_thread(ws.ensure)
    params = websocket.query_params
    cols, rows = _size(params.get("cols"), 80, 1000), _size(params.get("rows"), 24, 500)
    settings = sessions.settings
    # The shell's CPU limit and the sandbox's other limits; the wall clock is ours (idle, lifetime).
    limits = sessions.limits(float(settings.vibe_terminal_max_lifetime_s))
    target = sessions.target(row)
    shell = await PtyShell.start(
        sessions.sandbox, target, limits, cols, rows, settings.vibe_terminal_input_buffer_bytes
    )
    run.on_stop(shell.kill)  # the session is being deleted
    log.info("terminal opened", extra={"session_id": sid})
    quota = limits.workspace_bytes or 0
    watcher = asyncio.create_task(watch_quota(target.workspace, quota, shell.over_quota)) if quota else None
    try:
        await _bridge(websocket, shell, run, settings)
    finally:
        if watcher is not None:
            watcher.cancel()
        await shell.close()
        log.info("terminal closed", extra={"session_id": sid})


async def _bridge(websocket: WebSocket, shell: PtyShell, run: Run, settings: Settings) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")("replace")

    async def output() -> None:
        while data := await shell.read():
            await websocket.send_text(decoder.decode(data))
        tail = decoder.decode(b"", final=True)
        if tail:
            await websocket.send_text(tail)
        if shell.quota_exceeded:
            await websocket.close(4413, "The workspace exceeded its size limit")
        elif run.stopped:
            await websocket.close(4404, "The session was deleted")
        else:
            await websocket.close(1000, "The shell exited")

    async def input_() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                await shell.write(message.get("bytes") or b"")
                continue
            try:
                event = json.loads(text)
            except ValueError:
                event = None
            if not isinstance(event, dict):
                await shell.write(text.encode())
                continue
            kind = event.get("type")
            if kind == "input" and isinstance(event.get("data"), str):
                await shell.write(event["data"].encode())
            elif kind == "resize":
                shell.resize(_size(event.get("cols"), 80, 1000), _size(event.get("rows"), 24, 500))
            # "ping" and anything else: nothing to do, and no activity either

    async def watchdog() -> None:
        """Close after VIBE_TERMINAL_IDLE_S without input or output, and at the lifetime's end."""
        end_of_life = time.monotonic() + settings.vibe_terminal_max_lifetime_s
        while True:
            now = time.monotonic()
            idle_at = shell.last_activity + settings.vibe_terminal_idle_s
            if now >= end_of_life:
                await websocket.close(4410, "The terminal reached its maximum lifetime")
                return
            if now >= idle_at:
                await websocket.close(4408, "Idle timeout")
                return
            await asyncio.sleep(min(idle_at, end_of_life) - now)

    tasks = [asyncio.create_task(output()), asyncio.create_task(input_()), asyncio.create_task(watchdog())]
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
