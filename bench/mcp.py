#!/usr/bin/env python3
"""mcp-service tool-call cost: the REST view against the MCP view (JSON-RPC over
streamable HTTP), same tool, same service process.

    python3 bench/mcp.py [--requests 400] [--concurrency 16] [--json]

Starts mcp-service alone (one uvicorn worker, its own venv from $HARVIS_VENVS
or this interpreter) with a fresh internal-auth key and a temporary workspace,
then calls `file_info` (a small file: stat + SHA-256, off the event loop) and
`system_info` through POST /api/mcp/tool and through POST /api/mcp/ (`tools/call`),
and lists tools both ways; prints req/s, p50 and p99 for each. Needs httpx
(the tools venv has it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
MICRO = ROOT / "microservices"
sys.path.insert(0, str(MICRO / "common"))
from harvis_common.internal_auth import InternalSigner, generate_keypair  # noqa: E402

MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def python_for_service() -> str:
    venvs = json.loads(os.environ.get("HARVIS_VENVS", "{}"))
    venv = venvs.get("mcp-service")
    return str(Path(venv) / "bin" / "python") if venv else sys.executable


async def measure(name: str, send, requests: int, concurrency: int) -> dict[str, float | str]:
    latencies: list[float] = []
    queue = list(range(requests))

    async def worker() -> None:
        while queue:
            queue.pop()
            start = time.perf_counter()
            await send()
            latencies.append((time.perf_counter() - start) * 1000)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "case": name,
        "req_s": round(requests / elapsed, 1),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2),
    }


async def run(port: int, token: str, requests: int, concurrency: int) -> list[dict[str, float | str]]:
    base = f"http://127.0.0.1:{port}"
    headers = {"X-Internal-Auth": token}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        r = await client.post(
            "/api/mcp/tool", json={"name": "write_file", "arguments": {"path": "b.txt", "content": "x" * 4096}}
        )
        assert r.json()["ok"], r.text

        def rest(name: str, arguments: dict) -> object:
            async def send() -> None:
                r = await client.post("/api/mcp/tool", json={"name": name, "arguments": arguments})
                assert r.status_code == 200 and r.json()["ok"], r.text

            return send

        def mcp(method: str, params: dict) -> object:
            body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}

            async def send() -> None:
                r = await client.post("/api/mcp/", json=body, headers=MCP_HEADERS)
                assert r.status_code == 200 and "error" not in r.json(), r.text

            return send

        async def list_rest() -> None:
            r = await client.get("/api/mcp/tools")
            assert r.status_code == 200

        cases = [
            ("REST  list tools", list_rest),
            ("MCP   tools/list", mcp("tools/list", {})),
            ("REST  file_info", rest("file_info", {"path": "b.txt"})),
            ("MCP   file_info", mcp("tools/call", {"name": "file_info", "arguments": {"path": "b.txt"}})),
            ("REST  system_info", rest("system_info", {})),
            ("MCP   system_info", mcp("tools/call", {"name": "system_info", "arguments": {}})),
        ]
        results = []
        for name, send in cases:
            await measure(name, send, min(50, requests), concurrency)  # warm-up
            results.append(await measure(name, send, requests, concurrency))
        return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    private, public = generate_keypair()
    token = InternalSigner(private, ttl_s=600).sign("mcp-service", user_id=1, email="b@example.test", username="bench")
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "INTERNAL_AUTH_PUBLIC_KEY": public,
            "MCP_WORKSPACE_DIR": tmp,
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join([str(MICRO / "common"), str(MICRO / "mcp-service")]),
        }
        cmd = [python_for_service(), "-m", "uvicorn", "mcp_service.main:app", "--port", str(port), "--no-access-log"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            results = asyncio.run(run(port, token, args.requests, args.concurrency))
        finally:
            proc.terminate()
            proc.wait(10)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print(f"{r['case']:<20} {r['req_s']:>8} req/s   p50 {r['p50_ms']:>7} ms   p99 {r['p99_ms']:>7} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
