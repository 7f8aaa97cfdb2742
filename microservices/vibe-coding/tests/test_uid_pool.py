"""Sandbox uids: the migration that gives sessions made before the pool a uid of their own,
re-owning a workspace whose session got a new uid, and making sure nothing runs as a uid
before it goes back to the pool."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

import asyncpg
import pytest

from harvis_testkit import create_database, drop_database
from vibe_coding.sandbox.processes import end_all, pids_of
from vibe_coding.workspace import Workspace


def _migration(stem: str) -> str:
    return (resources.files("vibe_coding.migrations") / f"{stem}.sql").read_text()


@pytest.fixture
async def legacy_db() -> AsyncIterator[asyncpg.Connection]:
    """A database with the schema as it was before sandbox uids were allocated."""
    name, dsn = await create_database("harvis_test_vibe_uids")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(_migration("001_sessions"))
        yield conn
    finally:
        await conn.close()
        await drop_database(name)


async def test_migration_keeps_legacy_uids_and_splits_shared_ones(legacy_db: asyncpg.Connection) -> None:
    # Three sessions shared uid 12345 (ids equal mod 60000); one had 0; one a random id.
    shared = [uuid.UUID(int=12_345 + k * 60_000) for k in (2, 0, 1)]
    random_id = uuid.uuid4()
    for age, sid in enumerate([*shared, uuid.UUID(int=0), random_id]):
        await legacy_db.execute(
            "INSERT INTO vibe_sessions (id, user_id, name, language, created_at)"
            " VALUES ($1, 1, 'old', 'python', now() - interval '1 day' + $2 * interval '1 minute')",
            sid,
            age,
        )
    await legacy_db.execute(_migration("002_sandbox_uids"))
    uids = {r["id"]: r["sandbox_uid"] for r in await legacy_db.fetch("SELECT id, sandbox_uid FROM vibe_sessions")}
    assert uids[shared[0]] == 12_345  # the oldest of those sharing keeps it (its files are owned by it)
    assert uids[uuid.UUID(int=0)] == 0 and uids[random_id] == random_id.int % 60_000
    assert len(set(uids.values())) == len(uids)  # the others got free ones
    with pytest.raises(asyncpg.UniqueViolationError):
        await legacy_db.execute(
            "INSERT INTO vibe_sessions (id, user_id, name, language, sandbox_uid) VALUES ($1, 2, 'x', 'python', 0)",
            uuid.uuid4(),
        )


def test_a_session_given_a_new_uid_gets_its_files_reowned(tmp_path: Path) -> None:
    outside = tmp_path / "host-file"
    outside.write_text("not the sandbox's")
    old = Workspace(tmp_path / "root" / "1" / "s", owner=(201_500, 201_500))
    old.create()
    old.write("src/a.py", b"x = 1\n")
    os.symlink(outside, old.root / "link")
    assert os.stat(old.root / "src" / "a.py").st_uid == 201_500

    new = Workspace(old.root, owner=(201_501, 201_501))
    new.ensure()
    for path in (new.root, new.root / "src", new.root / "src" / "a.py", new.root / "link"):
        assert os.lstat(path).st_uid == 201_501 and os.lstat(path).st_gid == 201_501, path
    assert os.stat(outside).st_uid == os.geteuid()  # the link was not followed
    new.ensure()  # already theirs: nothing to do


async def test_nothing_keeps_running_as_a_uid_that_goes_back_to_the_pool() -> None:
    uid = 299_999
    straggler = await asyncio.create_subprocess_exec(
        "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "sleep", "60", start_new_session=True
    )
    try:
        for _ in range(50):
            if pids_of(uid):
                break
            await asyncio.sleep(0.05)
        assert pids_of(uid) == [straggler.pid]
        assert await end_all(uid, grace_s=0.2) is True  # it did not end by itself: killed
        assert pids_of(uid) == [] and await asyncio.wait_for(straggler.wait(), 5) == -9
    finally:
        if straggler.returncode is None:
            straggler.kill()
            await straggler.wait()
