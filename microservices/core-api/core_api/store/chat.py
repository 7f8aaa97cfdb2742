"""Chat history in PostgreSQL: sessions, messages, and the code blocks found in assistant
answers (saved as `code` artifacts; the artifacts themselves are store/artifacts.py's).

Every method takes the acting user's id and only ever touches that user's rows:
a session id that is missing or someone else's is `None` / `False` here and a
404 in the routes.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

SESSION_COLUMNS = "id, user_id, title, created_at, updated_at, last_message_at, message_count, model_used, is_active"
MESSAGE_COLUMNS = "id, session_id, user_id, role, content, reasoning, model_used, input_type, metadata, created_at"
TITLE_MAX = 200
DEFAULT_TITLE = "New Chat"

_CODE_BLOCK = re.compile(r"```([A-Za-z0-9_+.#-]*)[^\n]*\n(.*?)```", re.S)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def session_dict(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "user_id": row["user_id"],
        "title": row["title"],
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
        "last_message_at": _iso(row["last_message_at"]),
        "message_count": row["message_count"],
        "model_used": row["model_used"],
        "is_active": row["is_active"],
    }


def message_dict(row: asyncpg.Record) -> dict[str, Any]:
    metadata = row["metadata"]
    if isinstance(metadata, str | bytes):
        metadata = orjson.loads(metadata)
    return {
        "id": row["id"],
        "session_id": str(row["session_id"]),
        "user_id": row["user_id"],
        "role": row["role"],
        "content": row["content"],
        "reasoning": row["reasoning"],
        "model_used": row["model_used"],
        "input_type": row["input_type"],
        "metadata": metadata or {},
        "created_at": _iso(row["created_at"]),
    }


def title_from(message: str) -> str:
    """A session title from its first message: the first line, shortened."""
    line = " ".join(message.strip().split())[:60]
    return line or DEFAULT_TITLE


def parse_session_id(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class NewMessage:
    role: str
    content: str
    reasoning: str | None = None
    model_used: str | None = None
    input_type: str = "text"
    metadata: dict[str, Any] | None = None


class ChatStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # ---------------------------------------------------------------- sessions

    async def create_session(
        self, user_id: int, title: str | None = None, model_used: str | None = None, conn: Any = None
    ) -> dict[str, Any]:
        sql = (
            f"INSERT INTO chat_sessions (id, user_id, title, model_used) VALUES ($1, $2, $3, $4)"  # noqa: S608 - constant column lists, values bound
            f" RETURNING {SESSION_COLUMNS}"
        )
        args = (uuid.uuid4(), user_id, (title or DEFAULT_TITLE)[:TITLE_MAX], model_used)
        if conn is not None:
            return session_dict(await conn.fetchrow(sql, *args))
        async with self.pool.acquire() as c:
            return session_dict(await c.fetchrow(sql, *args))

    async def get_session(self, user_id: int, session_id: uuid.UUID | str | None) -> dict[str, Any] | None:
        sid = session_id if isinstance(session_id, uuid.UUID) else parse_session_id(session_id)
        if sid is None:
            return None
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                f"SELECT {SESSION_COLUMNS} FROM chat_sessions WHERE id = $1 AND user_id = $2",  # noqa: S608
                sid,
                user_id,
            )
        return session_dict(row) if row else None

    async def list_sessions(self, user_id: int, limit: int, offset: int) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {SESSION_COLUMNS} FROM chat_sessions WHERE user_id = $1"  # noqa: S608 - constant column lists, values bound
                " ORDER BY last_message_at DESC, created_at DESC, id LIMIT $2 OFFSET $3",
                user_id,
                limit,
                offset,
            )
        return [session_dict(r) for r in rows]

    async def rename(self, user_id: int, session_id: str, title: str) -> dict[str, Any] | None:
        sid = parse_session_id(session_id)
        if sid is None:
            return None
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                f"UPDATE chat_sessions SET title = $3, updated_at = now() WHERE id = $1 AND user_id = $2"  # noqa: S608 - constant column lists, values bound
                f" RETURNING {SESSION_COLUMNS}",
                sid,
                user_id,
                title[:TITLE_MAX],
            )
        return session_dict(row) if row else None

    async def delete_session(self, user_id: int, session_id: str) -> bool:
        sid = parse_session_id(session_id)
        if sid is None:
            return False
        async with self.pool.acquire() as conn:
            status = await conn.execute("DELETE FROM chat_sessions WHERE id = $1 AND user_id = $2", sid, user_id)
        return status.endswith(" 1")

    async def clear_messages(self, user_id: int, session_id: str) -> int | None:
        """Deletes a session's messages; the number deleted, or None if not the user's session."""
        sid = parse_session_id(session_id)
        if sid is None:
            return None
        async with self.pool.acquire() as conn, conn.transaction():
            found = await conn.fetchval(
                "UPDATE chat_sessions SET message_count = 0, updated_at = now() WHERE id = $1 AND user_id = $2"
                " RETURNING id",
                sid,
                user_id,
            )
            if found is None:
                return None
            status = await conn.execute("DELETE FROM chat_messages WHERE session_id = $1", sid)
        return int(status.split()[-1])

    # ---------------------------------------------------------------- messages

    async def messages(
        self, user_id: int, session_id: str, limit: int, offset: int
    ) -> tuple[dict[str, Any], list[dict[str, Any]], int] | None:
        """(session, messages oldest first, total) or None when not the user's session."""
        session = await self.get_session(user_id, session_id)
        if session is None:
            return None
        sid = uuid.UUID(session["id"])
        async with self.pool.acquire() as conn:
            total = await conn.fetchval("SELECT count(*) FROM chat_messages WHERE session_id = $1", sid)
            rows = await conn.fetch(
                f"SELECT {MESSAGE_COLUMNS} FROM chat_messages WHERE session_id = $1 ORDER BY id LIMIT $2 OFFSET $3",  # noqa: S608 - constant column lists, values bound
                sid,
                limit,
                offset,
            )
        return session, [message_dict(r) for r in rows], int(total)

    async def recent_messages(self, user_id: int, session_id: str, limit: int) -> list[dict[str, Any]]:
        """The last `limit` messages of the user's session, oldest first (model context)."""
        sid = parse_session_id(session_id)
        if sid is None or limit <= 0:
            return []
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {MESSAGE_COLUMNS} FROM chat_messages WHERE session_id = $1 AND user_id = $2"  # noqa: S608 - constant column lists, values bound
                " ORDER BY id DESC LIMIT $3",
                sid,
                user_id,
                limit,
            )
        return [message_dict(r) for r in reversed(rows)]

    async def add_messages(
        self,
        user_id: int,
        session_id: str | uuid.UUID | None,
        messages: list[NewMessage],
        *,
        create_title: str | None = None,
        model_used: str | None = None,
        create_if_missing: bool = True,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """Append messages to the user's session in one transaction. With
        `create_if_missing`, a missing (or someone else's) session id gets a new
        session instead; without it, that is None. Returns (session, messages)."""
        sid = session_id if isinstance(session_id, uuid.UUID) else parse_session_id(session_id)
        async with self.pool.acquire() as conn, conn.transaction():
            row = None
            if sid is not None:
                row = await conn.fetchrow(
                    "SELECT id FROM chat_sessions WHERE id = $1 AND user_id = $2 FOR UPDATE", sid, user_id
                )
            if row is None:
                if not create_if_missing:
                    return None
                created = await self.create_session(user_id, create_title, model_used, conn=conn)
                sid = uuid.UUID(created["id"])
            saved = []
            for m in messages:
                r = await conn.fetchrow(
                    "INSERT INTO chat_messages (session_id, user_id, role, content, reasoning, model_used,"  # noqa: S608 - constant column lists, values bound
                    " input_type, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)"
                    f" RETURNING {MESSAGE_COLUMNS}",
                    sid,
                    user_id,
                    m.role,
                    m.content,
                    m.reasoning or None,
                    m.model_used,
                    m.input_type,
                    orjson.dumps(m.metadata or {}).decode(),
                )
                saved.append(message_dict(r))
            session_row = await conn.fetchrow(
                "UPDATE chat_sessions SET message_count = message_count + $2, last_message_at = now(),"  # noqa: S608 - constant column lists, values bound
                " updated_at = now(), model_used = COALESCE($3, model_used) WHERE id = $1"
                f" RETURNING {SESSION_COLUMNS}",
                sid,
                len(messages),
                model_used,
            )
            for m in saved:
                if m["role"] == "assistant":
                    await self._save_artifacts(conn, user_id, sid, m)
        return session_dict(session_row), saved

    async def _save_artifacts(self, conn: Any, user_id: int, sid: uuid.UUID, message: dict[str, Any]) -> None:
        for i, (lang, code) in enumerate(_CODE_BLOCK.findall(message["content"])[:20]):
            if not code.strip() or lang == "artifact":  # an artifact's spec: chat makes that one (chat/turn.py)
                continue
            title = f"{lang or 'code'} snippet {i + 1}"
            await conn.execute(
                "INSERT INTO artifacts (id, user_id, session_id, message_id, type, title, language, content)"
                " VALUES ($1, $2, $3, $4, 'code', $5, $6, $7)",
                uuid.uuid4(),
                user_id,
                sid,
                message["id"],
                title,
                lang or None,
                code,
            )

    # ---------------------------------------------------------------- search, stats

    async def search(self, user_id: int, query: str, limit: int) -> list[dict[str, Any]]:
        pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT m.id, m.session_id, m.role, m.content, m.created_at, s.title FROM chat_messages m"
                " JOIN chat_sessions s ON s.id = m.session_id"
                " WHERE m.user_id = $1 AND m.content ILIKE $2"
                " ORDER BY m.created_at DESC, m.id DESC LIMIT $3",
                user_id,
                pattern,
                limit,
            )
        return [
            {
                "message_id": r["id"],
                "session_id": str(r["session_id"]),
                "session_title": r["title"],
                "role": r["role"],
                "content": r["content"],
                "created_at": _iso(r["created_at"]),
            }
            for r in rows
        ]

    async def search_sessions(self, user_id: int, query: str, limit: int) -> list[dict[str, Any]]:
        pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {SESSION_COLUMNS} FROM chat_sessions WHERE user_id = $1 AND title ILIKE $2"  # noqa: S608
                " ORDER BY last_message_at DESC LIMIT $3",
                user_id,
                pattern,
                limit,
            )
        return [session_dict(r) for r in rows]

    async def stats(self, user_id: int) -> dict[str, Any]:
        async with self.pool.acquire() as conn:
            s = await conn.fetchrow(
                "SELECT count(*) AS sessions, count(*) FILTER (WHERE is_active) AS active,"
                " max(last_message_at) AS last_activity FROM chat_sessions WHERE user_id = $1",
                user_id,
            )
            m = await conn.fetchrow(
                "SELECT count(*) AS messages, count(*) FILTER (WHERE role = 'user') AS user_messages,"
                " count(*) FILTER (WHERE role = 'assistant') AS assistant_messages,"
                " count(*) FILTER (WHERE input_type = 'voice') AS voice_messages"
                " FROM chat_messages WHERE user_id = $1",
                user_id,
            )
            models = await conn.fetch(
                "SELECT model_used, count(*) AS n FROM chat_messages WHERE user_id = $1 AND role = 'assistant'"
                " AND model_used IS NOT NULL GROUP BY model_used ORDER BY n DESC LIMIT 10",
                user_id,
            )
        sessions = int(s["sessions"])
        messages = int(m["messages"])
        return {
            "total_sessions": sessions,
            "active_sessions": int(s["active"]),
            "total_messages": messages,
            "user_messages": int(m["user_messages"]),
            "assistant_messages": int(m["assistant_messages"]),
            "voice_messages": int(m["voice_messages"]),
            "average_messages_per_session": round(messages / sessions, 2) if sessions else 0.0,
            "models_used": {r["model_used"]: int(r["n"]) for r in models},
            "last_activity": _iso(s["last_activity"]),
        }
