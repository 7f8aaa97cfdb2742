"""The session terminal's WebSocket (protocol and close codes: terminal.py): admitted against
the user's terminal cap before the session is looked up, then bridged to a shell."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from ...capacity import Refused
from ...sandbox import BwrapSandbox
from ...sessions import Sessions
from ...store import parse_id
from ...terminal import serve

router = APIRouter(tags=["vibe-coding"])

CLOSE_REASON_MAX = 120  # a close frame's reason is at most 123 bytes


@router.websocket("/api/vibecoding/container/{session_id}/terminal")
async def terminal(websocket: WebSocket, session_id: str) -> None:
    sessions: Sessions = websocket.app.state.sessions
    identity = websocket.scope.get("state", {}).get("identity")
    await websocket.accept()
    if identity is None:  # the middleware closes before this; never reached
        await websocket.close(4401)
        return
    sid = parse_id(session_id)
    if sid is None:
        await websocket.close(4404, "Session not found")
        return
    # Admitted (counted against the user's cap) before the session is looked up, so a
    # deletion that starts meanwhile finds this terminal and stops it.
    try:
        run = sessions.capacity.admit(identity.user_id, str(sid), "terminal")
    except Refused as exc:
        await websocket.close(1008, exc.message[:CLOSE_REASON_MAX])
        return
    with run:
        row = await sessions.store.get(identity.user_id, str(sid))
        if row is None:
            await websocket.close(4404, "Session not found")
            return
        if not isinstance(sessions.sandbox, BwrapSandbox):
            await websocket.close(4501, f"The {sessions.sandbox.name} backend has no terminal")
            return
        if not run.take_slot_now():
            await websocket.close(4429, "Too many sandboxes are running; try again shortly")
            return
        await serve(websocket, sessions, row, run)
