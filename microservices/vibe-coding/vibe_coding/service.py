"""The pieces a request needs, built once at startup: the session store, the
workspace layout, the sandbox backend and its limits, the AI-assist model."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from .assist import EditModel
from .sandbox import BwrapSandbox, DockerSandbox, Limits, SandboxTarget
from .settings import Settings
from .store import SessionStore
from .workspace import Workspace

MB = 1024 * 1024


class VibeService:
    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        sandbox: BwrapSandbox | DockerSandbox,
        model: EditModel | None = None,
    ) -> None:
        self.settings = settings
        self.store = SessionStore(pool)
        self.pool = pool
        self.sandbox = sandbox
        self.model = model
        self.root = Path(settings.vibe_workspace_dir).resolve()
        self.slots = asyncio.Semaphore(settings.vibe_max_concurrent)
        self.terminals = 0
        self.is_root = os.geteuid() == 0

    def session_uid(self, session_id: str) -> int | None:
        """A uid of the session's own (process limits and file ownership are per uid)
        when the service can switch users; else None (the service's own uid)."""
        if not self.is_root:
            return None
        return self.settings.vibe_sandbox_uid_base + uuid.UUID(session_id).int % 60_000

    def workspace(self, user_id: int, session_id: str) -> Workspace:
        uid = self.session_uid(session_id)
        return Workspace(
            self.root / str(int(user_id)) / str(uuid.UUID(session_id)),
            owner=(uid, uid) if uid is not None else None,
            max_file_bytes=self.settings.vibe_max_file_bytes,
            max_total_bytes=self.settings.vibe_max_workspace_bytes,
        )

    def target(self, user_id: int, session_id: str) -> SandboxTarget:
        ws = self.workspace(user_id, session_id)
        return SandboxTarget(ws.root, self.sandbox.target_uid(self.session_uid(session_id)), session_id)

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

    async def close(self) -> None:
        close = getattr(self.model, "close", None)
        if close is not None:
            await close()

    def describe(self) -> dict[str, Any]:
        return {"backend": self.sandbox.name, "workspace_dir": str(self.root)}
