#!/usr/bin/env python3
"""vibe-coding sandbox speed: start-to-first-output latency and executions/s.

    python3 bench/vibe.py [--runs 30] [--concurrency 1,4,8] [--json]
    python3 bench/vibe.py --api http://127.0.0.1:9000    # through nginx + gateway (a running fleet)

Runs trivial programs (print one line) in the bubblewrap sandbox exactly as
`POST /api/vibe/execute` does (vibe_coding.sandbox.BwrapSandbox: setpriv to a
sandbox uid when root, bwrap with fresh namespaces, prlimit, the code file
passed through a memfd), and the same interpreters without a sandbox for
comparison. Reports, per language: median and p90 time from spawning to the
first byte of output, median total time per execution, and executions/s
sequentially and with N executions in flight. Stdlib only (imports the
service's sandbox package from the checkout); needs bwrap, setpriv, prlimit,
python3, node. `--api` instead measures `POST /api/vibe/execute` end to end
through nginx and the gateway against a running fleet (`make dev`), as a new user.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "microservices" / "vibe-coding"))

from vibe_coding.sandbox import BwrapSandbox, Limits, Program, SandboxTarget, language, program_for  # noqa: E402
from vibe_coding.sandbox.base import SANDBOX_PATH  # noqa: E402

PROGRAMS = {"python": "print('hi')", "node": "console.log('hi')", "bash": "echo hi"}
LIMITS = Limits(timeout_s=30, memory_bytes=1 << 30, max_procs=64, cpu_s=60, file_bytes=100 << 20, output_bytes=1 << 18)
UID = 259_999


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def bare(argv: list[str]) -> tuple[float, float]:
    """(first output, total) seconds for an unsandboxed run."""
    start = time.perf_counter()
    # The sandbox's PATH (not a pyenv shim or the like), for a fair comparison.
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, env={"PATH": SANDBOX_PATH})
    assert proc.stdout is not None
    await proc.stdout.read(1)
    first = time.perf_counter() - start
    await proc.stdout.read()
    await proc.wait()
    return first, time.perf_counter() - start


def api_bench(base: str, runs: int, levels: list[int]) -> dict[str, dict[str, float]]:
    """Round trips of POST /api/vibe/execute (HTTP + gateway + sandbox), per language."""
    import urllib.request
    import uuid
    from concurrent.futures import ThreadPoolExecutor

    def call(path: str, body: dict, token: str | None = None) -> dict:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(base + path, json.dumps(body).encode(), headers)  # noqa: S310 - the fleet
        with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 - the fleet's URL
            return json.loads(resp.read())

    tag = uuid.uuid4().hex[:10]
    token = call(
        "/api/auth/signup",
        {"username": f"bench{tag}", "email": f"bench{tag}@example.com", "password": f"Bench-{tag}-Pass-42"},
    )["access_token"]
    sid = call("/api/vibe/session/create", {"name": "bench", "language": "python"}, token)["session_id"]
    results: dict[str, dict[str, float]] = {}
    for name, code in PROGRAMS.items():
        body = {"session_id": sid, "code": code, "language": name, "timeout": 30}

        def once(body: dict = body) -> float:
            start = time.perf_counter()
            out = call("/api/vibe/execute", body, token)
            assert out["exit_code"] == 0 and out["output"] == "hi\n", out
            return time.perf_counter() - start

        once()
        times = [once() for _ in range(runs)]
        row = {"round_trip_p50_ms": statistics.median(times) * 1000, "round_trip_p90_ms": pct(times, 0.9) * 1000}
        for level in levels:
            total = max(runs, level * 4)
            start = time.perf_counter()
            with ThreadPoolExecutor(level) as pool:
                list(pool.map(lambda _: once(), range(total)))
            row[f"exec_per_s_c{level}"] = total / (time.perf_counter() - start)
        results[name] = row
    return results


def report(title: str, results: dict[str, dict[str, float]], as_json: bool, runs: int) -> int:
    if as_json:
        print(json.dumps({"cpus": os.cpu_count(), "runs": runs, "results": results}, indent=2))
        return 0
    print(title)
    for name, row in results.items():
        parts = [f"{k}={v:.1f}" for k, v in row.items()]
        print(f"  {name:22s} " + "  ".join(parts))
    return 0


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--concurrency", default="1,4,8")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--api", metavar="BASE_URL", help="measure through a running fleet instead")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    if args.api:
        if not args.api.startswith(("http://", "https://")):
            sys.exit("--api takes an http(s) URL")
        results = await asyncio.to_thread(api_bench, args.api.rstrip("/"), args.runs, levels)
        return report(f"POST /api/vibe/execute via {args.api}, {args.runs} runs each", results, args.json, args.runs)
    for tool in ("bwrap", "prlimit", "node"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing (python3 scripts/fleet.py setup installs it)")

    sandbox = BwrapSandbox()
    workspace = Path(tempfile.mkdtemp(prefix="vibe-bench-", dir=ROOT / ".dev" if (ROOT / ".dev").is_dir() else None))
    if sandbox.drop_to_uid:
        os.chown(workspace, UID, UID)
    target = SandboxTarget(workspace, UID if sandbox.drop_to_uid else None, "bench")
    results: dict[str, dict[str, float]] = {}
    try:
        for name, code in PROGRAMS.items():
            program = program_for(language(name), code, None)
            await sandbox.run(target, program, LIMITS)  # warm the page cache
            firsts, totals = [], []
            for _ in range(args.runs):
                r = await sandbox.run(target, program, LIMITS)
                assert r.exit_code == 0 and r.stdout == "hi\n", r
                assert r.first_output_s is not None
                firsts.append(r.first_output_s)
                totals.append(r.duration_s)
            row = {
                "first_output_p50_ms": statistics.median(firsts) * 1000,
                "first_output_p90_ms": pct(firsts, 0.9) * 1000,
                "total_p50_ms": statistics.median(totals) * 1000,
            }
            bare_argv = {"python": ["python3", "-c", code], "node": ["node", "-e", code], "bash": ["bash", "-c", code]}
            bare_runs = [await bare(bare_argv[name]) for _ in range(args.runs)]
            row["unsandboxed_first_output_p50_ms"] = statistics.median(b[0] for b in bare_runs) * 1000
            for level in levels:
                total = max(args.runs, level * 4)
                sem = asyncio.Semaphore(level)

                async def one(program: Program = program, sem: asyncio.Semaphore = sem) -> None:
                    async with sem:
                        r = await sandbox.run(target, program, LIMITS)
                        assert r.exit_code == 0, r

                start = time.perf_counter()
                await asyncio.gather(*(one() for _ in range(total)))
                row[f"exec_per_s_c{level}"] = total / (time.perf_counter() - start)
            results[name] = row
        # The floor: an empty sandbox running /bin/true-like `echo`.
        firsts = []
        for _ in range(args.runs):
            r = await sandbox.run(target, Program(("echo", "hi")), LIMITS)
            firsts.append(r.first_output_s or 0.0)
        results["sandbox-only (echo)"] = {"first_output_p50_ms": statistics.median(firsts) * 1000}
    finally:
        shutil.rmtree(workspace, ignore_errors=True)

    title = f"bubblewrap sandbox, {args.runs} runs each, {os.cpu_count()} CPUs"
    return report(title, results, args.json, args.runs)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
