"""Fixtures for research-service: the fixture web (tests/e2e/sites/research_web.py) on
127.0.0.3, the fake SearXNG and the fake Ollama (tests/fakes/, the real protocols), each
served from a background event loop so both async tests and TestClient can reach them."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests" / "fakes"))
sys.path.insert(0, str(ROOT / "tests" / "e2e" / "sites"))

from fake_ollama import FakeOllama  # noqa: E402
from fake_searxng import FakeSearXNG  # noqa: E402
from research_web import ResearchWeb  # noqa: E402

from harvis_testkit import BackgroundLoop as Background  # noqa: E402

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
