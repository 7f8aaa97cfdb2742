"""The `users` table: the queries the auth layer, the admin routes and the admin CLI need."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

_COLUMNS = "id, username, email, password_hash, avatar, is_admin, is_active, created_at, last_login_at"


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    email: str
    password_hash: str
    avatar: str | None
    is_admin: bool
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None

    def public(self) -> dict[str, object]:
        """What `/api/auth/me` shows (never the hash)."""
        return {"id": self.id, "username": self.username, "email": self.email, "avatar": self.avatar}

    def for_admin(self) -> dict[str, object]:
        """What the admin views show (never the hash)."""
        return {
            "id": self.id,
            "username": self.username,
            "email": self.email,
            "is_admin": self.is_admin,
            "is_active": self.is_active,
            "created_at": self.created_at.isoformat(),
            "last_login_at": self.last_login_at.isoformat() if self.last_login_at else None,
        }


def _user(row: asyncpg.Record | None) -> User | None:
    return User(**dict(row)) if row is not None else None


async def find_by_email(pool: asyncpg.Pool, email: str) -> User | None:
    return _user(await pool.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE email = $1", email.lower()))  # noqa: S608


async def find_by_id(pool: asyncpg.Pool, user_id: int) -> User | None:
    return _user(await pool.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE id = $1", user_id))  # noqa: S608


async def exists(pool: asyncpg.Pool, username: str, email: str) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM users WHERE lower(username) = lower($1) OR email = $2)",
            username,
            email.lower(),
        )
    )


async def create(
    pool: asyncpg.Pool, *, username: str, email: str, password_hash: str, is_admin: bool = False
) -> User | None:
    """The new user (already counted as logged in), or None if the username or email is taken.

    `ON CONFLICT DO NOTHING` covers both unique indexes, so two simultaneous
    signups for the same name cannot both succeed nor raise.
    """
    row = await pool.fetchrow(
        "INSERT INTO users (username, email, password_hash, is_admin, last_login_at)"  # noqa: S608
        f" VALUES ($1, $2, $3, $4, now()) ON CONFLICT DO NOTHING RETURNING {_COLUMNS}",
        username,
        email.lower(),
        password_hash,
        is_admin,
    )
    return _user(row)


async def record_login(
    pool: asyncpg.Pool, user_id: int, new_password_hash: str | None = None, *, make_admin: bool = False
) -> None:
    """Note the login; store a rehash (the cost factor was raised since the hash was made);
    grant admin when the address is listed in ADMIN_EMAILS (never revokes it)."""
    await pool.execute(
        "UPDATE users SET last_login_at = now(), password_hash = coalesce($2, password_hash),"
        " is_admin = is_admin OR $3,"
        " updated_at = CASE WHEN $2::text IS NOT NULL OR ($3 AND NOT is_admin) THEN now() ELSE updated_at END"
        " WHERE id = $1",
        user_id,
        new_password_hash,
        make_admin,
    )


async def state(pool: asyncpg.Pool, user_id: int, timeout_s: float) -> tuple[bool, bool] | None:
    """(is_active, is_admin) of a user, or None when there is no such user (deleted)."""
    row = await pool.fetchrow("SELECT is_active, is_admin FROM users WHERE id = $1", user_id, timeout=timeout_s)
    return (row["is_active"], row["is_admin"]) if row is not None else None


# -- what administrators change (the CLI by email, the admin routes by id) ------------


async def update(
    pool: asyncpg.Pool, user_id: int, *, is_admin: bool | None = None, is_active: bool | None = None
) -> User | None:
    """Set the flags given (None leaves one as it is); the user after, or None if there is none."""
    row = await pool.fetchrow(
        "UPDATE users SET is_admin = coalesce($2, is_admin), is_active = coalesce($3, is_active),"  # noqa: S608
        f" updated_at = now() WHERE id = $1 RETURNING {_COLUMNS}",
        user_id,
        is_admin,
        is_active,
    )
    return _user(row)


async def delete(pool: asyncpg.Pool, user_id: int) -> bool:
    """Delete the user and (by cascade) their chat history, artifacts, API keys."""
    return (await pool.execute("DELETE FROM users WHERE id = $1", user_id)) == "DELETE 1"


async def page(pool: asyncpg.Pool, limit: int, offset: int) -> tuple[list[User], int]:
    rows = await pool.fetch(f"SELECT {_COLUMNS} FROM users ORDER BY id LIMIT $1 OFFSET $2", limit, offset)  # noqa: S608
    total = await pool.fetchval("SELECT count(*) FROM users")
    return [User(**dict(r)) for r in rows], int(total)


async def privileged(pool: asyncpg.Pool) -> list[User]:
    """Admins and disabled accounts: the ones an operator needs to know about."""
    rows = await pool.fetch(f"SELECT {_COLUMNS} FROM users WHERE is_admin OR NOT is_active ORDER BY id")  # noqa: S608
    return [User(**dict(r)) for r in rows]


async def counts(pool: asyncpg.Pool) -> dict[str, int]:
    row = await pool.fetchrow(
        "SELECT count(*) AS total,"
        " count(*) FILTER (WHERE last_login_at > now() - interval '24 hours') AS active_24h,"
        " count(*) FILTER (WHERE last_login_at > now() - interval '30 days') AS active_30d,"
        " count(*) FILTER (WHERE is_admin) AS admins,"
        " count(*) FILTER (WHERE NOT is_active) AS disabled"
        " FROM users"
    )
    assert row is not None
    return {k: int(v) for k, v in dict(row).items()}
