"""The browser API against real Chromium and local pages (127.0.0.2)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from conftest import Hits, as_user
from fastapi.testclient import TestClient

from browser_service.browser import find_browser_pid, pid_alive
from harvis_testkit import InternalAuthKit


def navigate(client: TestClient, headers: dict[str, str], url: str, **extra: object) -> dict:
    r = client.post("/api/browser/navigate", json={"url": url, **extra}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def interact(client: TestClient, headers: dict[str, str], sid: str, **body: object):
    return client.post("/api/browser/interact", json={"session_id": sid, **body}, headers=headers)


def close(client: TestClient, headers: dict[str, str], sid: str) -> None:
    client.delete(f"/api/browser/session/{sid}", headers=headers)


def browser_pid(client: TestClient, sid: str) -> int:
    session = client.app.state.sessions.sessions[sid]
    pid = find_browser_pid(session.profile_dir / "chromium")
    assert pid is not None
    return pid


def test_form_flow_wait_extract_and_screenshot(app_client: TestClient, kit: InternalAuthKit, site: str) -> None:
    h = as_user(kit, 1)
    nav = navigate(app_client, h, site + "/form")
    sid = nav["session_id"]
    try:
        assert nav["title"] == "Form" and nav["status"] == 200 and len(sid) >= 32
        assert interact(app_client, h, sid, action="type", selector="#name", text="Ada Lovelace").status_code == 200
        r = interact(app_client, h, sid, action="select", selector="//select[@id='color']", label="Green")
        assert r.status_code == 200 and r.json()["result"] == {"value": "g", "label": "Green"}
        r = interact(app_client, h, sid, action="click", selector="#go")
        assert r.status_code == 200 and r.json()["title"] == "Done", r.text
        r = interact(app_client, h, sid, action="extract", what="text", selector="#got")
        assert r.json()["result"]["text"] == "name=Ada+Lovelace&color=g"

        navigate(app_client, h, site + "/late", session_id=sid)
        r = interact(app_client, h, sid, action="wait", selector="#ready", timeout_s=5)
        assert r.status_code == 200, r.text
        assert "Loaded later" in interact(app_client, h, sid, action="extract").json()["result"]["text"]

        shot = app_client.get("/api/browser/screenshot", params={"session_id": sid, "full_page": True}, headers=h)
        assert shot.status_code == 200 and shot.headers["content-type"] == "image/png"
        assert shot.content.startswith(b"\x89PNG")
        el = app_client.get("/api/browser/screenshot", params={"session_id": sid, "selector": "#ready"}, headers=h)
        assert el.status_code == 200 and el.content.startswith(b"\x89PNG") and len(el.content) < len(shot.content)
    finally:
        close(app_client, h, sid)


def test_clear_errors_for_missing_elements_and_bad_input(
    app_client: TestClient, kit: InternalAuthKit, site: str
) -> None:
    h = as_user(kit, 1)
    sid = navigate(app_client, h, site + "/")["session_id"]
    try:
        r = interact(app_client, h, sid, action="click", selector="#nope", timeout_s=0.3)
        assert r.status_code == 404 and "#nope" in r.json()["message"]
        r = interact(app_client, h, sid, action="click", selector="a[", timeout_s=0.3)
        assert r.status_code == 400 and "invalid" in r.json()["message"]
        r = interact(app_client, h, sid, action="wait", text="never there", timeout_s=0.3)
        assert r.status_code == 404 and "never there" in r.json()["message"]
        assert interact(app_client, h, sid, action="click").status_code == 422
        r = interact(app_client, h, sid, action="evaluate", script="return 1")
        assert r.status_code == 403 and "BROWSER_ALLOW_EVAL" in r.json()["message"]
        assert interact(app_client, h, sid, action="press", key="NoSuchKey").status_code == 400
    finally:
        close(app_client, h, sid)


@pytest.mark.parametrize(
    "url, status",
    [
        ("file:///etc/passwd", 400),
        ("chrome://version", 400),
        ("data:text/html,<h1>x</h1>", 400),
        ("javascript:alert(1)", 400),
        ("http://user:pw@127.0.0.2/", 400),
        ("http://127.0.0.1:8000/health", 403),
        ("http://localhost/", 403),
        ("http://169.254.169.254/latest/meta-data/", 403),
        ("http://[::1]/", 403),
    ],
)
def test_forbidden_urls_are_refused_before_any_browser_starts(
    app_client: TestClient, kit: InternalAuthKit, url: str, status: int
) -> None:
    h = as_user(kit, 7)
    r = app_client.post("/api/browser/navigate", json={"url": url}, headers=h)
    assert r.status_code == status, r.text
    assert r.json()["message"]
    assert app_client.get("/api/browser/sessions", headers=h).json()["sessions"] == []


def test_redirects_and_subresources_to_internal_addresses_are_blocked(
    app_client: TestClient, kit: InternalAuthKit, site: str, secret: tuple[str, Hits]
) -> None:
    h = as_user(kit, 1)
    sid = navigate(app_client, h, site + "/")["session_id"]
    try:
        for path, where in (("/to-secret", "127.0.0.1"), ("/to-metadata", "169.254.169.254")):
            r = app_client.post("/api/browser/navigate", json={"url": site + path, "session_id": sid}, headers=h)
            assert r.status_code == 403, r.text
            assert where in r.json()["message"]
        probe = navigate(app_client, h, site + "/probe", session_id=sid)
        assert len(probe["blocked_requests"]) == 2
        assert secret[1].paths == []  # nothing ever reached the internal server
        # the tab was left on about:blank, not on the refused page
        r = app_client.get(f"/api/browser/session/{sid}", headers=h)
        assert r.json()["url"].endswith("/probe")
    finally:
        close(app_client, h, sid)


def test_sessions_are_private_and_limited(app_client: TestClient, kit: InternalAuthKit, site: str) -> None:
    ada, bob, cy = as_user(kit, 11), as_user(kit, 12), as_user(kit, 13)
    a1 = navigate(app_client, ada, site + "/")["session_id"]
    a2 = app_client.post("/api/browser/session", json={}, headers=ada).json()["session_id"]
    try:
        for r in (
            app_client.get(f"/api/browser/session/{a1}", headers=bob),
            interact(app_client, bob, a1, action="extract"),
            app_client.get("/api/browser/screenshot", params={"session_id": a1}, headers=bob),
            app_client.post("/api/screen-analyze", json={"session_id": a1}, headers=bob),
            app_client.post("/api/browser/navigate", json={"url": site + "/", "session_id": a1}, headers=bob),
            app_client.delete(f"/api/browser/session/{a1}", headers=bob),
        ):
            assert r.status_code == 404, r.text
        assert app_client.get("/api/browser/sessions", headers=bob).json()["sessions"] == []
        assert {s["session_id"] for s in app_client.get("/api/browser/sessions", headers=ada).json()["sessions"]} == {
            a1,
            a2,
        }
        # per user: 2
        r = app_client.post("/api/browser/session", json={}, headers=ada)
        assert r.status_code == 429 and "limit" in r.json()["message"]
        # in total: 3
        c1 = app_client.post("/api/browser/session", json={}, headers=cy).json()["session_id"]
        r = app_client.post("/api/browser/navigate", json={"url": site + "/"}, headers=bob)
        assert r.status_code == 429 and r.headers["retry-after"]
        close(app_client, cy, c1)
    finally:
        close(app_client, ada, a1)
        close(app_client, ada, a2)


def test_a_crashed_browser_is_reported_and_recreated(app_client: TestClient, kit: InternalAuthKit, site: str) -> None:
    h = as_user(kit, 21)
    sid = navigate(app_client, h, site + "/")["session_id"]
    try:
        os.kill(browser_pid(app_client, sid), signal.SIGKILL)
        t0 = time.monotonic()
        r = interact(app_client, h, sid, action="extract")
        assert r.status_code == 409 and "crashed" in r.json()["message"], r.text
        assert time.monotonic() - t0 < 10
        assert app_client.get(f"/api/browser/session/{sid}", headers=h).json()["state"] == "crashed"
        again = navigate(app_client, h, site + "/two", session_id=sid)
        assert again["recreated"] is True and again["title"] == "Two" and again["session_id"] == sid
    finally:
        close(app_client, h, sid)


def test_a_relaunch_waits_for_the_reapers_teardown(app_client: TestClient, kit: InternalAuthKit, site: str) -> None:
    """The reaper finds the dead browser first and tears it down slowly; a navigate meanwhile
    must not get a new browser whose proxy and profile that teardown then removes."""
    h = as_user(kit, 22)
    sid = navigate(app_client, h, site + "/")["session_id"]
    try:
        old = app_client.app.state.sessions.sessions[sid].browser
        real_close = old.close

        def slow_close() -> None:
            time.sleep(3)
            real_close()

        old.close = slow_close  # runs in a worker thread, as the real one does
        os.kill(browser_pid(app_client, sid), signal.SIGKILL)
        deadline = time.monotonic() + 15
        while app_client.get(f"/api/browser/session/{sid}", headers=h).json()["state"] != "crashed":
            assert time.monotonic() < deadline, "the reaper did not notice the dead browser"
            time.sleep(0.1)
        again = navigate(app_client, h, site + "/two", session_id=sid)
        assert again["recreated"] is True and again["title"] == "Two"
        time.sleep(3)  # past the old teardown's end
        r = interact(app_client, h, sid, action="extract")
        assert r.status_code == 200 and "Two" in r.json()["title"], r.text
        assert navigate(app_client, h, site + "/", session_id=sid)["recreated"] is False
    finally:
        close(app_client, h, sid)


def test_idle_sessions_expire_and_leave_nothing_behind(app_client: TestClient, kit: InternalAuthKit, site: str) -> None:
    h = as_user(kit, 31)
    sid = navigate(app_client, h, site + "/", idle_timeout_s=1)["session_id"]
    session = app_client.app.state.sessions.sessions[sid]
    profile: Path = session.profile_dir
    pid = browser_pid(app_client, sid)
    assert profile.is_dir()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (sid in app_client.app.state.sessions.sessions or profile.exists()):
        time.sleep(0.2)
    assert app_client.get(f"/api/browser/session/{sid}", headers=h).status_code == 404
    assert not profile.exists()
    time.sleep(0.5)
    assert not pid_alive(pid)
