"""The `artifacts` table: rows, rendering jobs and the files' bytes (bytea).

The bytes are in PostgreSQL so that every core-api replica can serve every download (no
shared volume to mount, back up or keep in step), and a row's file goes with the row: DELETE,
a user's deletion (cascade) and the expiry sweep leave nothing behind. Files are bounded
(specs.py's limits keep them to a few MiB) and each user's total is capped by
ARTIFACT_STORAGE_QUOTA_MB.

Every read and write names the acting user: another user's artifact is simply not found.
The worker's methods (claim, finish, fail, expire) are the only ones that don't: they act for
whoever owns the job.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from ..artifacts.specs import CODE_TYPES

# What GET /api/artifacts/{id} and the list read (never the file's bytes).
COLUMNS = (
    "id, user_id, session_id, message_id, type, title, language, description, status, error_message,"
    " file_size, mime_type, created_at, updated_at, expires_at"
)
# Give up on a job after this many claims (each a render that never finished: a crash, a restart).
MAX_ATTEMPTS = 3
# NOTIFY'd when a job is made: renderers in other processes (the artifact-renderer container,
# other replicas) LISTEN and start at once instead of at their next poll.
JOBS_CHANNEL = "harvis_artifact_jobs"


class QuotaExceeded(Exception):
    pass


@dataclass(frozen=True)
class Job:
    id: uuid.UUID
    user_id: int
    type: str
    title: str
    spec: dict[str, Any]
    spec_size: int
    attempts: int


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def urls(artifact_id: str, artifact_type: str) -> dict[str, str]:
    """The artifact's URLs in both spellings the front end reads."""
    out: dict[str, str] = {}
    base = f"/api/artifacts/{artifact_id}"
    out["download_url"] = out["downloadUrl"] = f"{base}/download"
    if artifact_type in CODE_TYPES:
        out["preview_url"] = out["previewUrl"] = f"{base}/preview"
    return out


def artifact_dict(row: asyncpg.Record) -> dict[str, Any]:
    aid = str(row["id"])
    out: dict[str, Any] = {
        "id": aid,
        "title": row["title"],
        "type": row["type"],
        "artifact_type": row["type"],
        "status": row["status"],
        "description": row["description"],
        "language": row["language"],
        "error_message": row["error_message"],
        "errorMessage": row["error_message"],
        "file_size": int(row["file_size"]),
        "mime_type": row["mime_type"],
        "session_id": str(row["session_id"]) if row["session_id"] else None,
        "message_id": row["message_id"],
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
        "expires_at": _iso(row["expires_at"]),
    }
    out.update(urls(aid, row["type"]))
    return out


def summary(artifact: dict[str, Any]) -> dict[str, Any]:
    """What the chat's `complete` event and `metadata.artifact` carry."""
    keys = ("id", "type", "artifact_type", "title", "status", "error_message")
    out = {k: artifact[k] for k in keys if k in artifact}
    out.update(urls(artifact["id"], artifact["type"]))
    return out


def filename(title: str, ext: str) -> str:
    """`<title>.<ext>`, safe for a Content-Disposition header's plain `filename=`."""
    stem = "".join(c if c.isalnum() or c in " ._-()" else "_" for c in title).strip(" .") or "artifact"
    return f"{stem[:100]}.{ext}"


class ArtifactStore:
    def __init__(self, pool: asyncpg.Pool, quota_bytes: int, ttl_days: int) -> None:
        self.pool = pool
        self.quota_bytes = quota_bytes
        self.ttl_days = ttl_days

    # ---------------------------------------------------------------- the owner's

    async def usage(self, user_id: int, conn: Any | None = None) -> int:
        sql = "SELECT COALESCE(sum(file_size + spec_size + octet_length(content)), 0) FROM artifacts WHERE user_id = $1"
        if conn is not None:
            return int(await conn.fetchval(sql, user_id))
        async with self.pool.acquire() as c:
            return int(await c.fetchval(sql, user_id))

    async def create(
        self,
        user_id: int,
        artifact_type: str,
        title: str,
        spec: dict[str, Any],
        *,
        description: str = "",
        session_id: uuid.UUID | None = None,
    ) -> dict[str, Any]:
        """A `generating` row (the worker's job), made before any rendering starts; QuotaExceeded
        when the user's artifacts already fill their quota."""
        encoded = orjson.dumps(spec)
        async with self.pool.acquire() as conn, conn.transaction():
            # One user's creations queue on their own lock, so the quota check holds for concurrent requests.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('harvis:artifacts'), $1::int)", user_id % 2**31)
            if await self.usage(user_id, conn) + len(encoded) > self.quota_bytes:
                raise QuotaExceeded
            row = await conn.fetchrow(
                "INSERT INTO artifacts (id, user_id, session_id, type, title, description, status, spec, spec_size,"  # noqa: S608 - constant column list, values bound
                " expires_at) VALUES ($1, $2, $3, $4, $5, $6, 'generating', $7::jsonb, $8,"
                " CASE WHEN $9::int > 0 THEN now() + make_interval(days => $9::int) END)"
                f" RETURNING {COLUMNS}",
                uuid.uuid4(),
                user_id,
                session_id,
                artifact_type,
                title,
                description or None,
                encoded.decode(),
                len(encoded),
                self.ttl_days,
            )
            await conn.execute("SELECT pg_notify($1, '')", JOBS_CHANNEL)  # delivered at commit
        return artifact_dict(row)

    async def link_message(self, user_id: int, artifact_id: str, message_id: int) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(
                "UPDATE artifacts SET message_id = $3 WHERE id = $1 AND user_id = $2",
                uuid.UUID(artifact_id),
                user_id,
                message_id,
            )

    async def get(self, user_id: int, artifact_id: uuid.UUID) -> dict[str, Any] | None:
        """The artifact with its `content`: for code types the files (Sandpack's form), for a
        snippet found in an answer its text."""
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                f"SELECT {COLUMNS}, spec, content FROM artifacts WHERE id = $1 AND user_id = $2",  # noqa: S608
                artifact_id,
                user_id,
            )
        if row is None:
            return None
        out = artifact_dict(row)
        out["framework"] = None
        out["content"] = None
        if row["type"] in CODE_TYPES:
            project = code_project(row["spec"], row["content"], row["language"])
            out["content"] = {
                "files": project["files"],
                "entry_file": project["entry_file"],
                "entryFile": project["entry_file"],
                "dependencies": project["dependencies"],
            }
            out["framework"] = project["framework"]
            out["dependencies"] = project["dependencies"]
        return out

    async def list(self, user_id: int, limit: int) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {COLUMNS}, content FROM artifacts WHERE user_id = $1"  # noqa: S608
                " ORDER BY created_at DESC, id LIMIT $2",
                user_id,
                limit,
            )
        out = []
        for r in rows:
            item = artifact_dict(r)
            item["content"] = r["content"]  # a snippet's text ('' for a rendered file)
            out.append(item)
        return out

    async def file(self, user_id: int, artifact_id: uuid.UUID) -> asyncpg.Record | None:
        async with self.pool.acquire() as conn:
            return await conn.fetchrow(
                "SELECT type, title, language, status, file, mime_type, content FROM artifacts"
                " WHERE id = $1 AND user_id = $2",
                artifact_id,
                user_id,
            )

    async def preview(self, user_id: int, artifact_id: uuid.UUID) -> dict[str, Any] | None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT type, spec, content, language FROM artifacts WHERE id = $1 AND user_id = $2",
                artifact_id,
                user_id,
            )
        if row is None:
            return None
        if row["type"] not in CODE_TYPES:
            return {"type": row["type"]}
        return code_project(row["spec"], row["content"], row["language"])

    async def delete(self, user_id: int, artifact_id: uuid.UUID) -> bool:
        async with self.pool.acquire() as conn:
            done = await conn.execute("DELETE FROM artifacts WHERE id = $1 AND user_id = $2", artifact_id, user_id)
        return done != "DELETE 0"

    # ---------------------------------------------------------------- the worker's

    async def claim(self, lease_s: float) -> Job | None:
        """The oldest unclaimed job (or one whose claim is older than the lease: its worker
        died), claimed for this worker; None when there is none. Jobs claimed MAX_ATTEMPTS
        times without finishing are failed here."""
        async with self.pool.acquire() as conn:
            while True:
                row = await conn.fetchrow(
                    "UPDATE artifacts SET claimed_at = now(), attempts = attempts + 1, updated_at = now()"
                    " WHERE id = (SELECT id FROM artifacts WHERE status IN ('pending', 'generating')"
                    " AND (claimed_at IS NULL OR claimed_at < now() - make_interval(secs => $1))"
                    " ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)"
                    " RETURNING id, user_id, type, title, spec, spec_size, attempts",
                    float(lease_s),
                )
                if row is None:
                    return None
                if row["attempts"] > MAX_ATTEMPTS:
                    await self._fail(conn, row["id"], row["attempts"], "Rendering was interrupted too many times")
                    continue
                spec = row["spec"]
                return Job(
                    id=row["id"],
                    user_id=row["user_id"],
                    type=row["type"],
                    title=row["title"],
                    spec=orjson.loads(spec) if isinstance(spec, str) else spec,
                    spec_size=row["spec_size"],
                    attempts=row["attempts"],
                )

    async def finish(self, job: Job, data: bytes, mime_type: str) -> str:
        """Store the file: `ready`, or `failed` if it would take the user past their quota.
        Only the job's current claim may finish it (a stale worker's result is dropped)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext('harvis:artifacts'), $1::int)", job.user_id % 2**31
            )
            used = await self.usage(job.user_id, conn)
            if used + len(data) > self.quota_bytes:
                await self._fail(conn, job.id, job.attempts, "Storage quota exceeded: delete some artifacts first")
                return "failed"
            done = await conn.execute(
                "UPDATE artifacts SET status = 'ready', file = $3, file_size = $4, mime_type = $5,"
                " error_message = NULL, claimed_at = NULL, updated_at = now()"
                " WHERE id = $1 AND attempts = $2 AND status IN ('pending', 'generating')",
                job.id,
                job.attempts,
                data,
                len(data),
                mime_type,
            )
        return "ready" if done != "UPDATE 0" else "gone"

    async def fail(self, job: Job, message: str) -> None:
        async with self.pool.acquire() as conn:
            await self._fail(conn, job.id, job.attempts, message)

    async def _fail(self, conn: Any, artifact_id: uuid.UUID, attempts: int, message: str) -> None:
        await conn.execute(
            "UPDATE artifacts SET status = 'failed', error_message = $3, claimed_at = NULL, updated_at = now()"
            " WHERE id = $1 AND attempts = $2 AND status IN ('pending', 'generating')",
            artifact_id,
            attempts,
            message[:1000],
        )

    async def expire(self, batch: int = 500) -> int:
        """Delete up to `batch` artifacts past their `expires_at`; how many went."""
        async with self.pool.acquire() as conn:
            done = await conn.execute(
                "DELETE FROM artifacts WHERE id IN (SELECT id FROM artifacts WHERE expires_at < now()"
                " LIMIT $1 FOR UPDATE SKIP LOCKED)",
                batch,
            )
        return int(done.split()[-1])


def code_project(spec: Any, content: str, language: str | None) -> dict[str, Any]:
    """Sandpack's view of a code artifact: its spec's files, or a snippet's one file."""
    if isinstance(spec, str):
        spec = orjson.loads(spec)
    if spec:
        return {
            "type": "code",
            "files": spec.get("files", {}),
            "entry_file": spec.get("entry_file") or next(iter(spec.get("files", {"": ""}))),
            "framework": spec.get("framework") or "react",
            "dependencies": spec.get("dependencies") or {},
        }
    name = f"snippet.{language or 'txt'}"
    return {"type": "code", "files": {name: content}, "entry_file": name, "framework": "vanilla", "dependencies": {}}
