#!/usr/bin/env python3
"""A real n8n for the native fleet and the end-to-end tests.

    python3 scripts/n8n_server.py setup            # install once (cached), print the command
    python3 scripts/n8n_server.py run --port 5678  # serve it on 127.0.0.1:5678, bootstrap, wait

n8n comes from npm. The newest releases need Node 24; on Node 20 the 2.8 line is the last
that installs, and one of its dependencies (`xlsx`) is fetched from outside the registry
unless package.json overrides it with the registry's `xlsx@0.18.5`. The install (~8 min,
~2.3 GB) lands once in `$HARVIS_CACHE/n8n-<version>/` (~/.cache/harvis), outside the checkout.

On first start its owner account and a public-API key are created through n8n's own
internal REST API (`POST /rest/owner/setup`, `POST /rest/login`, `POST /rest/api-keys`)
— no clicks — and kept with its data in the git-ignored `.dev/n8n/` (`api-key`, 0600).
SQLite, loopback only, telemetry/version checks/templates off. Stdlib only, like fleet.py.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleet import CACHE, STATE, locked, say

N8N_VERSION = "2.8.4"
XLSX_OVERRIDE = "0.18.5"
DEFAULT_PORT = 5678
OWNER_EMAIL = "owner@harvis.local"
OWNER_NAME = ("Harvis", "Owner")
READY_TIMEOUT_S = 120


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


def env(port: int = DEFAULT_PORT, folder: Path | None = None) -> dict[str, str]:
    folder = folder or data_dir()
    return {
        **os.environ,
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
    return (folder or data_dir()) / "api-key"


def _request(opener, method: str, url: str, body: dict | None = None, headers: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(  # noqa: S310 - our own loopback n8n
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    with opener.open(req, timeout=30) as resp:
        return json.loads(resp.read() or b"{}")


def wait_ready(port: int = DEFAULT_PORT, timeout: float = READY_TIMEOUT_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            # /healthz answers before the REST routes exist; /rest/settings only once they do.
            with urllib.request.urlopen(base_url(port) + "/rest/settings", timeout=2) as resp:  # noqa: S310
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    return False


def key_works(port: int, key: str) -> bool:
    req = urllib.request.Request(base_url(port) + "/api/v1/workflows?limit=1", headers={"X-N8N-API-KEY": key})  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def bootstrap(port: int = DEFAULT_PORT, folder: Path | None = None, timeout: float = 90) -> str:
    """`_bootstrap`, retried while n8n is still registering its routes (right after it
    listens, /rest/* answers 404 or the editor's HTML for a few seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _bootstrap(port, folder)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            if time.monotonic() > deadline:
                raise SystemExit(f"n8n_server: could not create n8n's owner and API key: {exc}") from exc
            time.sleep(1)


def _bootstrap(port: int = DEFAULT_PORT, folder: Path | None = None) -> str:
    """The public-API key: the stored one if it still works, else owner setup (first start
    only) + login + a new key through n8n's internal REST API, stored 0600."""
    folder = folder or data_dir()
    path = key_file(folder)
    if path.exists():
        key = path.read_text().strip()
        if key and key_works(port, key):
            return key
    pw_file = folder / "owner-password"
    if not pw_file.exists():
        folder.mkdir(parents=True, exist_ok=True)
        pw_file.write_text("Hv1-" + secrets.token_urlsafe(18) + "\n")
        pw_file.chmod(0o600)
    password = pw_file.read_text().strip()
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    base = base_url(port)
    try:
        _request(
            opener,
            "POST",
            base + "/rest/owner/setup",
            {"email": OWNER_EMAIL, "firstName": OWNER_NAME[0], "lastName": OWNER_NAME[1], "password": password},
        )
    except urllib.error.HTTPError as exc:
        if exc.code != 400:  # 400: the owner exists already
            raise
    _request(opener, "POST", base + "/rest/login", {"emailOrLdapLoginId": OWNER_EMAIL, "password": password})
    body = {"label": f"harvis-{int(time.time())}", "scopes": _scopes(opener, base), "expiresAt": None}
    out = _request(opener, "POST", base + "/rest/api-keys", body)
    key = out.get("data", out).get("rawApiKey") or out.get("data", out).get("apiKey")
    if not key:
        raise SystemExit(f"n8n_server: n8n answered no API key: {str(out)[:300]}")
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def _scopes(opener, base: str) -> list[str]:
    try:
        out = _request(opener, "GET", base + "/rest/api-keys/scopes")
        scopes = out.get("data", out)
        if isinstance(scopes, list) and scopes:
            return scopes
    except (urllib.error.URLError, OSError, ValueError):
        pass
    return [
        "workflow:create",
        "workflow:read",
        "workflow:update",
        "workflow:delete",
        "workflow:list",
        "workflow:activate",
        "workflow:deactivate",
        "execution:read",
        "execution:list",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cmd", choices=["setup", "run", "bootstrap"])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args()
    ensure()
    if args.cmd == "setup":
        print(" ".join(command(args.port)))
        return 0
    if args.cmd == "bootstrap":
        print(bootstrap(args.port))
        return 0
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
        bootstrap(args.port)
        say(f"n8n {N8N_VERSION} on {base_url(args.port)} (API key in {key_file()})")
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(20)


if __name__ == "__main__":
    sys.exit(main())
