#!/usr/bin/env python3
"""What `make dev` costs a newcomer: a fresh clone, an empty cache, then a warm restart.

    python3 bench/first_run.py              # fresh clone + empty cache in a temporary directory
    python3 bench/first_run.py --keep DIR   # keep the clone, cache and logs in DIR

Measures, from the moment `make dev` starts:
- healthy: the runner says the fleet is up (sign-up, gateway, every service answering);
- model: the demo model answers through :9000 (its llama.cpp build runs in the background);
- n8n: n8n-integration reaches its own n8n (npm install in the background);
then Ctrl-C, and a second `make dev` with the now warm cache: time to healthy.

pip's own cache is bypassed (PIP_NO_CACHE_DIR) and npm gets an empty cache, so every
download happens as on a fresh machine. Debian packages can't be uninstalled for the
measurement: on a fresh machine apt runs beside the venv installs (it finished first when
measured: docs/benchmarks.md). Ports 8000-8006, 9000, 8090, 5678 must be free. Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import fleet  # noqa: E402
from fleet_services import NGINX_PORT  # noqa: E402
from fleet_tests import fleet_lock  # noqa: E402
from make_dev_run import PORTS, MakeDevRun, newcomer_env, port_free  # noqa: E402

BASE = f"http://127.0.0.1:{NGINX_PORT}"


def call(method: str, path: str, body: dict | None = None, token: str = "") -> tuple[int, dict]:
    data = json.dumps(body).encode() if body else None
    req = urllib.request.Request(BASE + path, method=method, data=data)  # noqa: S310 - our own loopback
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - our own loopback
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def wait_for(what: str, check, started: float, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        ok, last = check()
        if ok:
            return time.monotonic() - started
        time.sleep(5)
    raise RuntimeError(f"{what} not ready within {timeout:.0f} s (last: {last})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    args = parser.parse_args()
    with fleet_lock():  # the test fleets use the same ports: wait for them
        return measure(args.keep)


def measure(keep: Path | None) -> int:
    busy = [p for p in PORTS if not port_free(p)]
    if busy:
        sys.exit(f"ports {busy} are taken: stop make dev / the test fleet first")
    work = keep or Path(tempfile.mkdtemp(prefix="harvis-first-run-"))
    work.mkdir(parents=True, exist_ok=True)
    clone, cache = work / "harvis", work / "cache"
    shutil.rmtree(clone, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = newcomer_env(clone)
    env.update(HARVIS_CACHE=str(cache), PIP_NO_CACHE_DIR="1", npm_config_cache=str(cache / "npm-cache"))
    results: dict[str, float] = {}
    runs: list[MakeDevRun] = []
    try:
        first = MakeDevRun(clone, work / "first.log", env)
        runs.append(first)
        results["first_run_healthy_s"] = first.wait_healthy(1800)
        print(f"first run: healthy after {results['first_run_healthy_s']:.0f} s", flush=True)
        name = "b" + uuid.uuid4().hex[:10]
        status, body = call(
            "POST",
            "/api/auth/signup",
            {"username": name, "email": f"{name}@example.com", "password": "Bench-Run-4242-x"},
        )
        assert status == 200, body
        token = body["access_token"]

        def model() -> tuple[bool, str]:
            status, body = call("GET", "/api/models", token=token)
            return status == 200 and bool(body.get("models")), body.get("message", "")

        def n8n() -> tuple[bool, str]:
            status, body = call("GET", "/api/n8n/health", token=token)
            checks = {c["name"]: c for c in body.get("checks", [])}
            return status == 200 and checks.get("n8n", {}).get("ok", False), str(checks.get("n8n", {}).get("detail"))

        results["first_run_model_ready_s"] = wait_for("the demo model", model, first.started, 1800)
        print(f"first run: demo model answering after {results['first_run_model_ready_s']:.0f} s", flush=True)
        results["first_run_n8n_ready_s"] = wait_for("n8n", n8n, first.started, 1800)
        print(f"first run: n8n answering after {results['first_run_n8n_ready_s']:.0f} s", flush=True)
        first.ctrl_c()

        warm = MakeDevRun(clone, work / "warm.log", env)
        runs.append(warm)
        results["warm_start_healthy_s"] = warm.wait_healthy(300)
        print(f"warm start: healthy after {results['warm_start_healthy_s']:.0f} s", flush=True)
        warm.ctrl_c()
    finally:
        for run in runs:
            if run.proc.poll() is None:  # a step failed: leave nothing running
                run.kill_everything()
        fleet.stop_embedded_postgres(clone / ".dev" / "pgdata")
        for log in ("first.log", "warm.log"):
            print(f"log: {work / log}")
    sizes = subprocess.run(["du", "-sm", str(cache)], capture_output=True, text=True).stdout.split()
    results["cache_mb"] = float(sizes[0]) if sizes else 0.0
    print(json.dumps(results, indent=2))
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
