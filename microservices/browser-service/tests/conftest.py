"""Fixtures for browser-service tests: the real app (real Chromium, real
Tesseract) behind TestClient, and local web pages on 127.0.0.2 (the only
non-public address the SSRF allowlist opens) plus a "secret" server on
127.0.0.1 that must never be reached."""

from __future__ import annotations

import contextlib
import html
import os
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from harvis_testkit import InternalAuthKit

PAGES = {
    "/": "<html><head><title>Home</title></head><body><h1>Hello</h1><a id='next' href='/two'>next</a></body></html>",
    "/two": "<html><head><title>Two</title></head><body><p id='p'>Second page</p></body></html>",
    "/form": (
        "<html><head><title>Form</title></head><body><form action='/submit' method='post'>"
        "<input id='name' name='name'><select id='color' name='color'><option value='r'>Red</option>"
        "<option value='g'>Green</option></select><button id='go' type='submit'>Go</button></form></body></html>"
    ),
    "/hang": "<html><head><title>Hang</title></head><body><script>while (true) {}</script></body></html>",
    "/late": (
        "<html><head><title>Late</title></head><body><div id='box'></div><script>setTimeout(() => {"
        "document.getElementById('box').innerHTML = '<span id=\"ready\">Loaded later</span>'}, 800)</script>"
        "</body></html>"
    ),
}


class Hits:
    def __init__(self) -> None:
        self.paths: list[str] = []


def _serve(host: str, handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, threading.Thread]:
    server = ThreadingHTTPServer((host, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture(scope="session")
def secret() -> Iterator[tuple[str, Hits]]:
    hits = Hits()

    class Secret(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.paths.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"internal secret")

        def log_message(self, *args: Any) -> None:
            pass

    server, _ = _serve("127.0.0.1", Secret)
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()


@pytest.fixture(scope="session")
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
            if self.path == "/to-secret":
                self._send(302, "", {"Location": secret_url + "/redirected"})
            elif self.path == "/to-metadata":
                self._send(302, "", {"Location": "http://169.254.169.254/latest/meta-data/"})
            elif self.path == "/probe":
                self._send(
                    200,
                    f"<html><head><title>Probe</title></head><body><img src='{secret_url}/img'>"
                    f"<script>fetch('{secret_url}/fetch').catch(() => 0)</script></body></html>",
                )
            elif self.path in PAGES:
                self._send(200, PAGES[self.path])
            else:
                self._send(404, "<html><title>Missing</title></html>")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode()
            self._send(
                200,
                f"<html><head><title>Done</title></head><body><pre id='got'>{html.escape(body)}</pre></body></html>",
            )

        def log_message(self, *args: Any) -> None:
            pass

    server, _ = _serve("127.0.0.2", Site)
    yield f"http://127.0.0.2:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def kit() -> InternalAuthKit:
    return InternalAuthKit()


@contextlib.contextmanager
def service_app(kit: InternalAuthKit, profiles: Path, **extra_env: str) -> Iterator[TestClient]:
    """browser_service.main imported afresh with this environment (restored afterwards)."""
    env = {
        "INTERNAL_AUTH_PUBLIC_KEY": kit.public_key,
        "BROWSER_SSRF_ALLOWLIST": "127.0.0.2/32",
        "BROWSER_MAX_SESSIONS": "3",
        "BROWSER_MAX_SESSIONS_PER_USER": "2",
        "BROWSER_PROFILE_DIR": str(profiles),
        "SCREEN_DESCRIBE_MODEL": "",
        **extra_env,
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    _forget_app()
    import browser_service.main as main

    try:
        with TestClient(main.app) as client:
            yield client
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _forget_app()  # the shared contract tests import the app afresh with their own key


@pytest.fixture(scope="module")
def app_client(kit: InternalAuthKit, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with service_app(kit, tmp_path_factory.mktemp("profiles")) as client:
        yield client


def _forget_app() -> None:
    from harvis_common.config import _cached

    _cached.cache_clear()
    sys.modules.pop("browser_service.main", None)


def as_user(kit: InternalAuthKit, user_id: int) -> dict[str, str]:
    return kit.headers("browser-service", user_id=user_id, username=f"user{user_id}", email=f"u{user_id}@example.com")
