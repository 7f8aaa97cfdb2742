"""The images, as the README builds them (`make build`, `make build-voice`), run the way
docker-compose.yaml runs them, answering a user through nginx :9000.

Every service container runs from its image as its non-root user with the compose file's
security settings (cap_drop, no-new-privileges, init, shm size, named volumes) and the
environment keys compose gives it. What compose would also start from registries
(PostgreSQL, Redis, nginx, Ollama, n8n) can't be pulled here, so the containers use this
machine's: PostgreSQL and Redis on 127.0.0.1, and the native runner's nginx, demo model
server and n8n (host network: the compose service names become 127.0.0.1).

One real answer per service goes through nginx → the core-api container → the service's
container (features.py, the same checks `make dev` passes); an artifact core-api queues is
rendered by the artifact-renderer container (core-api's image has no rendering libraries).
The vibe-coding container's sandbox (bubblewrap inside it) passes the same hostile checks as
the native one (sandbox_checks.py).

The sandbox images (harvis/sandbox-<language>, built by `make build`) run a program with exactly
the container DockerSandbox asks the engine for, and vibe-coding run natively with its docker
backend on podman's Docker-compatible API passes the hostile checks too (the last tests here:
that vibe-coding takes the container's place on its port).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import features
import httpx
import images
import pytest
import sandbox_checks
import yaml
from conftest import BASE_URL, ROOT, fleet
from fleet_services import SERVICES, Service, by_name

from harvis_testkit import create_database_sync, drop_database_sync

sys.path.insert(0, str(ROOT / "microservices" / "vibe-coding"))  # the docker backend's container spec
from vibe_coding.sandbox import LANGUAGES, Limits, SandboxTarget, container_spec, program_for

# The demo model and n8n are built by `make setup` / the suites before this one.
READY_TIMEOUT_S = 300
REDIS_URL = "redis://127.0.0.1:6379/13"
PREFIX = "harvis-test-"
# Not the suites' shared test-logs/ (the e2e fleet empties it when it starts).
LOG_DIR = fleet.STATE / "test-images-logs"
# The seven services' containers and core-api's rendering worker's.
CONTAINERS = [*(s.name for s in SERVICES), images.RENDERER]


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
    """The seven service containers and the artifact-renderer, on the host network, behind the
    native nginx."""

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
            # A setting of compose's (.env): the sandbox checks sign up a few users from 127.0.0.1,
            # and this Redis database outlives a run.
            env["SIGNUP_RATE_PER_IP"] = "1000"
        if svc.name == "n8n-integration":
            # As compose runs it: no key file (the native runner's is a host path); the service
            # provisions n8n's owner and its API key from N8N_OWNER_PASSWORD and keeps the key.
            env.update({k: v for k, v in self.prep.n8n_env.items() if k != "N8N_API_KEY_FILE"})
        return env

    def run_args(self, name: str, native: dict[str, str]) -> list[str]:
        """`<engine> run` of compose's service `name`, its settings from `native`."""
        spec = compose_services()[name]
        args = ["run", "-d", "--name", PREFIX + name, "--network", "host"]
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
            volume_name, _, target = volume.partition(":")
            args += ["-v", f"{PREFIX}{self.run_id}-{volume_name}:{target}"]
            self.volumes.add(f"{PREFIX}{self.run_id}-{volume_name}")
        for key, value in (spec.get("environment") or {}).items():
            if key in native:
                args += ["-e", f"{key}={native[key]}"]
            elif value is not None and "${" not in str(value) and "//" not in str(value):
                args += ["-e", f"{key}={value}"]  # in-image paths and fixed values, as compose sets them
        return [*args, images.image_name(name)]

    def start(self) -> None:
        log_env = dict(os.environ)
        if self.prep.llm_command:
            self.procs.append(self._spawn("llm", self.prep.llm_command, log_env))
        if self.prep.n8n_command:
            self.procs.append(self._spawn("n8n", self.prep.n8n_command, {**log_env, **self.prep.n8n_proc_env}))
        self.remove_containers()
        for svc in SERVICES:
            self.engine.run(*self.run_args(svc.name, self.native_env(svc)), capture=True)
        # core-api (ARTIFACT_RENDER_WORKERS=0 in its image) queues artifacts; this renders them.
        self.engine.run(*self.run_args(images.RENDERER, {"DATABASE_URL": self.dsn}), capture=True)
        self.procs.append(self._spawn("nginx", fleet.nginx_command(self.prep.nginx, self.prep.nginx_conf), log_env))

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        out = (LOG_DIR / f"images-{name}.log").open("ab")
        return subprocess.Popen(
            cmd, env=env, cwd=str(ROOT), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def inspect(self, name: str) -> dict[str, Any]:
        out = self.engine.run("inspect", PREFIX + name, capture=True).stdout
        return json.loads(out)[0]

    def logs(self, name: str) -> str:
        proc = self.engine.run("logs", PREFIX + name, check=False, capture=True)
        return (proc.stdout + proc.stderr)[-4000:]

    def healthy(self, name: str) -> bool:
        """The image's own HEALTHCHECK, run by the engine."""
        return self.engine.run("healthcheck", "run", PREFIX + name, check=False, capture=True).returncode == 0

    def remove_containers(self) -> None:
        names = [PREFIX + name for name in CONTAINERS]
        self.engine.run("rm", "-f", "-t", "5", *names, check=False, capture=True)

    def close(self) -> None:
        for name in CONTAINERS:
            (LOG_DIR / f"images-{name}.log").write_text(self.logs(name))
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
        for name in CONTAINERS:
            features.wait_until(f"{name}'s health check", lambda n=name: fleet_.healthy(n), 120, interval=1)
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


@pytest.mark.parametrize("name", CONTAINERS)
def test_runs_as_compose_says(running: ImageFleet, name: str) -> None:
    info = running.inspect(name)
    config, host = info["Config"], info["HostConfig"]
    assert config["User"] == "10001:10001", config["User"]
    assert host["CapDrop"] and not host.get("CapAdd"), (host["CapDrop"], host.get("CapAdd"))
    assert any("no-new-privileges" in o for o in host.get("SecurityOpt") or []), host.get("SecurityOpt")
    assert host.get("ReadonlyRootfs", False) == bool(compose_services()[name].get("read_only")), host
    top = running.engine.run("top", PREFIX + name, "user", "args", capture=True).stdout
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


def test_the_renderer_container_renders_what_the_core_api_container_queues(
    running: ImageFleet, headers: dict[str, str]
) -> None:
    probe = "import importlib.util as u; print(u.find_spec('openpyxl') is None)"
    core_api = images.image_name("core-api")
    out = running.engine.run("run", "--rm", "--entrypoint", "python", core_api, "-c", probe, capture=True).stdout
    assert out.strip().splitlines()[-1] == "True", "the core-api image carries no rendering library"
    with httpx.Client(base_url=BASE_URL, timeout=60) as c:
        features.check_artifact(c, headers)
    assert "artifact rendered" in running.logs(images.RENDERER)


def test_n8n_integration_container_runs_a_workflow(running: ImageFleet, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=BASE_URL, timeout=60) as c:
        features.check_n8n_workflow(c, headers, READY_TIMEOUT_S)


# ---------------------------------------------------------------- the sandbox, in containers

# "The host" of the vibe-coding container's sandbox is two things: the real host (this checkout:
# its code, its secrets) and the container's own root (the service's code and venv, the
# workspaces of every session, the service user's home). Its /usr, /etc and /bin are the
# sandbox's read-only system, as the host's are natively.
HOST_FILES = (f"{ROOT}/scripts/fleet.py", f"{ROOT}/.dev/secrets.env")
HOST_DIRS = (str(ROOT),)
CONTAINER_FILES = ("/app/vibe_coding/main.py", "/opt/venv/bin/python")
CONTAINER_DIRS = ("/app", "/opt/venv", "/data/workspaces", "/home/harvis")


def run_check(check: Any, headers: dict[str, str], files: tuple[str, ...], dirs: tuple[str, ...]) -> None:
    with httpx.Client(base_url=BASE_URL, timeout=60) as c:
        if check is sandbox_checks.check_host_files_are_unreadable:
            check(c, headers, files, dirs)
        else:
            check(c, headers)


@pytest.fixture(scope="module")
def sandbox_user(running: ImageFleet) -> dict[str, str]:
    """One user for the container's sandbox checks (each makes a session: the per-user cap)."""
    with httpx.Client(base_url=BASE_URL, timeout=60) as c:
        return features.bearer(features.signup(c))


@pytest.mark.parametrize(
    "check",
    [*sandbox_checks.CHECKS, sandbox_checks.check_terminal_websocket],
    ids=lambda c: c.__name__.removeprefix("check_"),
)
def test_vibe_coding_containers_sandbox_holds(running: ImageFleet, sandbox_user: dict[str, str], check: Any) -> None:
    """The native sandbox's hostile checks, through nginx → the core-api container → the
    vibe-coding container (bubblewrap in it, as compose runs it)."""
    run_check(check, sandbox_user, HOST_FILES + CONTAINER_FILES, HOST_DIRS + CONTAINER_DIRS)


# What DockerSandbox runs with by default (vibe-coding's Settings: VIBE_EXEC_*).
SANDBOX_LIMITS = Limits(
    timeout_s=30,
    memory_bytes=1024 * 1024 * 1024,
    max_procs=64,
    cpu_s=120,
    file_bytes=100 * 1024 * 1024,
    output_bytes=262_144,
)
SANDBOX_UID = 200_000  # VIBE_SANDBOX_UID_BASE: a session's uid, none of the image's


def engine_run_args(spec: dict[str, Any]) -> list[str]:
    """`run` arguments for the container DockerSandbox creates through the engine's API
    (`container_spec`): every key of the spec, or this fails (a new one must be translated)."""
    handled = {
        "image", "command", "user", "working_dir", "environment", "network_mode", "mem_limit",
        "memswap_limit", "nano_cpus", "pids_limit", "read_only", "tmpfs", "volumes", "cap_drop",
        "security_opt", "ulimits", "init", "stdin_open", "tty", "detach", "labels",
    }  # fmt: skip
    assert set(spec) == handled, set(spec) ^ handled
    assert not spec["stdin_open"] and not spec["tty"] and spec["detach"]
    args = ["run", "--rm", "--user", spec["user"], "--workdir", spec["working_dir"]]
    args += ["--network", spec["network_mode"], f"--memory={spec['mem_limit']}"]
    args += [f"--memory-swap={spec['memswap_limit']}", f"--cpus={spec['nano_cpus'] / 1e9:g}"]
    args += [f"--pids-limit={spec['pids_limit']}"]
    args += ["--read-only"] if spec["read_only"] else []
    args += [f"--tmpfs={path}:{opts}" for path, opts in spec["tmpfs"].items()]
    args += [f"--volume={host}:{bind['bind']}:{bind['mode']}" for host, bind in spec["volumes"].items()]
    args += [f"--cap-drop={cap}" for cap in spec["cap_drop"]]
    args += [f"--security-opt={opt}" for opt in spec["security_opt"]]
    args += [f"--ulimit={u['Name']}={u['Soft']}:{u['Hard']}" for u in spec["ulimits"]]
    args += ["--init"] if spec["init"] else []
    args += [f"--env={key}={value}" for key, value in spec["environment"].items()]
    args += [f"--label={key}={value}" for key, value in spec["labels"].items()]
    return [*args, spec["image"], *spec["command"]]


SANDBOX_PROGRAMS = {
    "python": "import os; print(6 * 7, os.getuid(), os.getcwd())",
    "node": "console.log(6 * 7, process.getuid(), process.cwd())",
    "bash": "echo $((6 * 7)) $(id -u) $PWD",
}


@pytest.mark.parametrize("language", images.SANDBOX_LANGUAGES)
def test_sandbox_image_runs_a_program(built: float, language: str, tmp_path: Path) -> None:
    """`make build` built harvis/sandbox-<language> (both tags), non-root by default, and it runs
    a program as DockerSandbox starts one: the session's uid, no network, the limits."""
    engine = images.Engine.find()
    for image in images.sandbox_images(language):
        assert engine.exists(image), f"make build did not build {image}"
    info = json.loads(engine.run("image", "inspect", images.image_name(f"sandbox-{language}"), capture=True).stdout)
    assert info[0]["Config"]["User"] == "65534:65534", info[0]["Config"]["User"]
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    os.chown(workspace, SANDBOX_UID, SANDBOX_UID)
    spec = container_spec(
        image=images.sandbox_images(language)[-1],  # VIBE_DOCKER_IMAGE's default: :latest
        program=program_for(LANGUAGES[language], SANDBOX_PROGRAMS[language], None),
        target=SandboxTarget(workspace, SANDBOX_UID, "image-check"),
        host_workspace=workspace,
        limits=SANDBOX_LIMITS,
        uid=SANDBOX_UID,
    )
    out = engine.run(*engine_run_args(spec), capture=True, timeout=120)
    assert out.stdout.split() == ["42", str(SANDBOX_UID), "/workspace"], out.stdout + out.stderr


# ------------------------------------------ the docker backend, on podman's Docker-compatible API

DOCKER_SOCKET = fleet.STATE / "test-images-engine.sock"  # unix socket paths: under 108 bytes


def wait_socket(path: Path, timeout: float) -> bool:
    def answers() -> bool:
        with socket.socket(socket.AF_UNIX) as s:
            try:
                s.connect(str(path))
            except OSError:
                return False
            return True

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers():
            return True
        time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def vibe_on_docker_backend(running: ImageFleet) -> Iterator[dict[str, str]]:
    """vibe-coding run natively with VIBE_SANDBOX_BACKEND=docker against the engine's API (podman:
    its Docker-compatible one, `podman system service`), in the vibe-coding container's place on
    its port (the core-api container routes to it); yields a user's headers. The container is
    started again after."""
    engine = running.engine
    api: subprocess.Popen[bytes] | None = None
    if engine.name == "podman":
        DOCKER_SOCKET.unlink(missing_ok=True)
        serve = [engine.name, "system", "service", "--time=0", f"unix://{DOCKER_SOCKET}"]
        api = running._spawn("podman-api", serve, engine.env)
        url = f"unix://{DOCKER_SOCKET}"
    else:
        url = "unix:///var/run/docker.sock"  # docker's own API, what the backend is written for
    vibe = by_name("vibe-coding")
    native: subprocess.Popen[bytes] | None = None
    engine.run("stop", "-t", "5", PREFIX + vibe.name, capture=True)
    try:
        assert wait_socket(Path(url.removeprefix("unix://")), 30), f"nothing answers on {url}"
        workspaces = fleet.STATE / "test-images-docker-workspaces"
        shutil.rmtree(workspaces, ignore_errors=True)
        env = {
            **running.prep.env_for(vibe),
            "REDIS_URL": REDIS_URL,
            "VIBE_SANDBOX_BACKEND": "docker",
            "VIBE_DOCKER_URL": url,
            "VIBE_WORKSPACE_DIR": str(workspaces),
        }
        native = running._spawn("vibe-coding-docker-backend", fleet.service_command(vibe, running.prep.venvs), env)
        ready = f"http://127.0.0.1:{vibe.port}/ready"
        assert fleet.wait_http(ready, 60), (LOG_DIR / "images-vibe-coding-docker-backend.log").read_text()[-3000:]
        checks = {c["name"]: c for c in httpx.get(ready).json()["checks"]}
        assert checks["sandbox"]["ok"] and checks["sandbox"]["detail"].startswith("docker"), checks
        with httpx.Client(base_url=BASE_URL, timeout=60) as c:
            yield features.bearer(features.signup(c))
    finally:
        if native is not None:
            stop_group(native)
        if api is not None:
            stop_group(api)
        # Whatever sandbox container a failed check may have left.
        left = engine.run("ps", "-aq", "--filter", "label=harvis.service=vibe-coding", check=False, capture=True)
        if left.stdout.split():
            engine.run("rm", "-f", *left.stdout.split(), check=False, capture=True)
        engine.run("start", PREFIX + vibe.name, capture=True)
        features.wait_until("the vibe-coding container again", lambda: running.healthy(vibe.name), 120, interval=1)


def test_the_docker_backend_runs_code_in_the_sandbox_images(vibe_on_docker_backend: dict[str, str]) -> None:
    with httpx.Client(base_url=BASE_URL, timeout=60) as c:
        sid = sandbox_checks.new_session(c, vibe_on_docker_backend)
        out = sandbox_checks.run(c, vibe_on_docker_backend, sid, code="print(6 * 7)")
        assert (out["backend"], out["output"]) == ("docker", "42\n"), out


@pytest.mark.parametrize("check", sandbox_checks.CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
def test_the_docker_backend_holds(vibe_on_docker_backend: dict[str, str], check: Any) -> None:
    """The same hostile checks through the docker backend (the terminal is bubblewrap's only)."""
    run_check(check, vibe_on_docker_backend, HOST_FILES, HOST_DIRS)
