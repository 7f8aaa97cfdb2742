"""While a slow optional part of the native fleet is being prepared (the demo model's
llama.cpp build, n8n from npm), its port answers every request with a JSON 503 that says
how far along it is, instead of refusing connections. The service that calls it (core-api
for the model, n8n-integration for n8n) passes that message on to the user:

    503 {"detail": "The demo model is still being built: 62%, about 4 minutes left", ...}

The body carries the message in the shapes both callers read: OpenAI's `{"error":
{"message"}}` and n8n's `{"message"}`. Stdlib only, like fleet.py.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# `[ 62%]` (make) or `[12/140]` (ninja) at the start of a build tool's line.
_PERCENT = re.compile(r"^\s*\[\s*(\d{1,3})%\]")
_STEPS = re.compile(r"^\s*\[(\d+)/(\d+)\]")


def _minutes(seconds: float) -> str:
    if seconds < 90:
        return "about a minute left"
    return f"about {round(seconds / 60)} minutes left"


class Progress:
    """What is being prepared and how far along it is; thread-safe, read by the 503 server."""

    def __init__(self, what: str, expected_s: float) -> None:
        self.what = what  # e.g. "The demo model is still being built"
        self.expected_s = expected_s  # a guess, used until the tool reports real progress
        self.started = time.monotonic()
        self._fraction: float | None = None
        self._failed: str | None = None
        self._lock = threading.Lock()

    def update(self, fraction: float) -> None:
        with self._lock:
            self._fraction = max(0.0, min(1.0, fraction))

    def feed(self, line: str) -> None:
        """Read progress from one line of a build tool's output."""
        if m := _PERCENT.match(line):
            self.update(int(m.group(1)) / 100)
        elif (m := _STEPS.match(line)) and int(m.group(2)) > 0:
            self.update(int(m.group(1)) / int(m.group(2)))

    def fail(self, why: str) -> None:
        with self._lock:
            self._failed = why

    @property
    def failed(self) -> str | None:
        return self._failed

    def message(self) -> str:
        with self._lock:
            if self._failed:
                return self._failed
            elapsed = time.monotonic() - self.started
            fraction = self._fraction
        if fraction is None or fraction <= 0.02:  # no (useful) report yet: the expected duration
            fraction = min(0.95, elapsed / self.expected_s)
            left = max(self.expected_s - elapsed, 30.0)
        else:
            left = elapsed / fraction * (1 - fraction)
        return f"{self.what}: {round(fraction * 100)}%, {_minutes(left)}"

    def retry_after(self) -> int:
        return 30


class _Handler(BaseHTTPRequestHandler):
    progress: Progress

    def _answer(self) -> None:
        message = self.progress.message()
        body = json.dumps(
            {
                "detail": message,
                "message": message,
                "error": {"message": message, "type": "service_unavailable", "code": 503},
            }
        ).encode()
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Retry-After", str(self.progress.retry_after()))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass  # the progress goes to the log on its own schedule, not per request


@contextmanager
def serving(progress: Progress, port: int, host: str = "127.0.0.1") -> Iterator[None]:
    """Answer 503 + progress on host:port until the block ends (then the port is free again
    for the real server)."""
    handler = type("Handler", (_Handler,), {"progress": progress})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name=f"preparing-{port}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
