#!/usr/bin/env python3
"""Gateway throughput: nginx → core-api gateway → service, against nginx → service.

    python3 bench/gateway.py [--duration 10] [--connections 32] [--threads 2] [--rounds 1]
                             [--min-ratio 0.5] [--json]

Starts mcp-service (one uvicorn worker, uvloop + httptools, like the fleet
runner), core-api's real Gateway (bench/gateway_app.py: one worker, the same)
and nginx rendered from nginx/ with one extra location, `/direct/`, that goes
straight to the service with a pre-minted X-Internal-Auth header. Then `wrk`
hits the same endpoint, GET /api/mcp/diagnostics/whoami (a small JSON answer
that needs a verified identity), both ways, and prints req/s, p50, p99 and
the ratio gateway / direct. Every process logs as in production (to
/dev/null). Stdlib only; needs nginx and wrk. Pythons: $HARVIS_VENVS (the
fleet runner's {service: venv}) or this interpreter for both.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MICRO = ROOT / "microservices"
sys.path.insert(0, str(ROOT / "nginx"))
import render  # noqa: E402

ENDPOINT = "/api/mcp/diagnostics/whoami"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
WRK = shutil.which("wrk") or "/usr/bin/wrk"


@dataclass
class Result:
    name: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    # CPU time per request of the service and of the gateway process: steadier
    # than req/s on a machine shared with other work.
    service_cpu_us: float = 0.0
    gateway_cpu_us: float = 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def python_for(service: str) -> str:
    venvs = json.loads(os.environ.get("HARVIS_VENVS") or "{}")
    if service in venvs:
        return str(Path(venvs[service]) / "bin" / "python")
    return sys.executable


def uvicorn_cmd(python: str, app: str, app_dir: Path, port: int) -> list[str]:
    return [
        python,
        "-m",
        "uvicorn",
        app,
        "--app-dir",
        str(app_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def wait_for(url: str, headers: dict[str, str], timeout: float = 30) -> bytes:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(url, headers=headers)  # noqa: S310 - our own loopback URL
            with urllib.request.urlopen(req, timeout=2) as resp:  # noqa: S310
                return resp.read()
        except (urllib.error.URLError, OSError) as exc:
            last = exc
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 in {timeout}s: {last}")


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(name: str, url: str, token: str, args: argparse.Namespace, duration: int) -> Result:
    out = subprocess.run(
        [
            WRK,
            f"-t{args.threads}",
            f"-c{args.connections}",
            f"-d{duration}s",
            "--latency",
            "-H",
            f"Authorization: Bearer {token}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50(?:\.000)?%\s+(\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99(?:\.000)?%\s+(\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (sum(map(int, sock_errors.groups())) if sock_errors else 0)
    return Result(name, rps, p50, p99, total, errors)


def direct_location(port: int, internal_auth: str) -> tuple[str, str]:
    """The extra nginx config: an upstream (http level) and the /direct/ location."""
    upstream = f"upstream harvis_bench_service {{\n    server 127.0.0.1:{port};\n    keepalive 64;\n}}\n"
    location = f"""\
location /direct/ {{
    # A location with its own proxy_set_header inherits none: restate the server's.
    proxy_set_header Host $http_host;
    proxy_set_header X-Real-IP $remote_addr;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Forwarded-Host $http_host;
    proxy_set_header X-Request-ID $harvis_request_id;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection $connection_upgrade;
    proxy_set_header Authorization "";
    proxy_set_header X-Internal-Auth "{internal_auth}";
    rewrite ^/direct(/.*)$ $1 break;
    proxy_pass http://harvis_bench_service;
}}
"""
    return upstream, location


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1, help="direct/gateway pairs, alternated")
    parser.add_argument("--min-ratio", type=float, default=0.0, help="exit 1 below this gateway/direct ratio")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    for tool in (NGINX, WRK):
        if not Path(tool).exists():
            print(f"bench: {tool} is missing (apt-get install nginx-light wrk)", file=sys.stderr)
            return 2

    core_py, service_py = python_for("core-api"), python_for("mcp-service")
    core_path = os.pathsep.join([str(MICRO / "common"), str(MICRO / "core-api")])
    service_path = os.pathsep.join([str(MICRO / "common"), str(MICRO / "mcp-service")])
    minted = json.loads(
        subprocess.run(
            [core_py, str(ROOT / "bench" / "gateway_app.py"), "mint"],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": core_path},
        ).stdout
    )
    token = minted["user_token"]
    service_port, gateway_port, nginx_port = free_port(), free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    workdir = Path(tempfile.mkdtemp(prefix="harvis-bench-"))
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    try:
        procs.append(
            subprocess.Popen(
                uvicorn_cmd(service_py, "mcp_service.main:app", MICRO / "mcp-service", service_port),
                env={
                    **os.environ,
                    "PYTHONPATH": service_path,
                    "INTERNAL_AUTH_PUBLIC_KEY": minted["INTERNAL_AUTH_PUBLIC_KEY"],
                },
                **quiet,
            )
        )
        procs.append(
            subprocess.Popen(
                uvicorn_cmd(core_py, "gateway_app:app", ROOT / "bench", gateway_port),
                env={
                    **os.environ,
                    "PYTHONPATH": core_path,
                    "JWT_SECRET": minted["JWT_SECRET"],
                    "INTERNAL_AUTH_PRIVATE_KEY": minted["INTERNAL_AUTH_PRIVATE_KEY"],
                    "MCP_SERVICE_URL": f"http://127.0.0.1:{service_port}",
                },
                **quiet,
            )
        )
        upstream, location = direct_location(service_port, minted["direct_internal_auth"])
        extra = workdir / "bench-direct.conf"
        extra.write_text(location)
        conf = render.render(
            workdir / "nginx", listen=f"127.0.0.1:{nginx_port}", core_api=f"127.0.0.1:{gateway_port}", extra=[extra]
        )
        (conf.parent / "conf.d" / "bench-upstream.conf").write_text(upstream)
        subprocess.run([NGINX, "-t", "-q", "-c", str(conf)], check=True)
        procs.append(subprocess.Popen([NGINX, "-c", str(conf), "-g", "daemon off;"], **quiet))

        base = f"http://127.0.0.1:{nginx_port}"
        auth = {"Authorization": f"Bearer {token}"}
        urls = {"direct": f"{base}/direct{ENDPOINT}", "gateway": f"{base}{ENDPOINT}"}
        for name, url in urls.items():  # both answer, as the same user, before anything is measured
            who = json.loads(wait_for(url, auth))
            if who.get("user_id") != 1:
                raise RuntimeError(f"{name}: unexpected answer {who}")
        for name, url in urls.items():
            run_wrk(name, url, token, args, 2)  # warm-up: connections, caches

        results: list[Result] = []
        service_pid, gateway_pid = procs[0].pid, procs[1].pid
        for _ in range(args.rounds):
            for name, url in urls.items():
                before = cpu_seconds(service_pid), cpu_seconds(gateway_pid)
                result = run_wrk(name, url, token, args, args.duration)
                result.service_cpu_us = (cpu_seconds(service_pid) - before[0]) / result.requests * 1e6
                result.gateway_cpu_us = (cpu_seconds(gateway_pid) - before[1]) / result.requests * 1e6
                results.append(result)
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)

    def mean(name: str, field: str) -> float:
        values = [getattr(r, field) for r in results if r.name == name]
        return sum(values) / len(values)

    ratio = mean("gateway", "requests_per_s") / mean("direct", "requests_per_s")
    errors = sum(r.errors for r in results)
    if args.json:
        print(json.dumps({"results": [asdict(r) for r in results], "ratio": round(ratio, 3), "errors": errors}))
    else:
        print(
            f"GET {ENDPOINT}, wrk -t{args.threads} -c{args.connections} -d{args.duration}s, "
            f"{os.cpu_count()} CPUs, {args.rounds} round(s)"
        )
        print(f"{'path':<10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}  CPU µs/request: service, gateway")
        for r in results:
            print(
                f"{r.name:<10}{r.requests_per_s:>9.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}{r.errors:>8}"
                f"  {r.service_cpu_us:>6.0f} {r.gateway_cpu_us:>8.0f}"
            )
        print(f"gateway / direct throughput: {ratio:.2f}")
    if errors:
        print(f"bench: {errors} failed requests", file=sys.stderr)
        return 1
    return 1 if ratio < args.min_ratio else 0


if __name__ == "__main__":
    sys.exit(main())
