"""Fixtures for vibe-coding: a throwaway PostgreSQL database and workspace
directory for the whole run, and the app under TestClient with internal auth.

The database and directory are made when this file loads, before any test
imports the app: the shared contract tests (same pytest run, another
directory) import `vibe_coding.main:app` too and need both. Needs a real
PostgreSQL (`HARVIS_TEST_PG_ADMIN_URL`) and the sandbox's Debian packages
(installed the way the fleet runner does, when missing and root).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from fastapi.testclient import TestClient

from harvis_common.testing import InternalAuthKit
from vibe_coding.app import create_app
from vibe_coding.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
PG_ADMIN_URL = os.environ.get("HARVIS_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SERVICE = "vibe-coding"


def _run(coro: Awaitable[Any]) -> Any:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


DB_NAME = f"harvis_test_vibe_{uuid.uuid4().hex[:10]}"
_run(_admin(f'CREATE DATABASE "{DB_NAME}"'))
DATABASE_URL = urlunsplit(urlsplit(PG_ADMIN_URL)._replace(path="/" + DB_NAME))
# Under the checkout's git-ignored .dev (a sandbox uid must be able to traverse its parents).
(ROOT / ".dev").mkdir(exist_ok=True)
WORKSPACES = Path(tempfile.mkdtemp(prefix="vibe-test-", dir=ROOT / ".dev"))
os.chmod(WORKSPACES, 0o711)  # noqa: S103 - sandbox uids traverse it
KIT = InternalAuthKit()
os.environ.update(
    {
        "DATABASE_URL": DATABASE_URL,
        "VIBE_WORKSPACE_DIR": str(WORKSPACES),
        "VIBE_SANDBOX_BACKEND": "bwrap",
        "LLM_PROVIDER": "ollama",
        "OLLAMA_URL": "http://127.0.0.1:9",  # nothing listens: AI assist answers 503
    }
)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _run(_admin(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
    shutil.rmtree(WORKSPACES, ignore_errors=True)


@pytest.fixture(scope="session")
def kit() -> InternalAuthKit:
    return KIT


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"internal_auth_public_key": KIT.public_key, **overrides}
    return Settings(**values)


@pytest.fixture(scope="session")
def app_client() -> Iterator[TestClient]:
    # Never `vibe_coding.main:app` here: the contract tests import it with their own key.
    with TestClient(create_app(make_settings())) as client:
        yield client


class Caller:
    """A user calling the app through the gateway (their X-Internal-Auth)."""

    def __init__(self, client: TestClient, user_id: int) -> None:
        self.client = client
        self.user_id = user_id
        self.headers = KIT.headers(SERVICE, user_id=user_id, username=f"user{user_id}")

    def get(self, url: str, **kw: Any) -> Any:
        return self.client.get(url, headers=self.headers, **kw)

    def post(self, url: str, **kw: Any) -> Any:
        return self.client.post(url, headers=self.headers, **kw)

    def put(self, url: str, **kw: Any) -> Any:
        return self.client.put(url, headers=self.headers, **kw)

    def patch(self, url: str, **kw: Any) -> Any:
        return self.client.patch(url, headers=self.headers, **kw)

    def delete(self, url: str, **kw: Any) -> Any:
        return self.client.delete(url, headers=self.headers, **kw)

    def session(self, language: str = "python", **kw: Any) -> str:
        r = self.post("/api/vibe/session/create", json={"name": "test", "language": language, **kw})
        assert r.status_code == 200, r.text
        return r.json()["session_id"]

    def run(self, session_id: str, **body: Any) -> dict[str, Any]:
        r = self.post("/api/vibe/execute", json={"session_id": session_id, **body})
        assert r.status_code == 200, r.text
        return r.json()


_next_user = iter(range(1000, 10**6))


@pytest.fixture
def caller(app_client: TestClient) -> Caller:
    return Caller(app_client, next(_next_user))


@pytest.fixture
def other(app_client: TestClient) -> Caller:
    return Caller(app_client, next(_next_user))
