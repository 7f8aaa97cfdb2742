#!/usr/bin/env python3
"""research-service: end-to-end `/api/web-search` with `extract_content=true` over ten fixture
pages, one of which takes 30 s to answer: the slow page must not hold the answer beyond the
fetch budget; pages extracted per second.

Starts the real research-service (its own venv, uvicorn, one worker) on a free loopback port
with a fresh internal-auth key, the fixture web (tests/e2e/sites/research_web.py) on
127.0.0.3 (the only non-public address it may reach) and the fake SearXNG (tests/fakes/) as
its search engine, and calls it over HTTP with `X-Internal-Auth`, as core-api's gateway does.
The cache is off (RESEARCH_CACHE_TTL_S=0), so every round really fetches and extracts.

    python3 bench/research.py                 # 5 rounds, budget 4 s
    python3 bench/research.py --rounds 10 --budget-s 3 --json

Exit status 1 when a round took longer than the budget plus --slack-s (the slow page held it).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import benchkit

benchkit.run_in_tools_venv(__file__)
import httpx  # noqa: E402
from fleet import service_env_pythonpath, service_venv  # noqa: E402
from fleet_services import by_name  # noqa: E402

ROOT = benchkit.ROOT

from harvis_testkit import InternalAuthKit  # noqa: E402

WEB_HOST = "127.0.0.3"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_up(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--budget-s", type=float, default=4.0)
    ap.add_argument("--slack-s", type=float, default=2.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    svc = by_name("research-service")
    venv = service_venv(svc)
    py = str(venv / "bin" / "python")  # has aiohttp, for the fixture web and the fake engine
    kit = InternalAuthKit()
    web_port, sx_port, port = free_port(WEB_HOST), free_port(), free_port()
    web_base, sx_base = f"http://{WEB_HOST}:{web_port}", f"http://127.0.0.1:{sx_port}"
    procs = benchkit.start_research_web(py, WEB_HOST, web_port, sx_port)
    env = {
        **os.environ,
        "PYTHONPATH": service_env_pythonpath(svc),
        "INTERNAL_AUTH_PUBLIC_KEY": kit.public_key,
        "RESEARCH_PROVIDERS": "searxng",
        "SEARXNG_URL": sx_base,
        "RESEARCH_SSRF_ALLOWLIST": f"{WEB_HOST}/32",
        "RESEARCH_FETCH_BUDGET_S": str(args.budget_s),
        "RESEARCH_FETCH_TIMEOUT_S": "60",
        "RESEARCH_FETCH_CONCURRENCY": "10",
        "RESEARCH_CACHE_TTL_S": "0",
        "REDIS_URL": "",
        "LOG_LEVEL": "WARNING",
    }
    procs.append(
        subprocess.Popen(
            [str(venv / "bin" / "uvicorn"), svc.app, "--host", "127.0.0.1", "--port", str(port), "--no-access-log"],
            env=env,
            cwd=str(ROOT / "microservices" / svc.directory),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )
    rounds: list[dict[str, Any]] = []
    try:
        wait_up(f"{web_base}/_web/stats")
        wait_up(f"{sx_base}/healthz")
        wait_up(f"http://127.0.0.1:{port}/health")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
            for _ in range(args.rounds):
                body = {"query": f"benchten {uuid.uuid4().hex[:8]}", "max_results": 10, "extract_content": True}
                t0 = time.perf_counter()
                r = http.post("/api/web-search", json=body, headers=kit.headers("research-service"))
                elapsed = time.perf_counter() - t0
                r.raise_for_status()
                data = r.json()
                rounds.append(
                    {
                        "elapsed_s": round(elapsed, 3),
                        "results": len(data["search_results"]),
                        "extracted": len(data["extracted_content"]),
                        "pages_per_s": round(len(data["extracted_content"]) / elapsed, 2),
                    }
                )
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
    times = [r["elapsed_s"] for r in rounds]
    out = {
        "budget_s": args.budget_s,
        "rounds": rounds,
        "elapsed_s": {"median": statistics.median(times), "max": max(times)},
        "pages_per_s_median": statistics.median(r["pages_per_s"] for r in rounds),
        "within_budget": max(times) <= args.budget_s + args.slack_s,
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"10 pages (1 slow: 30 s), fetch budget {args.budget_s:g} s, {args.rounds} rounds")
        for r in rounds:
            print(f"  {r['elapsed_s']:.3f} s  {r['extracted']}/{r['results']} extracted  {r['pages_per_s']} pages/s")
        print(f"median {out['elapsed_s']['median']:.3f} s, max {out['elapsed_s']['max']:.3f} s, "
              f"median {out['pages_per_s_median']} pages/s, within budget: {out['within_budget']}")  # fmt: skip
    return 0 if out["within_budget"] else 1


if __name__ == "__main__":
    sys.exit(main())
