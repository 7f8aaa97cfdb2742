"""What the routes depend on: the caller, the sessions on app.state, the session a request
names (another user's is a 404), workspace operations off the event loop with their errors
as 4xx, and a program run within the caller's and the server's sandbox capacity."""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Query, Request

from harvis_common.identity import current_identity
from harvis_common.internal_auth import Identity

from .. import assist
from ..capacity import Refused
from ..sandbox import LANGUAGES, Program, RunResult, language
from ..sandbox.base import Language
from ..sessions import Sessions
from ..workspace import Workspace, WorkspaceError
from .schemas import FileWrite

Caller = Annotated[Identity, Depends(current_identity)]


def sessions_of(request: Request) -> Sessions:
    return request.app.state.sessions


SessionsDep = Annotated[Sessions, Depends(sessions_of)]


def known_language(name: str) -> Language:
    lang = language(name)
    if lang is None:
        raise HTTPException(400, f"Unsupported language '{name}': choose one of {', '.join(LANGUAGES)}")
    return lang


async def fs(call: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking workspace operation off the event loop; its errors become 4xx."""
    try:
        return await asyncio.to_thread(call, *args, **kwargs)
    except WorkspaceError as exc:
        raise HTTPException(exc.status, exc.message) from exc
    except assist.AssistError as exc:
        raise HTTPException(exc.status, exc.message) from exc


def refused(exc: Refused) -> HTTPException:
    return HTTPException(exc.status, exc.message, headers={"Retry-After": str(exc.retry_after_s)})


async def owned(sessions: Sessions, caller: Identity, session_id: str) -> tuple[Any, Workspace]:
    """The caller's session and its workspace (made if missing); anyone else's is a 404."""
    row = await sessions.store.get(caller.user_id, session_id)
    if row is None:
        raise HTTPException(404, "Session not found")
    ws = sessions.workspace(row)
    await fs(ws.ensure)
    return row, ws


async def session_workspace(session_id: str, caller: Caller, sessions: SessionsDep) -> Workspace:
    """The workspace of the caller's session `session_id` (404 when it isn't theirs)."""
    _, ws = await owned(sessions, caller, session_id)
    return ws


OwnedWorkspace = Annotated[Workspace, Depends(session_workspace)]
# A workspace-relative path in the query string.
FilePath = Annotated[str, Query(min_length=1, max_length=1024)]


def file_content(body: FileWrite) -> bytes:
    if body.encoding == "base64":
        try:
            return base64.b64decode(body.content, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise HTTPException(400, "content is not valid base64") from exc
    return body.content.encode()


async def run_program(
    sessions: Sessions, caller: Identity, session_id: str, program: Program, timeout_s: float
) -> RunResult:
    """Run `program` in the session's sandbox: within the user's cap (else 429), in one of the
    server's slots (503 when none frees within VIBE_EXEC_QUEUE_WAIT_S), stopped (409) if the
    session is deleted meanwhile."""
    try:
        # Admitted (counted against the user's cap) before the session is looked up, so a
        # deletion that starts meanwhile finds this execution and stops it.
        with sessions.capacity.admit(caller.user_id, session_id, "execution") as run:
            row, _ = await owned(sessions, caller, session_id)
            await run.take_slot(sessions.settings.vibe_exec_queue_wait_s)
            running = asyncio.create_task(
                sessions.sandbox.run(sessions.target(row), program, sessions.limits(timeout_s))
            )
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
        raise refused(exc) from exc
