#!/usr/bin/env python3
"""A real n8n for the native fleet and the end-to-end tests.

    python3 scripts/n8n_server.py setup            # install once (cached), print the command
    python3 scripts/n8n_server.py run --port 5678  # serve it on 127.0.0.1:5678 until stopped

n8n comes from npm. The newest releases need Node 24; on Node 20 the 2.8 line is the last
that installs, and one of its dependencies (`xlsx`) is fetched from outside the registry
unless package.json overrides it with the registry's `xlsx@0.18.5`. The install (~8 min,
~2.3 GB) lands once in `$HARVIS_CACHE/n8n-<version>/` (~/.cache/harvis), outside the checkout.

Its data lives in the git-ignored `.dev/n8n/`. The owner account and the public-API key are
not made here: n8n-integration provisions them itself on first need (N8N_OWNER_PASSWORD, which
fleet.py generates into `.dev/n8n/owner-password`) and keeps the key in `.dev/n8n/api-key` —
the same code path as in containers. SQLite, loopback only, telemetry/version checks/templates
off. Stdlib only, like fleet.py.

Every user of Harvis can make this n8n run a workflow (issue 14), so it is locked down the
same way as docker-compose.yaml's n8n: every outbound HTTP request goes through
n8n-integration's vetting proxy (HTTP_PROXY/HTTPS_PROXY/ALL_PROXY, both spellings, and no
NO_PROXY: n8n reads them through proxy-from-env, where lower case wins), only the node types
users may use are loaded (NODES_INCLUDE, the list in n8n-integration's allowed_nodes.json),
expressions can't read the environment, no community packages, no Python, and every
execution ends after EXECUTIONS_TIMEOUT. Natively nothing firewalls n8n: the proxy settings
and n8n-integration's checks of literal URLs at create time hold the line together.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import preparing
from fleet import CACHE, STATE, locked, say, wait_http
from preparing import Progress

N8N_VERSION = "2.8.4"
XLSX_OVERRIDE = "0.18.5"
DEFAULT_PORT = 5678
# n8n-integration's vetting proxy (its N8N_EGRESS_PROXY_PORT, same default).
EGRESS_PROXY_PORT = 5690
# The node types users may use: n8n-integration's list (its validation refuses the rest too).
ALLOWED_NODES = Path(__file__).resolve().parent.parent / "microservices" / "n8n-integration" / "n8n_integration"
ALLOWED_NODES /= "allowed_nodes.json"
EXECUTION_TIMEOUT_S = 120
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy")
READY_TIMEOUT_S = 120
INSTALL_EXPECTED_S = 480.0  # npm install of n8n on a fresh machine (npm reports no progress)


def install_dir() -> Path:
    return CACHE / f"n8n-{N8N_VERSION}"


def binary() -> Path:
    return install_dir() / "node_modules" / ".bin" / "n8n"


def node_ok() -> str | None:
    """None when node/npm fit n8n 2.8 (Node ≥ 20.19), else why not."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        return "node and npm are not installed (apt-get install nodejs npm)"
    out = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip().lstrip("v")
    try:
        major, minor = (int(p) for p in out.split(".")[:2])
    except ValueError:
        return f"cannot read the node version ({out!r})"
    if (major, minor) < (20, 19):
        return f"n8n {N8N_VERSION} needs Node >= 20.19 (found {out})"
    return None


def ready() -> bool:
    """Installed already (then `run` starts n8n at once)."""
    return (install_dir() / ".complete").exists() and binary().exists()


def ensure() -> Path:
    """The n8n binary, installed from npm once into the cache."""
    target = install_dir()
    with locked(target.with_suffix(".lock")):
        if (target / ".complete").exists() and binary().exists():
            return binary()
        why = node_ok()
        if why:
            raise SystemExit(f"n8n_server: {why}")
        target.mkdir(parents=True, exist_ok=True)
        (target / "package.json").write_text(
            json.dumps(
                {
                    "name": "harvis-n8n-runtime",
                    "private": True,
                    "version": "0.0.0",
                    "dependencies": {"n8n": N8N_VERSION},
                    "overrides": {"xlsx": XLSX_OVERRIDE},
                },
                indent=2,
            )
            + "\n"
        )
        say(f"installing n8n {N8N_VERSION} from npm into {target} (once; ~8 minutes, ~2.3 GB)")
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=str(target), check=True)
        if not binary().exists():
            raise SystemExit(f"n8n_server: npm install finished but {binary()} is missing")
        (target / ".complete").touch()
        return binary()


def data_dir() -> Path:
    return Path(os.environ.get("HARVIS_N8N_DIR", STATE / "n8n"))


def proxy_url() -> str:
    port = int(os.environ.get("N8N_EGRESS_PROXY_PORT") or EGRESS_PROXY_PORT)
    return f"http://127.0.0.1:{port}"


def lockdown() -> dict[str, str]:
    """What keeps users' workflows inside the lines (see the module's docstring)."""
    proxy = proxy_url()
    out = {name: proxy for var in _PROXY_VARS for name in (var, var.upper())}
    out.update(
        {
            "NODES_INCLUDE": json.dumps(sorted(json.loads(ALLOWED_NODES.read_text()))),
            "N8N_BLOCK_ENV_ACCESS_IN_NODE": "true",
            "N8N_COMMUNITY_PACKAGES_ENABLED": "false",
            "N8N_PYTHON_ENABLED": "false",
            "EXECUTIONS_TIMEOUT": str(EXECUTION_TIMEOUT_S),
            "EXECUTIONS_TIMEOUT_MAX": str(EXECUTION_TIMEOUT_S),
        }
    )
    return out


def _inherited() -> dict[str, str]:
    """The caller's environment without any proxy setting of its own (NO_PROXY would exempt
    hosts from the vetting proxy; npm's spellings count too for proxy-from-env)."""
    drop = {*_PROXY_VARS, "no_proxy", "npm_config_proxy", "npm_config_https_proxy", "npm_config_http_proxy"}
    drop.add("npm_config_no_proxy")
    return {k: v for k, v in os.environ.items() if k.lower() not in drop}


def env(port: int = DEFAULT_PORT, folder: Path | None = None) -> dict[str, str]:
    folder = folder or data_dir()
    return {
        **_inherited(),
        **lockdown(),
        "N8N_USER_FOLDER": str(folder),
        "N8N_PORT": str(port),
        "N8N_LISTEN_ADDRESS": "127.0.0.1",
        "N8N_HOST": "127.0.0.1",
        "N8N_PROTOCOL": "http",
        "WEBHOOK_URL": f"http://127.0.0.1:{port}/",
        "N8N_DIAGNOSTICS_ENABLED": "false",
        "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
        "N8N_TEMPLATES_ENABLED": "false",
        "N8N_PERSONALIZATION_ENABLED": "false",
        "N8N_SECURE_COOKIE": "false",
        "N8N_RUNNERS_BROKER_PORT": str(port + 1),  # the Code node's task runner broker (loopback)
        "N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS": "false",
        "N8N_PUBLIC_API_SWAGGERUI_DISABLED": "true",
        "DB_TYPE": "sqlite",
        "EXECUTIONS_DATA_SAVE_ON_SUCCESS": "all",
        "EXECUTIONS_DATA_SAVE_MANUAL_EXECUTIONS": "true",
    }


def command(port: int = DEFAULT_PORT) -> list[str]:
    return [str(binary()), "start"]


def base_url(port: int = DEFAULT_PORT) -> str:
    return f"http://127.0.0.1:{port}"


def key_file(folder: Path | None = None) -> Path:
    """Where n8n-integration keeps the API key it provisions (N8N_API_KEY_FILE)."""
    return (folder or data_dir()) / "api-key"


def owner_password(folder: Path | None = None) -> str:
    """The owner's password, generated once per data directory (n8n's rule: 8+ characters,
    a digit and a capital letter); n8n-integration gets it as N8N_OWNER_PASSWORD."""
    path = (folder or data_dir()) / "owner-password"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("Hv1-" + secrets.token_urlsafe(18) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def wait_ready(port: int = DEFAULT_PORT, timeout: float = READY_TIMEOUT_S) -> bool:
    # /healthz answers before the REST routes exist; /rest/settings only once they do.
    return wait_http(base_url(port) + "/rest/settings", timeout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cmd", choices=["setup", "run"])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args()
    if args.cmd == "setup":
        ensure()
        print(" ".join(command(args.port)))
        return 0
    # A first run installs n8n (minutes): meanwhile its port answers 503 with the progress,
    # which n8n-integration passes on. A failed install keeps answering with the reason
    # (a supervisor restarting us would only fail the same way again).
    progress = Progress("n8n is still being installed", expected_s=INSTALL_EXPECTED_S)
    with preparing.serving(progress, args.port):
        try:
            ensure()
        except (subprocess.CalledProcessError, OSError, SystemExit) as exc:
            progress.fail(f"n8n could not be installed ({exc}); the fleet's log says why")
            say(progress.message())
            while True:
                time.sleep(3600)
    data_dir().mkdir(parents=True, exist_ok=True)
    # honcho and the test fleet stop us with SIGTERM, a shell's background job ignores SIGINT:
    # both end in the `finally` below, which stops n8n too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    proc = subprocess.Popen(command(args.port), env=env(args.port))
    try:
        if not wait_ready(args.port):
            say("n8n did not become ready")
            return 1
        say(f"n8n {N8N_VERSION} on {base_url(args.port)}")
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(20)


if __name__ == "__main__":
    sys.exit(main())
