#!/usr/bin/env python3
"""Memory of every program `make dev` runs: idle after the start, and after a light, realistic
load per service through nginx :9000.

    python3 bench/memory.py            # a Markdown table
    python3 bench/memory.py --json     # everything measured, for machines

It runs the real `make dev` (scripts/make_dev_run.py: the Makefile target, supervisord, the
`.dev/` state directory, a newcomer's environment) with a few settings on top, so that the load
can reach pages on the loopback (the defaults keep every service away from it):
`HARVIS_LLM=demo` (the demo model, even where an Ollama answers), `BROWSER_SSRF_ALLOWLIST`
(a page this script serves on 127.0.0.2), `RESEARCH_PROVIDERS=searxng` with `SEARXNG_URL` and
`RESEARCH_SSRF_ALLOWLIST` (the fixture web of tests/e2e/sites/research_web.py on 127.0.0.3 and
the fake SearXNG of tests/fakes/, as bench/research.py uses them) and `RESEARCH_FETCH_BUDGET_S=4`.

1. `make dev`, until it says the fleet is up; then until the demo model and n8n answer on their
   own ports (their first start builds/installs them in the background: up to 15 minutes).
2. Idle: 30 s later, one sample of every program.
3. Load, as one new user through :9000 (tests/product/features.py's requests where they fit),
   every program sampled each second meanwhile (the peak): sign-up; three chat turns with the
   demo model; three documents made (document, PDF, spreadsheet); three web searches of ten
   results each, the pages extracted (nine fixture articles; a tenth too slow for the budget);
   a Markdown upload to the knowledge base and three searches; two TTS→STT round trips; a
   browser session navigated, clicked, read, screenshotted and OCR'd; MCP file tools (write,
   read) three times; a Python and a Node sandbox session with four runs and an open terminal;
   three n8n workflows created and run and one reviewed (the embedder).
4. Loaded: 5 s after the load, one sample, the browser session and the terminal still open.
   Peak: the highest of the samples taken each second from the load's start to this one.
5. Everything closed, Ctrl-C, and nothing of the run may be left.

A program's memory is that of its whole process tree (its descendants and its process group:
uvicorn with its Chromium per browser session and its sandboxes; nginx's workers; n8n's task
runner), from /proc/<pid>/smaps_rollup: PSS (each page shared by n processes counts 1/n: the
sums add up across programs) and RSS (each process's resident pages in full: shared pages count
once per process, an upper bound). Also the embedded PostgreSQL `make dev` starts.

Needs ports 8000-8006, 9000, 8090, 5678, 9095 free (no other `make dev` or test fleet); takes
the test fleets' machine lock. Exit status 1 when a program restarted during the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import benchkit

benchkit.run_in_tools_venv(__file__)
import httpx  # noqa: E402

ROOT = benchkit.ROOT
sys.path.insert(0, str(ROOT / "tests" / "product"))

import features  # noqa: E402
import fleet  # noqa: E402
import llm_server  # noqa: E402
import n8n_server  # noqa: E402
from fleet_services import NGINX_PORT, SERVICES, by_name  # noqa: E402
from fleet_tests import fleet_lock  # noqa: E402
from make_dev_run import PORTS, MakeDevRun, describe, newcomer_env, port_free, session_pids  # noqa: E402

BASE = f"http://127.0.0.1:{NGINX_PORT}"
STATE = ROOT / ".dev"  # make dev's own state directory (a newcomer's environment names no other)
READY_TIMEOUT_S = 900  # the demo model's llama.cpp build / n8n's npm install on a first run
BROWSER_HOST, WEB_HOST = "127.0.0.2", "127.0.0.3"
ORDER = [*(s.name for s in SERVICES), "nginx", "llm", "n8n", "prometheus", "postgres"]


def say(msg: str) -> None:
    print(f"[memory] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- measuring


@dataclass
class Mem:
    """A process tree's memory, in kB (KiB, as the kernel reports it)."""

    pss: int = 0
    rss: int = 0
    uss: int = 0  # Private_Clean + Private_Dirty: what only this tree's processes map
    anonymous: int = 0
    swap: int = 0
    processes: int = 0
    main_pss: int = 0  # the program's own process (uvicorn), without its children
    main_rss: int = 0


def proc_table() -> dict[int, tuple[int, int]]:
    """pid → (parent pid, process group) of every process."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"{entry.path}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(entry.name)] = (int(fields[1]), int(fields[2]))
    return table


def tree(root: int, table: dict[int, tuple[int, int]]) -> set[int]:
    """`root`, its descendants, and the processes of its process group (supervisord makes each
    program a group leader: a child that detached from its parent still counts)."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = set(), [root, *(pid for pid, (_, pgid) in table.items() if pgid == root)]
    while todo:
        pid = todo.pop()
        if pid in out or pid not in table:
            continue
        out.add(pid)
        todo.extend(children.get(pid, []))
    return out


ROLLUP_FIELDS = {"Rss", "Pss", "Private_Clean", "Private_Dirty", "Anonymous", "Swap"}


def rollup(pid: int) -> dict[str, int] | None:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:  # gone, or a kernel thread
        return None
    out = {}
    for line in text.splitlines()[1:]:
        key, _, rest = line.partition(":")
        if key in ROLLUP_FIELDS:
            out[key] = int(rest.split()[0])
    return out


def measure(roots: dict[str, int]) -> dict[str, Mem]:
    table = proc_table()
    out = {}
    for name, root in roots.items():
        mem = Mem()
        for pid in tree(root, table):
            r = rollup(pid)
            if not r:
                continue
            mem.pss += r.get("Pss", 0)
            mem.rss += r.get("Rss", 0)
            mem.uss += r.get("Private_Clean", 0) + r.get("Private_Dirty", 0)
            mem.anonymous += r.get("Anonymous", 0)
            mem.swap += r.get("Swap", 0)
            mem.processes += 1
            if pid == root:
                mem.main_pss, mem.main_rss = r.get("Pss", 0), r.get("Rss", 0)
        out[name] = mem
    return out


class PeakSampler(threading.Thread):
    """Samples every program each `interval` seconds; keeps each one's highest PSS and RSS."""

    def __init__(self, roots: dict[str, int], interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.roots, self.interval = roots, interval
        self.peak: dict[str, Mem] = {name: Mem() for name in roots}
        self.samples = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for name, mem in measure(self.roots).items():
                peak = self.peak[name]
                peak.pss, peak.rss = max(peak.pss, mem.pss), max(peak.rss, mem.rss)
                peak.processes = max(peak.processes, mem.processes)
            self.samples += 1
            self.done.wait(self.interval)

    def stop(self) -> dict[str, Mem]:
        self.done.set()
        self.join()
        return self.peak


def supervised_pids() -> dict[str, int]:
    """name → pid of every RUNNING program of make dev's supervisord, and the embedded
    PostgreSQL's postmaster."""
    ctl = fleet.tools_venv() / "bin" / "supervisorctl"
    out = subprocess.run(
        [str(ctl), "-c", str(STATE / "supervisord.conf"), "status"], capture_output=True, text=True, check=False
    ).stdout
    pids = {m[1]: int(m[2]) for m in re.finditer(r"^(\S+)\s+RUNNING\s+pid (\d+)", out, re.M)}
    with contextlib.suppress(OSError, ValueError, IndexError):
        pids["postgres"] = int((STATE / "pgdata" / "postmaster.pid").read_text().splitlines()[0])
    return pids


# ---------------------------------------------------------------- what the load reaches


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Fixtures:
    """The browser's page (in this process) and research's fixture web and fake SearXNG (in
    research-service's venv, which has aiohttp), on ports picked now so make dev can name them."""

    def __init__(self) -> None:
        self.site = benchkit.browser_site(BROWSER_HOST)
        self.page = f"http://{BROWSER_HOST}:{self.site.server_address[1]}"
        self.web = f"http://{WEB_HOST}:{free_port(WEB_HOST)}"
        self.searxng = f"http://127.0.0.1:{free_port()}"
        self.procs: list[subprocess.Popen[bytes]] = []

    def settings(self) -> dict[str, str]:
        return {
            "BROWSER_SSRF_ALLOWLIST": f"{BROWSER_HOST}/32",
            "RESEARCH_PROVIDERS": "searxng",
            "SEARXNG_URL": self.searxng,
            "RESEARCH_SSRF_ALLOWLIST": f"{WEB_HOST}/32",
            "RESEARCH_FETCH_BUDGET_S": "4",  # as tests/e2e and bench/research.py: the slow page waits no longer
        }

    def start(self) -> None:
        threading.Thread(target=self.site.serve_forever, daemon=True).start()
        py = str(fleet.service_venv(by_name("research-service")) / "bin" / "python")
        web_port = self.web.rsplit(":", 1)[1]
        sx_port = self.searxng.rsplit(":", 1)[1]
        self.procs = benchkit.start_research_web(py, WEB_HOST, int(web_port), int(sx_port))
        for url in (f"{self.web}/_web/stats", f"{self.searxng}/healthz"):
            if not fleet.wait_http(url, 30):
                raise RuntimeError(f"{url} did not come up")

    def stop(self) -> None:
        self.site.shutdown()
        for p in self.procs:
            p.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(10)


# ---------------------------------------------------------------- the load


class Terminal(threading.Thread):
    """A vibe-coding terminal (a sandboxed shell behind a WebSocket) held open until close()."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.ready, self.closing = threading.Event(), threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by wait_ready
            self.error = exc
            self.ready.set()

    async def _main(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        async with connect(self.url, open_timeout=15) as ws:
            await ws.send(json.dumps({"type": "resize", "cols": 100, "rows": 30}))
            await ws.send(json.dumps({"type": "input", "data": "echo $((6*7))-ready\r"}))
            seen, deadline = "", time.monotonic() + 30
            while "42-ready" not in seen:
                seen += str(await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic())))
            self.ready.set()
            await asyncio.get_running_loop().run_in_executor(None, self.closing.wait)
            await ws.send(json.dumps({"type": "input", "data": "exit\r"}))
            with contextlib.suppress(ConnectionClosed, TimeoutError):
                while True:
                    await asyncio.wait_for(ws.recv(), 10)

    def wait_ready(self, timeout: float = 40) -> None:
        if not self.ready.wait(timeout) or self.error:
            raise RuntimeError(f"the terminal did not answer: {self.error!r}")

    def close(self) -> None:
        self.closing.set()
        self.join(20)


KB_NOTE = "# Harbour notes\n\n" + "\n\n".join(
    f"## Berth {i}\n\nBerth {i} takes boats up to {10 + i} metres; the harbour master opens it at "
    f"{5 + i % 4} o'clock and keeps a log of every arrival, the tide and the weather." * 3
    for i in range(12)
)

DOCUMENT = {
    "blocks": [
        {"type": "heading", "text": "Harbour report", "level": 1},
        *({"type": "paragraph", "text": "Boats came in with the tide and left at dawn. " * 8} for _ in range(6)),
        {"type": "list", "items": ["Berths full", "Tide high at six", "Two new moorings"]},
        {"type": "table", "rows": [["Berth", "Boats"], *([f"B{i}", str(i * 3)] for i in range(10))]},
    ]
}
SHEET = {
    "sheets": [
        {
            "name": "Berths",
            "header": True,
            "rows": [["Berth", "Boats", "Fee", "Total"]]
            + [[f"B{i}", i % 7 + 1, 12.5, f"=B{i + 2}*C{i + 2}"] for i in range(100)],
        }
    ]
}


class Load:
    """The requests, as one user through nginx :9000; what stays open until close()."""

    def __init__(self, client: httpx.Client, fixtures: Fixtures) -> None:
        self.client, self.fx = client, fixtures
        self.steps: list[dict[str, Any]] = []
        self.headers: dict[str, str] = {}
        self.browser_session: str | None = None
        self.vibe_sessions: list[str] = []
        self.terminal: Terminal | None = None

    def step(self, name: str, fn: Any, count: int = 1) -> Any:
        t0 = time.monotonic()
        result = fn()
        self.steps.append({"step": name, "requests": count, "seconds": round(time.monotonic() - t0, 1)})
        if isinstance(result, str):  # what the step did, when it varies
            self.steps[-1]["detail"] = result
        say(f"load: {name} in {self.steps[-1]['seconds']} s" + (f" ({result})" if isinstance(result, str) else ""))
        return result

    def ok(self, r: httpx.Response, *codes: int) -> httpx.Response:
        if r.status_code not in (codes or (200,)):
            raise RuntimeError(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:300]}")
        return r

    def post(self, path: str, codes: tuple[int, ...] = (200,), **kw: Any) -> dict[str, Any]:
        return self.ok(self.client.post(path, headers=self.headers, **kw), *codes).json()

    def run(self) -> None:
        c = self.client
        user = self.step("sign-up", lambda: features.signup(c))
        self.headers = features.bearer(user)
        self.step("chat: 3 turns with the demo model", self.chat, 3)
        self.step("artifacts: a document, a PDF, a spreadsheet", self.artifacts, 3)
        self.step("research: 3 web searches, 10 results each, pages extracted", self.research, 3)
        self.step("knowledge base: an upload, 3 searches", self.knowledge_base, 4)
        self.step("voice: 2 TTS→STT round trips", lambda: [features.check_voice_round_trip(c, self.headers)
                                                          for _ in range(2)], 4)  # fmt: skip
        self.step("browser: a session, 9 actions, OCR", self.browser, 10)
        self.step("mcp: write + read a file, 3 times", lambda: [features.check_mcp_files(c, self.headers)
                                                               for _ in range(3)], 9)  # fmt: skip
        self.step("vibe-coding: 2 sessions, 4 runs, a terminal", self.vibe, 7)
        self.step("n8n: 3 workflows created and run, 1 reviewed", self.n8n, 7)

    def chat(self) -> None:
        sid = features.check_demo_model_chat(self.client, self.headers, READY_TIMEOUT_S)
        for message in ("Tell me about tides.", "And about harbours?"):
            events = features.chat(self.client, self.headers, message, sid)
            if events[-1]["status"] != "complete":
                raise RuntimeError(f"chat: {events[-1]}")

    def artifacts(self) -> None:
        for kind, spec in (("document", DOCUMENT), ("pdf", DOCUMENT), ("spreadsheet", SHEET)):
            made = self.post("/api/artifacts", codes=(201,), json={"type": kind, "title": "Harbour", "spec": spec})
            got = features.wait_until(
                f"the {kind}",
                lambda m=made: (lambda a: a if a["status"] != "generating" else None)(
                    self.client.get(f"/api/artifacts/{m['id']}", headers=self.headers).json()
                ),
                60,
                interval=0.2,
            )
            if got["status"] != "ready":
                raise RuntimeError(f"artifact {kind}: {got}")

    def research(self) -> str:
        # "benchten" steers the fake SearXNG to ten results: nine fixture articles and one page
        # that answers after 30 s, which the fetch budget (4 s here) cuts off.
        pages = 0
        for topic in ("apollo", "python", "rust"):
            body = self.post(
                "/api/web-search",
                json={"query": f"benchten {topic} {uuid.uuid4().hex[:6]}", "max_results": 10, "extract_content": True},
                timeout=90,
            )
            if not body["extracted_content"]:
                raise RuntimeError(f"web search {topic!r} extracted nothing: {str(body)[:300]}")
            pages += len(body["extracted_content"])
        return f"{pages} pages extracted"

    def knowledge_base(self) -> None:
        # A new document each run (the same file again is answered as a duplicate, not ingested).
        note = f"{KB_NOTE}\n\nRun {uuid.uuid4()}.\n"
        files = {"file": ("harbour.md", note.encode(), "text/markdown")}
        self.post("/api/rag/documents", codes=(200, 201), files=files, timeout=120)
        for query in ("berth 7 length", "harbour master log", "when does berth 3 open"):
            if not self.post("/api/rag/search", json={"query": query, "k": 5})["results"]:
                raise RuntimeError(f"knowledge base: nothing found for {query!r}")

    def browser(self) -> None:
        page = self.fx.page
        sid = self.post("/api/browser/navigate", json={"url": page + "/"}, timeout=120)["session_id"]
        self.browser_session = sid

        def act(**body: Any) -> dict[str, Any]:
            return self.post("/api/browser/interact", json={"session_id": sid, **body}, timeout=60)

        act(action="extract", what="text")
        act(action="extract", what="links")
        act(action="click", selector="#next")
        act(action="type", selector="#q", text="quick brown fox")
        act(action="back")
        self.ok(self.client.get("/api/browser/screenshot", params={"session_id": sid}, headers=self.headers))
        self.post("/api/browser/navigate", json={"url": page + "/ocr", "session_id": sid}, timeout=60)
        text = self.post("/api/screen-analyze", json={"session_id": sid}, timeout=120)["text"]
        if sum(line in text for line in benchkit.OCR_LINES) < len(benchkit.OCR_LINES) // 2:
            raise RuntimeError(f"OCR read {text[:200]!r}")

    def vibe(self) -> None:
        for language, runs in (("python", ["print(6 * 7)", "print(sum(range(10**6)))",
                                           "import json; print(json.dumps({'n': [1] * 100000})[:20])"]),
                               ("node", ["console.log(6 * 7)"])):  # fmt: skip
            sid = self.post("/api/vibe/session/create", json={"name": f"bench-{language}", "language": language})[
                "session_id"
            ]
            self.vibe_sessions.append(sid)
            for code in runs:
                out = self.post(
                    "/api/vibe/execute", json={"session_id": sid, "code": code, "language": language}, timeout=120
                )
                if out["exit_code"] != 0:
                    raise RuntimeError(f"sandboxed {language} run: {out}")
        ws = BASE.replace("http://", "ws://")
        token = self.headers["Authorization"].removeprefix("Bearer ")
        self.terminal = Terminal(f"{ws}/api/vibecoding/container/{self.vibe_sessions[0]}/terminal?token={token}")
        self.terminal.start()
        self.terminal.wait_ready()

    def n8n(self) -> None:
        features.check_n8n_workflow(self.client, self.headers, READY_TIMEOUT_S)
        for word in ("tide", "harbour"):
            ran = features.run_workflow(self.client, self.headers, word)
            if not ran or ran["status"] != "success":
                raise RuntimeError(f"n8n workflow: {ran}")
        review = self.post("/api/n8n/optimize", json={"workflow": features.WORKFLOW, "use_llm": False}, timeout=120)
        if "similar" not in review:
            raise RuntimeError(f"n8n review: {review}")

    def close(self) -> None:
        if self.terminal is not None:
            self.terminal.close()
        if self.browser_session:
            with contextlib.suppress(httpx.HTTPError):
                self.client.delete(f"/api/browser/session/{self.browser_session}", headers=self.headers)
        for sid in self.vibe_sessions:
            with contextlib.suppress(httpx.HTTPError):
                self.client.delete(f"/api/vibe/session/{sid}", headers=self.headers, timeout=60)


# ---------------------------------------------------------------- the run


def wait_ready(what: str, url: str, timeout: float) -> float:
    t0 = time.monotonic()
    if not fleet.wait_http(url, timeout):
        raise RuntimeError(f"{what} did not answer on {url} within {timeout:.0f} s")
    return time.monotonic() - t0


def run(settle_s: float) -> dict[str, Any]:
    busy = [p for p in PORTS if not port_free(p)]
    if busy:
        sys.exit(f"ports {busy} are taken: stop make dev / the test fleet first")
    fixtures = Fixtures()
    try:
        fixtures.start()
        return measure_fleet(fixtures, settle_s)
    finally:
        fixtures.stop()


def measure_fleet(fixtures: Fixtures, settle_s: float) -> dict[str, Any]:
    env = newcomer_env(ROOT)
    env.update({"HARVIS_LLM": "demo", **fixtures.settings()})
    dev = MakeDevRun(ROOT, STATE / "bench-memory" / "make-dev.log", env)
    say(f"make dev started (log: {dev.log_path})")
    result: dict[str, Any] = {}
    load: Load | None = None
    try:
        result["healthy_after_s"] = round(dev.wait_healthy(1800), 1)
        say(f"fleet healthy after {result['healthy_after_s']} s; waiting for the demo model and n8n")
        wait_ready("the demo model", llm_server.base_url() + "/models", READY_TIMEOUT_S)
        wait_ready("n8n", n8n_server.base_url() + "/rest/settings", READY_TIMEOUT_S)
        time.sleep(settle_s)
        roots = supervised_pids()
        missing = [n for n in ORDER if n not in roots]
        if missing:
            say(f"not running, not measured: {', '.join(missing)}")
        idle = measure(roots)
        say("idle sampled; the load starts")
        sampler = PeakSampler(roots)
        sampler.start()
        with httpx.Client(base_url=BASE, timeout=60) as client:
            load = Load(client, fixtures)
            try:
                load.run()
                time.sleep(5)
            finally:
                peak = sampler.stop()
            loaded = measure(roots)
            for name, mem in loaded.items():  # the peak is at least what is held at the end
                p = peak[name]
                p.pss, p.rss, p.processes = max(p.pss, mem.pss), max(p.rss, mem.rss), max(p.processes, mem.processes)
            after = supervised_pids()
            restarted = sorted(n for n in roots if after.get(n) != roots[n])
            steps = load.steps
            load.close()
            load = None
        result.update(
            {
                "idle": {k: asdict(v) for k, v in idle.items()},
                "loaded": {k: asdict(v) for k, v in loaded.items()},
                "peak": {k: asdict(v) for k, v in peak.items()},
                "peak_samples": sampler.samples,
                "steps": steps,
                "restarted": restarted,
            }
        )
        return result
    finally:
        if load is not None:
            with contextlib.suppress(Exception):
                load.close()
        if dev.proc.poll() is None:
            try:
                dev.ctrl_c()
                say("make dev stopped (Ctrl-C)")
            except RuntimeError as exc:
                say(str(exc))
        left = session_pids(dev.sid)
        if left:
            say("left running, killed: " + "; ".join(describe(left)))
            dev.kill_everything()
            fleet.stop_embedded_postgres(STATE / "pgdata")


# ---------------------------------------------------------------- the report


def mib(kb: int) -> str:
    return f"{kb / 1024:.0f}"


def table(result: dict[str, Any]) -> list[str]:
    idle, loaded, peak = result["idle"], result["loaded"], result["peak"]
    lines = [
        "| program | PSS idle | RSS idle | PSS loaded | RSS loaded | PSS peak | RSS peak "
        "| processes idle → loaded (peak) |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    names = [n for n in ORDER if n in idle] + sorted(n for n in idle if n not in ORDER)
    for n in names:
        i, lo, pk = idle[n], loaded[n], peak[n]
        lines.append(
            f"| {n} | {mib(i['pss'])} | {mib(i['rss'])} | {mib(lo['pss'])} | {mib(lo['rss'])} | {mib(pk['pss'])} "
            f"| {mib(pk['rss'])} | {i['processes']} → {lo['processes']} ({pk['processes']}) |"
        )
    total = {k: sum(m[n]["pss"] for n in names) for k, m in (("idle", idle), ("loaded", loaded))}
    lines.append(f"| **all (PSS adds up)** | **{mib(total['idle'])}** | | **{mib(total['loaded'])}** | | | | |")
    return lines


def children_notes(result: dict[str, Any]) -> list[str]:
    """For each service whose tree grew under load (browser sessions, sandboxes): the service
    process and the rest."""
    out = []
    for n in [s.name for s in SERVICES if s.name in result["loaded"]]:
        lo = result["loaded"][n]
        if lo["processes"] > result["idle"][n]["processes"]:
            out.append(
                f"- {n}, loaded: the service process {mib(lo['main_pss'])} MiB PSS, its {lo['processes'] - 1} "
                f"other processes {mib(lo['pss'] - lo['main_pss'])} MiB PSS"
            )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print everything measured as JSON")
    parser.add_argument("--settle-s", type=float, default=30.0, help="wait this long before the idle sample")
    args = parser.parse_args()
    if shutil.which("make") is None:
        sys.exit("make is not installed")
    with fleet_lock():  # the test fleets use the same ports: wait for them
        result = run(args.settle_s)
    result["date"] = date.today().isoformat()
    result["machine"] = {
        "cpus": os.cpu_count(),
        "mem_total_mib": int(Path("/proc/meminfo").read_text().split()[1]) // 1024,
        "kernel": platform.release(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        machine = result["machine"]
        print(
            f"Memory per program, MiB, `make dev` on {result['date']} ({machine['cpus']} cores, "
            f"{machine['mem_total_mib']} MiB; healthy after {result['healthy_after_s']} s). Loaded: 5 s after the "
            "load, a browser session and a terminal open; peak: the highest of the samples taken each second "
            "from the load's start.\n"
        )
        print("\n".join(table(result)))
        print()
        print("\n".join(children_notes(result)))
        for s in result["steps"]:
            print(f"- {s['step']}: {s['seconds']} s" + (f" ({s['detail']})" if "detail" in s else ""))
    if result["restarted"]:
        say(f"restarted during the run (their figures are not one process's): {', '.join(result['restarted'])}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
