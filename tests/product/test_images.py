"""The images, as the README builds them (`make build`, `make build-voice`), run the way
docker-compose.yaml runs them, answering a user through nginx :9000.

Every service container runs from its image as its non-root user with the compose file's
security settings (cap_drop, no-new-privileges, init, shm size, named volumes) and the
environment keys compose gives it. What compose would also start from registries
(PostgreSQL, Redis, nginx, Ollama, n8n) can't be pulled here, so the containers use this
machine's: PostgreSQL and Redis on 127.0.0.1, and the native runner's nginx, demo model
server and n8n (host network: the compose service names become 127.0.0.1).

One real answer per service goes through nginx → the core-api container → the service's
container (features.py, the same checks `make dev` passes).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import features
import httpx
import images
import pytest
import yaml
from conftest import BASE_URL, ROOT, fleet
from fleet_services import SERVICES, Service

from harvis_testkit import create_database_sync, drop_database_sync

# The demo model and n8n are built by `make setup` / the suites before this one.
READY_TIMEOUT_S = 300
REDIS_URL = "redis://127.0.0.1:6379/13"
PREFIX = "harvis-test-"
# Not the suites' shared test-logs/ (the e2e fleet empties it when it starts).
LOG_DIR = fleet.STATE / "test-images-logs"


def make(*targets: str) -> float:
    """`make <targets>` in this checkout, as a user runs it; returns the seconds it took."""
    started = time.monotonic()
    log = LOG_DIR / f"make-{'-'.join(targets)}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        proc = subprocess.run(["make", *targets], cwd=str(ROOT), stdout=out, stderr=subprocess.STDOUT, check=False)
    assert proc.returncode == 0, f"make {' '.join(targets)} failed:\n{log.read_text()[-4000:]}"
    return time.monotonic() - started


def compose_services() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())["services"]


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class ImageFleet:
    """The seven service containers, on the host network, behind the native nginx."""

    def __init__(self, engine: images.Engine) -> None:
        self.engine = engine
        self.database, self.dsn = create_database_sync("harvis_images")
        n8n_dir = fleet.STATE / "test-images-n8n"
        shutil.rmtree(n8n_dir, ignore_errors=True)  # a fresh n8n (owner, SQLite) per run
        self.prep = fleet.Prepared(self.dsn, n8n_dir=n8n_dir)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.volumes: set[str] = set()
        self.run_id = uuid.uuid4().hex[:8]

    def native_env(self, svc: Service) -> dict[str, str]:
        """What this machine's services are reached at, for the keys compose names."""
        env = {
            **fleet.fleet_env(self.prep.secrets, self.dsn),
            **self.prep.llm_env,
            "REDIS_URL": REDIS_URL,
            "CORE_API_URL": "http://127.0.0.1:8000",
        }
        if svc.name == "core-api":
            for key in ("JWT_SECRET", "INTERNAL_AUTH_PRIVATE_KEY", "API_KEY_ENCRYPTION_KEY"):
                env[key] = self.prep.secrets[key]
            env["TRUSTED_PROXY_CIDRS"] = "127.0.0.1/32"  # the native nginx
        if svc.name == "n8n-integration":
            # As compose runs it: no key file (the native runner's is a host path); the service
            # provisions n8n's owner and its API key from N8N_OWNER_PASSWORD and keeps the key.
            env.update({k: v for k, v in self.prep.n8n_env.items() if k != "N8N_API_KEY_FILE"})
        return env

    def run_args(self, svc: Service) -> list[str]:
        spec = compose_services()[svc.name]
        args = ["run", "-d", "--name", PREFIX + svc.name, "--network", "host"]
        if spec.get("init"):
            args.append("--init")
        args += [f"--cap-drop={c}" for c in spec.get("cap_drop", [])]
        args += [f"--cap-add={c}" for c in spec.get("cap_add", [])]
        args += [f"--security-opt={o}" for o in spec.get("security_opt", [])]
        if spec.get("read_only"):
            args.append("--read-only")
        args += [f"--tmpfs={t}" for t in spec.get("tmpfs", [])]
        if spec.get("shm_size"):
            args.append(f"--shm-size={spec['shm_size']}")
        for volume in spec.get("volumes", []):
            name, _, target = volume.partition(":")
            args += ["-v", f"{PREFIX}{self.run_id}-{name}:{target}"]
            self.volumes.add(f"{PREFIX}{self.run_id}-{name}")
        native = self.native_env(svc)
        for key, value in (spec.get("environment") or {}).items():
            if key in native:
                args += ["-e", f"{key}={native[key]}"]
            elif value is not None and "${" not in str(value) and "//" not in str(value):
                args += ["-e", f"{key}={value}"]  # in-image paths and fixed values, as compose sets them
        return [*args, images.image_name(svc.name)]

    def start(self) -> None:
        log_env = dict(os.environ)
        if self.prep.llm_command:
            self.procs.append(self._spawn("llm", self.prep.llm_command, log_env))
        if self.prep.n8n_command:
            self.procs.append(self._spawn("n8n", self.prep.n8n_command, {**log_env, **self.prep.n8n_proc_env}))
        self.remove_containers()
        for svc in SERVICES:
            self.engine.run(*self.run_args(svc), capture=True)
        self.procs.append(self._spawn("nginx", fleet.nginx_command(self.prep.nginx, self.prep.nginx_conf), log_env))

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        out = (LOG_DIR / f"images-{name}.log").open("ab")
        return subprocess.Popen(
            cmd, env=env, cwd=str(ROOT), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def inspect(self, svc: Service) -> dict[str, Any]:
        out = self.engine.run("inspect", PREFIX + svc.name, capture=True).stdout
        return json.loads(out)[0]

    def logs(self, svc: Service) -> str:
        proc = self.engine.run("logs", PREFIX + svc.name, check=False, capture=True)
        return (proc.stdout + proc.stderr)[-4000:]

    def healthy(self, svc: Service) -> bool:
        """The image's own HEALTHCHECK, run by the engine."""
        return self.engine.run("healthcheck", "run", PREFIX + svc.name, check=False, capture=True).returncode == 0

    def remove_containers(self) -> None:
        names = [PREFIX + s.name for s in SERVICES]
        self.engine.run("rm", "-f", "-t", "5", *names, check=False, capture=True)

    def close(self) -> None:
        for svc in SERVICES:
            (LOG_DIR / f"images-{svc.name}.log").write_text(self.logs(svc))
        self.remove_containers()
        if self.volumes:
            self.engine.run("volume", "rm", "-f", *sorted(self.volumes), check=False, capture=True)
        for proc in self.procs:
            stop_group(proc)
        self.prep.close()
        drop_database_sync(self.database)


@pytest.fixture(scope="module")
def built() -> float:
    seconds = make("build")
    print(f"make build: {seconds:.0f} s")
    return seconds


@pytest.fixture(scope="module")
def running(built: float, free_ports: None) -> Iterator[ImageFleet]:
    engine = images.Engine.find()
    fleet_ = ImageFleet(engine)
    try:
        fleet_.start()
        for svc in SERVICES:
            features.wait_until(f"{svc.name}'s health check", lambda s=svc: fleet_.healthy(s), 120, interval=1)
        features.wait_until("nginx", lambda: fleet.wait_http(f"{BASE_URL}/health", 1), 30, interval=0.5)
        yield fleet_
    finally:
        fleet_.close()


@pytest.fixture(scope="module")
def headers(running: ImageFleet) -> dict[str, str]:
    with httpx.Client(base_url=BASE_URL, timeout=60) as c:
        return features.bearer(features.signup(c))


def test_make_build_voice_builds_the_cpu_voice_image(built: float) -> None:
    """`make build-voice` (the README's one-service rebuild) tags the voice image anew, the CPU
    variant: its engines are there, torch is not."""
    engine = images.Engine.find()
    image = images.image_name("voice-service")
    engine.run("tag", image, "harvis/voice-service:before-rebuild", capture=True)
    engine.run("rmi", image, capture=True)  # only the tag: the layers stay cached
    try:
        seconds = make("build-voice")
        print(f"make build-voice after make build: {seconds:.0f} s")
        assert engine.exists(image), "make build-voice did not tag the voice image"
        probe = "import faster_whisper, piper, importlib.util as u; print(u.find_spec('torch') is None)"
        out = engine.run("run", "--rm", "--entrypoint", "python", image, "-c", probe, capture=True).stdout
        assert out.strip().splitlines()[-1] == "True", out
    finally:
        engine.run("rmi", "harvis/voice-service:before-rebuild", check=False, capture=True)


@pytest.mark.parametrize("svc", SERVICES, ids=lambda s: s.name)
def test_runs_as_compose_says(running: ImageFleet, svc: Service) -> None:
    info = running.inspect(svc)
    config, host = info["Config"], info["HostConfig"]
    assert config["User"] == "10001:10001", config["User"]
    assert host["CapDrop"] and not host.get("CapAdd"), (host["CapDrop"], host.get("CapAdd"))
    assert any("no-new-privileges" in o for o in host.get("SecurityOpt") or []), host.get("SecurityOpt")
    top = running.engine.run("top", PREFIX + svc.name, "user", "args", capture=True).stdout
    assert "uvicorn" in top and "root" not in top.split("uvicorn")[0].splitlines()[-1], top


def test_signup_and_chat_with_the_demo_model(running: ImageFleet, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=BASE_URL, timeout=60) as c:
        features.check_demo_model_chat(c, headers, READY_TIMEOUT_S)


def test_research_container_answers(running: ImageFleet, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=BASE_URL, timeout=60) as c:
        features.check_research(c, headers)


def test_voice_container_round_trip(running: ImageFleet, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=BASE_URL, timeout=60) as c:
        features.check_voice_round_trip(c, headers)


def test_browser_container_answers(running: ImageFleet, headers: dict[str, str], tmp_path: Path) -> None:
    with httpx.Client(base_url=BASE_URL, timeout=60) as c:
        features.check_browser(c, headers, tmp_path)


def test_mcp_container_answers(running: ImageFleet, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=BASE_URL, timeout=60) as c:
        features.check_mcp_files(c, headers)


def test_code_runs_in_the_vibe_coding_containers_sandbox(running: ImageFleet, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=BASE_URL, timeout=60) as c:
        features.check_sandboxed_run(c, headers)


def test_n8n_integration_container_runs_a_workflow(running: ImageFleet, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=BASE_URL, timeout=60) as c:
        features.check_n8n_workflow(c, headers, READY_TIMEOUT_S)
