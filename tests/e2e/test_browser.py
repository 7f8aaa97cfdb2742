"""browser-service end to end, through nginx :9000: a real headless Chromium
driven through a multi-step flow on pages this test serves on 127.0.0.2 (the
only non-public address the fleet's BROWSER_SSRF_ALLOWLIST opens), screenshots and
OCR, per-user isolation, idle expiry, crash recovery and SSRF refusals.

Chromium takes ~2 s to start: each test uses one session (two for isolation)."""

from __future__ import annotations

import base64
import html
import os
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import BASE_URL, User, new_user, wait_for

PAGE_HOST = "127.0.0.2"  # must match BROWSER_SSRF_ALLOWLIST in conftest.E2E_ENV


def _page(title: str, body: str) -> str:
    return f"<!doctype html><html><head><title>{title}</title></head><body>{body}</body></html>"


PAGES = {
    "/": _page("Shop", "<h1>Shop</h1><a id='to-catalog' href='/catalog'>Catalog</a>"),
    "/catalog": _page(
        "Catalog",
        "<table id='items'><thead><tr><th>Item</th><th>Price</th></tr></thead>"
        "<tbody><tr><td>Lamp</td><td>12</td></tr><tr><td>Desk</td><td>80</td></tr></tbody></table>"
        "<a id='to-order' href='/order'>Order</a>",
    ),
    "/order": _page(
        "Order",
        "<form action='/confirm' method='post'><input id='name' name='name'>"
        "<select id='item' name='item'><option value='lamp'>Lamp</option><option value='desk'>Desk</option></select>"
        "<textarea id='note' name='note'></textarea><button id='submit' type='submit'>Send</button></form>",
    ),
    "/dynamic": _page(
        "Dynamic",
        "<div id='slot'>loading…</div><script>setTimeout(() => {"
        "document.getElementById('slot').innerHTML = '<p id=\"late\">Arrived after a delay</p>'}, 1500)</script>",
    ),
    "/ocr": _page(
        "OCR",
        "<div style='font: bold 56px sans-serif; padding: 40px'>Harvis Screen Check</div>"
        "<div style='font: 40px sans-serif; padding: 0 40px'>Order number 4417 confirmed</div>",
    ),
}


class Hits:
    def __init__(self) -> None:
        self.paths: list[str] = []


def _quiet(handler: type[BaseHTTPRequestHandler]) -> type[BaseHTTPRequestHandler]:
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    return handler


@pytest.fixture(scope="module")
def secret() -> Iterator[tuple[str, Hits]]:
    """An "internal" server on 127.0.0.1 that the browser must never reach."""
    hits = Hits()

    class Secret(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.paths.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"internal")

    server = ThreadingHTTPServer(("127.0.0.1", 0), _quiet(Secret))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()


@pytest.fixture(scope="module")
def site(secret: tuple[str, Hits]) -> Iterator[str]:
    secret_url = secret[0]

    class Site(BaseHTTPRequestHandler):
        def _send(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/redirect-internal":
                self._send(302, "", {"Location": f"{secret_url}/admin"})
            elif self.path == "/redirect-metadata":
                self._send(302, "", {"Location": "http://169.254.169.254/latest/meta-data/iam/"})
            elif self.path == "/link-internal":
                self._send(200, _page("Links", f"<a id='bad' href='{secret_url}/clicked'>x</a>"))
            elif self.path == "/probe":
                body = f"<img src='{secret_url}/img'><script>fetch('{secret_url}/fetch').catch(() => 0)</script>"
                self._send(200, _page("Probe", body))
            elif self.path in PAGES:
                self._send(200, PAGES[self.path])
            else:
                self._send(404, _page("Not found", "nothing here"))

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            self._send(200, _page("Confirmed", f"<p id='posted'>{html.escape(body)}</p>"))

    server = ThreadingHTTPServer((PAGE_HOST, 0), _quiet(Site))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://{PAGE_HOST}:{server.server_address[1]}"
    server.shutdown()


# ---------------------------------------------------------------- helpers


def navigate(client: httpx.Client, user: User, url: str, **extra: Any) -> dict[str, Any]:
    r = client.post("/api/browser/navigate", json={"url": url, **extra}, headers=user.bearer)
    assert r.status_code == 200, r.text
    return r.json()


def act(client: httpx.Client, user: User, sid: str, **body: Any) -> httpx.Response:
    return client.post("/api/browser/interact", json={"session_id": sid, **body}, headers=user.bearer)


def ok(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True
    return body


def chromium_pids(sid: str) -> list[int]:
    """Processes of this session's browser (its profile dir carries the session id)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"--user-data-dir=" in cmd and f"session-{sid}".encode() in cmd:
            pids.append(int(entry.name))
    return pids


def main_browser_pid(sid: str) -> int:
    for pid in chromium_pids(sid):
        if b"--type=" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    raise AssertionError(f"no browser process found for session {sid}")


@pytest.fixture
def session_of(client: httpx.Client) -> Iterator[list[tuple[User, str]]]:
    """Sessions a test opened, closed afterwards whatever happened."""
    opened: list[tuple[User, str]] = []
    yield opened
    for user, sid in opened:
        client.delete(f"/api/browser/session/{sid}", headers=user.bearer)


# ---------------------------------------------------------------- the flow


def test_multi_page_flow_with_form_table_and_history(
    client: httpx.Client, user: User, site: str, session_of: list
) -> None:
    nav = navigate(client, user, site + "/")
    sid = nav["session_id"]
    session_of.append((user, sid))
    assert nav["title"] == "Shop" and nav["status"] == 200 and nav["url"] == site + "/"
    assert len(sid) >= 32

    assert ok(act(client, user, sid, action="click", selector="#to-catalog"))["title"] == "Catalog"
    table = ok(act(client, user, sid, action="extract", what="table", selector="#items"))["result"]
    assert table == {"headers": ["Item", "Price"], "rows": [["Lamp", "12"], ["Desk", "80"]]}
    links = ok(act(client, user, sid, action="extract", what="links"))["result"]["links"]
    assert {"text": "Order", "href": site + "/order"} in links

    assert ok(act(client, user, sid, action="click", selector="//a[@id='to-order']", by="xpath"))["title"] == "Order"
    ok(act(client, user, sid, action="type", selector="#name", text="Grace Hopper"))
    ok(act(client, user, sid, action="type", selector="#note", text="fragile"))
    assert ok(act(client, user, sid, action="select", selector="#item", value="desk"))["result"]["label"] == "Desk"
    ok(act(client, user, sid, action="press", selector="#name", key="Enter"))  # submits the form
    done = ok(act(client, user, sid, action="wait", selector="#posted", timeout_s=5))
    assert done["title"] == "Confirmed"
    posted = ok(act(client, user, sid, action="extract", selector="#posted"))["result"]["text"]
    assert posted == "name=Grace+Hopper&item=desk&note=fragile"

    assert ok(act(client, user, sid, action="back"))["title"] == "Order"
    assert ok(act(client, user, sid, action="back"))["title"] == "Catalog"
    assert ok(act(client, user, sid, action="forward"))["title"] == "Order"
    scrolled = ok(act(client, user, sid, action="scroll", to="bottom"))
    assert "scroll_y" in scrolled["result"]

    # unknown element: a clear 4xx naming what was tried
    r = act(client, user, sid, action="click", selector="#does-not-exist", timeout_s=0.5)
    assert r.status_code == 404 and "#does-not-exist" in r.json()["message"]

    listed = client.get("/api/browser/sessions", headers=user.bearer).json()["sessions"]
    assert [s["session_id"] for s in listed] == [sid] and listed[0]["title"] == "Order"


def test_dynamic_content_screenshot_and_ocr(client: httpx.Client, user: User, site: str, session_of: list) -> None:
    nav = navigate(client, user, site + "/dynamic")
    sid = nav["session_id"]
    session_of.append((user, sid))
    r = act(client, user, sid, action="extract", selector="#late", timeout_s=0.2)
    assert r.status_code == 404  # not there yet
    ok(act(client, user, sid, action="wait", text="Arrived after a delay", timeout_s=5))
    assert ok(act(client, user, sid, action="extract", selector="#late"))["result"]["text"] == "Arrived after a delay"

    # navigate can wait for an element itself
    nav = navigate(client, user, site + "/dynamic", session_id=sid, wait_for_selector="#late", timeout_s=5)
    assert nav["title"] == "Dynamic"

    navigate(client, user, site + "/ocr", session_id=sid)
    shot = client.get("/api/browser/screenshot", params={"session_id": sid}, headers=user.bearer)
    assert shot.status_code == 200 and shot.headers["content-type"] == "image/png"
    assert shot.content.startswith(b"\x89PNG\r\n\x1a\n")
    full = client.get("/api/browser/screenshot", params={"session_id": sid, "full_page": "true"}, headers=user.bearer)
    assert full.status_code == 200 and full.content.startswith(b"\x89PNG")

    analysed = client.post("/api/screen-analyze", json={"session_id": sid}, headers=user.bearer)
    assert analysed.status_code == 200, analysed.text
    result = analysed.json()
    assert "Harvis Screen Check" in result["text"]
    assert "Order number 4417 confirmed" in result["text"]
    line = next(e for e in result["elements"] if "Harvis" in e["text"])
    assert line["x"] >= 0 and line["y"] >= 0 and line["width"] > 100 and line["height"] > 20

    # the same screenshot sent as base64 reads the same
    b64 = base64.b64encode(shot.content).decode()
    again = client.post("/api/screen-analyze", json={"image": b64}, headers=user.bearer)
    assert again.status_code == 200 and "Order number 4417 confirmed" in again.json()["text"]
    bad = client.post("/api/screen-analyze", json={"image": "bm90IGFuIGltYWdl"}, headers=user.bearer)
    assert bad.status_code == 400 and bad.json()["message"]


def test_sessions_are_private_to_their_user(client: httpx.Client, site: str, session_of: list) -> None:
    ada, bob = new_user(client), new_user(client)
    a = navigate(client, ada, site + "/")["session_id"]
    session_of.append((ada, a))
    b = navigate(client, bob, site + "/catalog")["session_id"]
    session_of.append((bob, b))
    for r in (
        act(client, bob, a, action="extract"),
        client.get(f"/api/browser/session/{a}", headers=bob.bearer),
        client.get("/api/browser/screenshot", params={"session_id": a}, headers=bob.bearer),
        client.post("/api/screen-analyze", json={"session_id": a}, headers=bob.bearer),
        client.post("/api/browser/navigate", json={"url": site + "/order", "session_id": a}, headers=bob.bearer),
        client.delete(f"/api/browser/session/{a}", headers=bob.bearer),
    ):
        assert r.status_code == 404, r.text
        assert r.json()["message"]
    # ada's browser is untouched, and each sees only their own
    assert ok(act(client, ada, a, action="extract"))["title"] == "Shop"
    assert [s["session_id"] for s in client.get("/api/browser/sessions", headers=bob.bearer).json()["sessions"]] == [b]
    # without a token (a fresh client: signup left a cookie on this one): 401
    with httpx.Client(base_url=BASE_URL) as anonymous:
        assert anonymous.get("/api/browser/sessions").status_code == 401


def test_ssrf_attempts_are_refused(
    client: httpx.Client, user: User, site: str, secret: tuple[str, Hits], session_of: list
) -> None:
    secret_url, hits = secret
    for url, status in (
        ("file:///etc/passwd", 400),
        ("chrome://settings", 400),
        ("data:text/html,<script>alert(1)</script>", 400),
        ("javascript:alert(document.cookie)", 400),
        ("http://127.0.0.1:9000/api/health", 403),
        (secret_url + "/direct", 403),
        ("http://localhost:8000/health", 403),
        ("http://169.254.169.254/latest/meta-data/", 403),
        ("http://[::ffff:127.0.0.1]:8000/", 403),
        ("http://10.0.0.1/", 403),
    ):
        r = client.post("/api/browser/navigate", json={"url": url}, headers=user.bearer)
        assert r.status_code == status, (url, r.text)
        assert r.json()["message"]
    assert client.get("/api/browser/sessions", headers=user.bearer).json()["sessions"] == []

    sid = navigate(client, user, site + "/")["session_id"]
    session_of.append((user, sid))
    # redirects to internal addresses: the proxy refuses the hop, the API says so
    for path, where in (("/redirect-internal", "127.0.0.1"), ("/redirect-metadata", "169.254.169.254")):
        r = client.post("/api/browser/navigate", json={"url": site + path, "session_id": sid}, headers=user.bearer)
        assert r.status_code == 403 and where in r.json()["message"], r.text
    # an in-page link to an internal address
    navigate(client, user, site + "/link-internal", session_id=sid)
    r = act(client, user, sid, action="click", selector="#bad")
    assert r.status_code == 403 and "127.0.0.1" in r.json()["message"], r.text
    # subresources and fetch() from a page
    probe = navigate(client, user, site + "/probe", session_id=sid)
    assert sorted(u.rsplit("/", 1)[1] for u in probe["blocked_requests"]) == ["fetch", "img"]
    # JavaScript evaluation is off by default
    r = act(client, user, sid, action="evaluate", script="return document.title")
    assert r.status_code == 403
    assert hits.paths == [], f"the internal server was reached: {hits.paths}"


def test_idle_sessions_expire(client: httpx.Client, user: User, site: str) -> None:
    sid = navigate(client, user, site + "/", idle_timeout_s=2)["session_id"]
    assert chromium_pids(sid)
    assert client.get(f"/api/browser/session/{sid}", headers=user.bearer).json()["idle_timeout_s"] == 2
    assert wait_for(lambda: not chromium_pids(sid), timeout=15, interval=0.3), "the browser outlived its idle timeout"
    r = client.get(f"/api/browser/session/{sid}", headers=user.bearer)
    assert r.status_code == 404
    assert act(client, user, sid, action="extract").status_code == 404


def test_a_killed_browser_is_detected_and_recreated(
    client: httpx.Client, user: User, site: str, session_of: list
) -> None:
    sid = navigate(client, user, site + "/catalog")["session_id"]
    session_of.append((user, sid))
    os.kill(main_browser_pid(sid), signal.SIGKILL)
    t0 = time.monotonic()
    r = act(client, user, sid, action="extract")
    assert r.status_code == 409 and "crashed" in r.json()["message"], r.text
    assert time.monotonic() - t0 < 15, "crash detection must not hang"
    info = client.get(f"/api/browser/session/{sid}", headers=user.bearer).json()
    assert info["state"] == "crashed" and info["crash_reason"]
    assert client.get("/api/browser/screenshot", params={"session_id": sid}, headers=user.bearer).status_code == 409
    # navigating with the same id starts a fresh browser in the session
    again = navigate(client, user, site + "/order", session_id=sid)
    assert again["recreated"] is True and again["session_id"] == sid and again["title"] == "Order"
    assert ok(act(client, user, sid, action="extract", selector="#name"))["result"]["text"] == ""
    # closing it ends its processes
    assert client.delete(f"/api/browser/session/{sid}", headers=user.bearer).json()["closed"] is True
    assert wait_for(lambda: not chromium_pids(sid), timeout=10)
