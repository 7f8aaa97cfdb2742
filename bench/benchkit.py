"""What the benchmarks share: the repository on sys.path, and the tools venv to run in.

A benchmark is run by a bare `python3 bench/x.py`; the first thing it does is
`benchkit.run_in_tools_venv()`, which re-executes it in the tools venv (httpx, pyjwt,
cryptography) unless it is already there.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT / "scripts", ROOT / "microservices" / "common"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


def run_in_tools_venv(script: str) -> None:
    """Continue `script` in the tools venv when this interpreter lacks httpx."""
    if importlib.util.find_spec("httpx") is not None:
        return
    from fleet import tools_venv

    python = tools_venv() / "bin" / "python"
    os.execv(str(python), [str(python), script, *sys.argv[1:]])  # noqa: S606 - our own venv


def start_research_web(python: str, web_host: str, web_port: int, searxng_port: int) -> list[subprocess.Popen[bytes]]:
    """The e2e suite's fixture web (a slow page among them: 30 s) on `web_host` and the fake
    SearXNG that finds its pages, for benchmarks of research (`python`: a venv with aiohttp)."""
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    web = [python, str(ROOT / "tests/e2e/sites/research_web.py"), "--host", web_host, "--port", str(web_port)]
    engine = [python, str(ROOT / "tests/fakes/fake_searxng.py"), "--port", str(searxng_port)]
    return [
        subprocess.Popen([*web, "--slow-s", "30"], **quiet),
        subprocess.Popen([*engine, "--web", f"http://{web_host}:{web_port}"], **quiet),
    ]


# ---------------------------------------------------------------- the browser's fixture site

OCR_LINES = [f"Line {i}: the quick brown fox jumps" for i in range(8)]
BROWSER_PAGES = {
    "/": "<title>Home</title><h1>Bench</h1><a id='next' href='/form'>form</a>"
    + "".join(f"<p>Paragraph {i} of ordinary page text for extraction.</p>" for i in range(50)),
    "/form": "<title>Form</title><form action='/done' method='post'><input id='q' name='q'>"
    "<button id='go'>Go</button></form>",
    "/ocr": "<title>OCR</title><div style='font: 40px sans-serif; padding: 30px'>" + "<br>".join(OCR_LINES) + "</div>",
}


class _BrowserSite(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        body = BROWSER_PAGES.get(path, "<title>404</title>").encode()
        self.send_response(200 if path in BROWSER_PAGES else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.do_GET()

    def log_message(self, *args: Any) -> None:
        pass


def browser_site(host: str) -> ThreadingHTTPServer:
    """The pages the browser benchmarks drive (a link, a form, text to OCR) on `host`, a free
    port; the caller serves it (`serve_forever` in a thread) and shuts it down."""
    return ThreadingHTTPServer((host, 0), _BrowserSite)
