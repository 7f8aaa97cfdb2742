#!/usr/bin/env python3
"""Artifacts: spec → ready file, p50 and p90, for a 1 000-row spreadsheet (with a formula per
row) and a 20-page document (DOCX and PDF), and what each part costs.

    python3 bench/artifacts.py [--rounds 15] [--json]                      # in-process, throwaway database
    python3 bench/artifacts.py --renderer [--rounds 15]                    # the artifact-renderer process
    python3 bench/artifacts.py --base http://127.0.0.1:9000 [--rounds 15]  # a running fleet, through nginx

In-process (the default) runs what a core-api replica runs, in core-api's own venv: the spec is
validated (specs.py), the `generating` row inserted (store/artifacts.py), the worker
(artifacts/worker.py, one render thread) claims it from PostgreSQL, renders it and stores
the file; the time is from the validation's start until the row reads `ready`. It needs the
test PostgreSQL (`HARVIS_TEST_PG_ADMIN_URL`, as core-api's unit tests). Render-only times
(the library's share) are reported beside it.

With `--renderer`, the rows are queued the same way but rendered by the artifact-renderer as
the containers run it: its own process (`uvicorn --factory core_api.artifacts.renderer:main`,
one render thread), woken by each row's NOTIFY. Its memory is reported too: RSS and PSS
(/proc/<pid>/smaps_rollup) once ready and idle, and the peak of 20 ms samples during the renders.

With `--base`, a new user POSTs /api/artifacts through nginx and polls GET /api/artifacts/{id}
every 20 ms until `ready` (the front end polls every 2 s: this is the server's part).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT / "scripts", ROOT / "microservices" / "common", ROOT / "microservices" / "core-api"):
    sys.path.insert(0, str(p))


def spreadsheet_1000_rows() -> dict[str, Any]:
    rows: list[list[Any]] = [["Item", "Qty", "Price", "Total"]]
    rows += [[f"item {i}", i % 17 + 1, round(1.5 + i % 9, 2), f"=B{i + 2}*C{i + 2}"] for i in range(1000)]
    rows.append(["Sum", None, None, "=SUM(D2:D1001)"])
    return {"sheets": [{"name": "Items", "header": True, "rows": rows}]}


def document_20_pages() -> dict[str, Any]:
    """20 sections, each a page (a heading, five paragraphs, a list, a table, a page break)."""
    blocks: list[dict[str, Any]] = []
    text = (
        "The quarter closed with steady growth across all regions, led by the northern stores, "
        "while costs stayed within plan and the new supplier contracts began to pay off. "
    ) * 3
    for n in range(1, 21):
        blocks.append({"type": "heading", "text": f"Section {n}", "level": 1})
        blocks += [{"type": "paragraph", "text": text} for _ in range(5)]
        blocks.append({"type": "list", "items": ["Revenue up 4 %", "Costs flat", "Two new stores"]})
        blocks.append(
            {"type": "table", "rows": [["Region", "Sales", "Change"]] + [[f"R{i}", "1200", "+3 %"] for i in range(6)]}
        )
        blocks.append({"type": "page_break"})
    return {"blocks": blocks}


CASES = [
    ("spreadsheet", "1 000-row spreadsheet", spreadsheet_1000_rows),
    ("document", "20-page document (DOCX)", document_20_pages),
    ("pdf", "20-page document (PDF)", document_20_pages),
]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


# ---------------------------------------------------------------- in-process


def in_core_api_venv() -> None:
    try:
        import asyncpg  # noqa: F401
        import openpyxl  # noqa: F401
    except ImportError:
        from fleet import service_venv
        from fleet_services import by_name

        python = service_venv(by_name("core-api")) / "bin" / "python"
        os.execv(str(python), [str(python), __file__, *sys.argv[1:]])  # noqa: S606 - our own venv


async def bench_local(rounds: int, renderer: bool = False) -> list[dict[str, Any]]:
    import asyncpg

    from core_api.artifacts.render import render
    from core_api.artifacts.specs import ArtifactCreate
    from core_api.artifacts.worker import ArtifactWorker
    from core_api.store.artifacts import ArtifactStore
    from harvis_common.db import migrate
    from harvis_testkit import create_database, drop_database

    name, dsn = await create_database("harvis_bench")
    try:
        conn = await asyncpg.connect(dsn)
        await migrate(conn, "core-api", "core_api.migrations")
        user = await conn.fetchval(
            "INSERT INTO users (username, email, password_hash) VALUES ('bench', 'bench@example.com', 'x') RETURNING id"
        )
        await conn.close()
        pool = await asyncpg.create_pool(dsn, min_size=2, max_size=4)
        store = ArtifactStore(pool, quota_bytes=10**10, ttl_days=1)
        if renderer:
            proc, memory = start_renderer(dsn), Memory()
            await memory.idle(proc.pid)
            sampler = asyncio.ensure_future(memory.sample(proc.pid))
        else:
            worker = ArtifactWorker(store, workers=1, render_timeout_s=60, poll_s=0.01)
            worker.start()
        results = []
        for artifact_type, label, make in CASES:
            spec = make()
            ready_s, render_s, size = [], [], 0
            for _ in range(rounds):
                start = time.perf_counter()
                req = ArtifactCreate(type=artifact_type, title="Bench", spec=spec)
                row = await store.create(user, req.type, req.title, req.stored_spec())
                if not renderer:
                    worker.wake()
                aid = uuid.UUID(row["id"])
                while True:
                    status, size = await pool.fetchrow("SELECT status, file_size FROM artifacts WHERE id = $1", aid)
                    if status != "generating":
                        break
                    await asyncio.sleep(0.005)
                ready_s.append(time.perf_counter() - start)
                assert status == "ready", status
                t = time.perf_counter()
                render(artifact_type, "Bench", spec)
                render_s.append(time.perf_counter() - t)
            results.append(
                {
                    "case": label,
                    "ready_p50_ms": round(statistics.median(ready_s) * 1000, 1),
                    "ready_p90_ms": round(pct(ready_s, 0.9) * 1000, 1),
                    "render_p50_ms": round(statistics.median(render_s) * 1000, 1),
                    "file_kb": round(size / 1024, 1),
                }
            )
        if renderer:
            sampler.cancel()
            proc.terminate()
            proc.wait(10)
            results.append({"case": "renderer memory", **memory.report()})
        else:
            await worker.stop()
        await pool.close()
        return results
    finally:
        await drop_database(name)


RENDERER_PORT = 8017


def start_renderer(dsn: str) -> subprocess.Popen[bytes]:
    """The artifact-renderer as its image runs it (one render thread), on a spare port."""
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "ARTIFACT_RENDER_WORKERS": "1",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": os.pathsep.join(str(ROOT / "microservices" / d) for d in ("common", "core-api")),
    }
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "core_api.artifacts.renderer:main"]
    cmd += ["--port", str(RENDERER_PORT), "--no-access-log", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{RENDERER_PORT}/ready", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the artifact-renderer did not become ready")


def rss_pss_kib(pid: int) -> tuple[int, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        fields[key] = int(value.split()[0])
    return fields["Rss"], fields["Pss"]


class Memory:
    def __init__(self) -> None:
        self.idle_kib = self.peak_kib = (0, 0)

    async def idle(self, pid: int) -> None:
        await asyncio.sleep(2)  # after start-up's allocations settle
        self.idle_kib = self.peak_kib = rss_pss_kib(pid)

    async def sample(self, pid: int) -> None:
        while True:
            rss, pss = rss_pss_kib(pid)
            self.peak_kib = (max(rss, self.peak_kib[0]), max(pss, self.peak_kib[1]))
            await asyncio.sleep(0.02)

    def report(self) -> dict[str, float]:
        (rss, pss), (peak_rss, peak_pss) = self.idle_kib, self.peak_kib
        mib = 1024
        return {
            "idle_rss_mib": round(rss / mib),
            "idle_pss_mib": round(pss / mib),
            "peak_rss_mib": round(peak_rss / mib),
            "peak_pss_mib": round(peak_pss / mib),
        }


# ---------------------------------------------------------------- through nginx


def bench_http(base: str, rounds: int) -> list[dict[str, Any]]:
    import http.client
    from urllib.parse import urlsplit

    u = urlsplit(base)

    def call(method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=120)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, json.loads(data) if data else None

    name = f"bench{uuid.uuid4().hex[:10]}"
    status, body = call(
        "POST",
        "/api/auth/signup",
        {"username": name, "email": f"{name}@example.com", "password": "blue-Harbour-lamp-42"},
    )
    assert status == 200, body
    token = body["access_token"]
    results = []
    for artifact_type, label, make in CASES:
        spec = make()
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            status, made = call(
                "POST", "/api/artifacts", {"type": artifact_type, "title": "Bench", "spec": spec}, token
            )
            assert status == 201, made
            while True:
                _, got = call("GET", f"/api/artifacts/{made['id']}", token=token)
                if got["status"] != "generating":
                    break
                time.sleep(0.02)
            assert got["status"] == "ready", got
            times.append(time.perf_counter() - start)
            call("DELETE", f"/api/artifacts/{made['id']}", token=token)
        results.append(
            {
                "case": label,
                "ready_p50_ms": round(statistics.median(times) * 1000, 1),
                "ready_p90_ms": round(pct(times, 0.9) * 1000, 1),
                "file_kb": round(got["file_size"] / 1024, 1),
            }
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--base", default="", help="a running fleet's nginx, e.g. http://127.0.0.1:9000")
    parser.add_argument("--renderer", action="store_true", help="render in an artifact-renderer process")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.base:
        results = bench_http(args.base, args.rounds)
    else:
        in_core_api_venv()
        results = asyncio.run(bench_local(args.rounds, args.renderer))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        if "idle_rss_mib" in r:
            print(
                f"artifact-renderer memory: idle RSS {r['idle_rss_mib']} MiB (PSS {r['idle_pss_mib']}),"
                f" peak RSS {r['peak_rss_mib']} MiB (PSS {r['peak_pss_mib']})"
            )
            continue
        extra = f"  render only p50 {r['render_p50_ms']:>7.1f} ms" if "render_p50_ms" in r else ""
        print(
            f"{r['case']:<28} spec→ready p50 {r['ready_p50_ms']:>7.1f} ms  p90 {r['ready_p90_ms']:>7.1f} ms"
            f"{extra}  file {r['file_kb']} KiB"
        )


if __name__ == "__main__":
    main()
