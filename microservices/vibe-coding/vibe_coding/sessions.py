"""Sessions on this machine, built once at startup (app.py) and reached by the routes
through api/deps.py: the session store, where each session's workspace is, the uid and
sandbox target its programs run as and the limits they run under, who may run how many
sandboxes, the AI-assist model; and deleting a session, which must leave nothing running
as its uid before the uid goes back to the pool."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from pathlib import Path

import asyncpg

from .assist import EditModel
from .capacity import Capacity
from .sandbox import BwrapSandbox, DockerSandbox, Limits, Program, SandboxTarget
from .sandbox.processes import end_all
from .settings import Settings
from .store import SessionStore
from .workspace import Workspace

log = logging.getLogger("harvis.vibe")
MB = 1024 * 1024

# The files a session made with the "hello" template starts with, per language.
TEMPLATES: dict[str, dict[str, str]] = {
    "python": {"main.py": 'def main() -> None:\n    print("Hello from Harvis")\n\n\nmain()\n'},
    "node": {"main.js": 'console.log("Hello from Harvis");\n'},
    "bash": {"main.sh": '#!/usr/bin/env bash\nset -euo pipefail\necho "Hello from Harvis"\n'},
}


class Sessions:
    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        sandbox: BwrapSandbox | DockerSandbox,
        model: EditModel | None = None,
    ) -> None:
        self.settings = settings
        self.store = SessionStore(pool, settings.replica_ordinal)
        self.pool = pool
        self.sandbox = sandbox
        self.model = model
        self.root = Path(settings.vibe_workspace_dir).resolve()
        self.capacity = Capacity(
            settings.vibe_max_concurrent,
            {
                "execution": settings.vibe_max_concurrent_executions_per_user,
                "terminal": settings.vibe_max_terminals_per_user,
            },
        )
        self.is_root = os.geteuid() == 0

    def session_uid(self, row: asyncpg.Record) -> int | None:
        """The session's own uid (process limits and file ownership are per uid) when the
        service can switch users; else None (the service's own uid)."""
        if not self.is_root:
            return None
        return self.settings.vibe_sandbox_uid_base + int(row["sandbox_uid"])

    @property
    def probe_uid(self) -> int:
        """The readiness probe's uid: the one after the pool, never a session's."""
        return self.settings.vibe_sandbox_uid_base + self.settings.vibe_sandbox_uid_count

    def workspace(self, row: asyncpg.Record) -> Workspace:
        uid = self.session_uid(row)
        return Workspace(
            self.root / str(int(row["user_id"])) / str(uuid.UUID(str(row["id"]))),
            owner=(uid, uid) if uid is not None else None,
            max_file_bytes=self.settings.vibe_max_file_bytes,
            max_total_bytes=self.settings.vibe_max_workspace_bytes,
        )

    def target(self, row: asyncpg.Record) -> SandboxTarget:
        ws = self.workspace(row)
        return SandboxTarget(ws.root, self.sandbox.target_uid(self.session_uid(row)), str(row["id"]))

    def limits(self, timeout_s: float) -> Limits:
        s = self.settings
        return Limits(
            timeout_s=timeout_s,
            memory_bytes=s.vibe_exec_memory_mb * MB,
            max_procs=s.vibe_exec_max_procs,
            cpu_s=s.vibe_exec_cpu_s,
            file_bytes=s.vibe_exec_file_mb * MB,
            output_bytes=s.vibe_exec_output_bytes,
            workspace_bytes=s.vibe_max_workspace_bytes,
        )

    async def finish_delete(self, row: asyncpg.Record) -> None:
        """Everything after the session was hidden from its owner (`store.begin_delete`): stop
        its sandboxes, remove its workspace, make sure nothing runs as its uid, then drop the
        row, which frees the uid for another session."""
        sid = str(row["id"])
        if not await self.capacity.stop_session(sid):
            log.warning("sandboxes of a deleted session did not stop in time", extra={"session_id": sid})
        ws = self.workspace(row)
        try:
            await asyncio.to_thread(ws.destroy)
        except OSError:
            # Without root, directories the code made unwritable stop the removal: open them up
            # from inside the sandbox (links there resolve in the sandbox's view), then retry.
            await self.sandbox.run(self.target(row), Program(("chmod", "-R", "u+rwX", ".")), self.limits(30))
            try:
                await asyncio.to_thread(ws.destroy)
            except OSError:
                log.warning("workspace not fully removed", extra={"session_id": sid, "path": str(ws.root)})
        uid = self.session_uid(row)
        if uid is not None and isinstance(self.sandbox, BwrapSandbox) and not await end_all(uid):
            # Keep the row (and so the uid) until a later start of the service gets rid of it.
            log.error("processes of a deleted session survive; its uid stays reserved", extra={"session_id": sid})
            return
        await self.store.remove(row["id"])

    async def finish_deletions(self) -> None:
        """Deletions a previous run of the service did not finish (it stopped halfway)."""
        for row in await self.store.deleting():
            try:
                await self.finish_delete(row)
            except Exception:
                log.exception("could not finish deleting a session", extra={"session_id": str(row["id"])})

    async def close(self) -> None:
        close = getattr(self.model, "close", None)
        if close is not None:
            await close()
