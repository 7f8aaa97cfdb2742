"""Fixtures for vibe-coding: a throwaway PostgreSQL database and workspace
directory for the whole run, and the app under TestClient with internal auth.

The database and directory are made when this file loads, before any test
imports the app: the shared contract tests (same pytest run, another
directory) import `vibe_coding.main:app` too and need both. Needs a real
PostgreSQL (`HARVIS_TEST_PG_ADMIN_URL`) and the sandbox's Debian packages
(installed the way the fleet runner does, when missing and root).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from harvis_testkit import InternalAuthKit, create_database_sync, drop_database_sync
from vibe_coding.app import create_app
from vibe_coding.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
SERVICE = "vibe-coding"


DB_NAME, DATABASE_URL = create_database_sync("harvis_test_vibe")
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
    drop_database_sync(DB_NAME)
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


def next_user_id() -> int:
    """A user id no other test of this run uses (the database is shared)."""
    return next(_next_user)


@pytest.fixture
def caller(app_client: TestClient) -> Caller:
    return Caller(app_client, next_user_id())


@pytest.fixture
def other(app_client: TestClient) -> Caller:
    return Caller(app_client, next_user_id())
