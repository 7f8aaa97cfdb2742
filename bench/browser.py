#!/usr/bin/env python3
"""browser-service: session start time, per-action latency, and how many sessions
this machine holds at once.

Starts the real browser-service (its own venv, uvicorn, one worker) on a free
loopback port with a fresh internal-auth key, serves test pages on 127.0.0.2
(the only non-public address it is allowed to reach) and drives it over HTTP
with `X-Internal-Auth`, exactly as core-api's gateway does (the gateway hop
itself is measured by bench/gateway.py).

    python3 bench/browser.py                  # 5 starts, 20 rounds of actions, up to 8 sessions
    python3 bench/browser.py --max-sessions 4 --rounds 10 --json

Memory: the PSS (proportional set size: shared pages split between processes)
of every process of every session's Chromium, and MemAvailable; opening stops
at --max-sessions, when MemAvailable falls below --min-available-mb, or at
the first session that fails to start.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import benchkit

benchkit.run_in_tools_venv(__file__)
import httpx  # noqa: E402
from fleet import service_env_pythonpath, service_venv  # noqa: E402
from fleet_services import by_name  # noqa: E402

ROOT = benchkit.ROOT

from harvis_testkit import InternalAuthKit  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def meminfo() -> dict[str, int]:
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, value = line.split(":", 1)
        out[key] = int(value.split()[0])  # kB
    return out


def pss_kb(needle: bytes) -> tuple[int, int]:
    """Total PSS (kB) and count of the processes whose command line contains needle."""
    total = count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if needle not in Path(entry.path, "cmdline").read_bytes():
                continue
            for line in Path(entry.path, "smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    count += 1
                    break
        except OSError:
            continue
    return total, count


def summary(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 1),
        "p95_ms": round(p95, 1),
        "max_ms": round(ms[-1], 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--starts", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--max-sessions", type=int, default=8)
    ap.add_argument("--min-available-mb", type=int, default=1024)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    svc = by_name("browser-service")
    venv = service_venv(svc)
    kit = InternalAuthKit()
    profiles = Path(tempfile.mkdtemp(prefix="harvis-bench-browser-"))
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": service_env_pythonpath(svc),
        "INTERNAL_AUTH_PUBLIC_KEY": kit.public_key,
        "BROWSER_SSRF_ALLOWLIST": "127.0.0.2/32",
        "BROWSER_MAX_SESSIONS": str(args.max_sessions + 1),
        "BROWSER_MAX_SESSIONS_PER_USER": str(args.max_sessions + 1),
        "BROWSER_PROFILE_DIR": str(profiles),
        "LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(
        [str(venv / "bin" / "uvicorn"), svc.app, "--host", "127.0.0.1", "--port", str(port), "--no-access-log"],
        env=env,
        cwd=str(ROOT / "microservices" / svc.directory),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    site = benchkit.browser_site("127.0.0.2")
    threading.Thread(target=site.serve_forever, daemon=True).start()
    base = f"http://127.0.0.2:{site.server_address[1]}"
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "mem_total_mb": meminfo()["MemTotal"] // 1024}}
    opened: list[str] = []
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)

    def h() -> dict[str, str]:
        return kit.headers("browser-service", user_id=1)

    def call(method: str, path: str, **kw: Any) -> httpx.Response:
        r = http.request(method, path, headers=h(), **kw)
        if r.status_code != 200:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return r

    def timed(fn: Any) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if http.get("/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        # ---- session start: an empty browser, and start + first navigation
        starts, first_nav = [], []
        for _ in range(args.starts):
            t0 = time.perf_counter()
            sid = call("POST", "/api/browser/session", json={}).json()["session_id"]
            starts.append(time.perf_counter() - t0)
            call("DELETE", f"/api/browser/session/{sid}")
            t0 = time.perf_counter()
            sid = call("POST", "/api/browser/navigate", json={"url": base + "/"}).json()["session_id"]
            first_nav.append(time.perf_counter() - t0)
            call("DELETE", f"/api/browser/session/{sid}")
        results["session_start"] = summary(starts)
        results["session_start_plus_first_navigate"] = summary(first_nav)

        # ---- per action, one warm session
        sid = call("POST", "/api/browser/navigate", json={"url": base + "/"}).json()["session_id"]
        opened.append(sid)

        def act(**body: Any) -> None:
            call("POST", "/api/browser/interact", json={"session_id": sid, **body})

        actions: dict[str, list[float]] = {
            k: []
            for k in (
                "navigate",
                "click_to_new_page",
                "type",
                "extract_text",
                "extract_links",
                "back",
                "screenshot",
                "screenshot_full",
                "screen_analyze",
            )
        }
        for _ in range(args.rounds):
            actions["navigate"].append(
                timed(lambda: call("POST", "/api/browser/navigate", json={"url": base + "/", "session_id": sid}))
            )
            actions["extract_text"].append(timed(lambda: act(action="extract", what="text")))
            actions["extract_links"].append(timed(lambda: act(action="extract", what="links")))
            actions["click_to_new_page"].append(timed(lambda: act(action="click", selector="#next")))
            actions["type"].append(timed(lambda: act(action="type", selector="#q", text="harvis benchmark")))
            actions["back"].append(timed(lambda: act(action="back")))
            actions["screenshot"].append(
                timed(lambda: call("GET", "/api/browser/screenshot", params={"session_id": sid}))
            )
            actions["screenshot_full"].append(
                timed(lambda: call("GET", "/api/browser/screenshot", params={"session_id": sid, "full_page": "true"}))
            )
        call("POST", "/api/browser/navigate", json={"url": base + "/ocr", "session_id": sid})
        for _ in range(max(3, args.rounds // 4)):
            actions["screen_analyze"].append(
                timed(lambda: call("POST", "/api/screen-analyze", json={"session_id": sid}))
            )
        results["actions"] = {k: summary(v) for k, v in actions.items()}
        ocr = call("POST", "/api/screen-analyze", json={"session_id": sid}).json()
        results["ocr_lines_read"] = sum(line in ocr["text"] for line in benchkit.OCR_LINES)

        # ---- how many at once
        before = meminfo()["MemAvailable"] // 1024
        held = []
        stop_reason = f"reached --max-sessions {args.max_sessions}"
        while len(opened) < args.max_sessions:
            avail = meminfo()["MemAvailable"] // 1024
            if avail < args.min_available_mb:
                stop_reason = f"MemAvailable {avail} MB < {args.min_available_mb} MB"
                break
            try:
                r = call("POST", "/api/browser/navigate", json={"url": base + "/"})
            except RuntimeError as exc:
                stop_reason = f"a start failed: {exc}"
                break
            opened.append(r.json()["session_id"])
            time.sleep(0.5)
            pss, procs = pss_kb(str(profiles).encode())
            held.append(
                {
                    "sessions": len(opened),
                    "pss_mb": pss // 1024,
                    "processes": procs,
                    "mem_available_mb": meminfo()["MemAvailable"] // 1024,
                }
            )

        def everyone() -> list[float]:
            with ThreadPoolExecutor(len(opened)) as pool:
                return list(
                    pool.map(
                        lambda s: timed(
                            lambda: call("POST", "/api/browser/interact", json={"session_id": s, "action": "extract"})
                        ),
                        opened,
                    )
                )

        results["concurrent"] = {
            "held": held,
            "stopped_because": stop_reason,
            "mem_available_before_mb": before,
            "pss_per_session_mb": round(held[-1]["pss_mb"] / held[-1]["sessions"]) if held else None,
            "extract_on_all_sessions_at_once": summary(everyone()),
        }
    finally:
        for sid in opened:
            with contextlib.suppress(httpx.HTTPError):
                http.delete(f"/api/browser/session/{sid}", headers=h())
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        site.shutdown()
        shutil.rmtree(profiles, ignore_errors=True)

    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"machine: {results['machine']}")
        print(f"session start (empty browser):    {results['session_start']}")
        print(f"session start + first navigate:   {results['session_start_plus_first_navigate']}")
        for name, s in results["actions"].items():
            print(f"  {name:<18} {s}")
        print(f"OCR lines read: {results['ocr_lines_read']}/8")
        c = results["concurrent"]
        for row in c["held"]:
            print(f"  {row}")
        print(f"stopped: {c['stopped_because']}; ~{c['pss_per_session_mb']} MB PSS per session")
        print(f"extract on all {len(c['held']) + 1} sessions at once: {c['extract_on_all_sessions_at_once']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
