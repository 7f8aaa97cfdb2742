"""A page whose script never yields blocks every later command of its browser:
the service answers within its timeouts, reports the session as crashed, and a
navigation starts a fresh browser in it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from conftest import as_user, service_app
from fastapi.testclient import TestClient

from harvis_testkit import InternalAuthKit


@pytest.fixture(scope="module")
def quick(kit: InternalAuthKit, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with service_app(kit, tmp_path_factory.mktemp("profiles"), BROWSER_PAGE_LOAD_TIMEOUT_S="3") as client:
        yield client


def test_a_hung_page_never_hangs_the_api(quick: TestClient, kit: InternalAuthKit, site: str) -> None:
    h = as_user(kit, 61)
    sid = quick.post("/api/browser/navigate", json={"url": site + "/"}, headers=h).json()["session_id"]
    try:
        t0 = time.monotonic()
        r = quick.post("/api/browser/navigate", json={"url": site + "/hang", "session_id": sid}, headers=h)
        assert r.status_code == 504 and "did not load" in r.json()["message"]
        r = quick.post("/api/browser/interact", json={"session_id": sid, "action": "extract"}, headers=h)
        assert r.status_code == 409 and "stopped responding" in r.json()["message"], r.text
        assert time.monotonic() - t0 < 20
        r = quick.post("/api/browser/navigate", json={"url": site + "/two", "session_id": sid}, headers=h)
        assert r.status_code == 200 and r.json()["recreated"] is True and r.json()["title"] == "Two"
    finally:
        quick.delete(f"/api/browser/session/{sid}", headers=h)
