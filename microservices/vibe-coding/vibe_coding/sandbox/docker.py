"""Docker backend (production): one short-lived container per execution.

`container_spec` is a pure function (unit-tested without an engine): no
network, memory/CPU/pids limits, read-only root with a small /tmp tmpfs, the
session workspace as the only writable bind, a non-root user, every
capability dropped and no-new-privileges. Code runs inline (`python3 -c`,
`node -e`, `bash -c`); files a program needs beyond the workspace travel in
environment variables and are written to /tmp by a one-line shell stub, since
the root file system is read-only.
"""

from __future__ import annotations

import asyncio
import shlex
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .base import LANGUAGES, MAX_OPEN_FILES, SANDBOX_PATH, WORKDIR, Limits, Program, RunResult, SandboxTarget

CPUS = 1.0
CODE_ENV = "HARVIS_FILE_{n}"


def container_spec(
    *,
    image: str,
    program: Program,
    target: SandboxTarget,
    host_workspace: Path,
    limits: Limits,
    uid: int = 65534,
) -> dict[str, Any]:
    """Keyword arguments for `docker.DockerClient.containers.create`."""
    env = {"PATH": SANDBOX_PATH, "HOME": WORKDIR, "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
    stub = []
    for n, (dest, data) in enumerate(program.files.items()):
        env[CODE_ENV.format(n=n)] = data.decode("utf-8", "replace")
        folder = str(Path(dest).parent)
        stub.append(f'mkdir -p {shlex.quote(folder)} && printf %s "${CODE_ENV.format(n=n)}" > {shlex.quote(dest)}')
    argv = list(program.argv)
    if stub:
        argv = ["sh", "-c", " && ".join(stub) + ' && exec "$@"', "sh", *argv]
    return {
        "image": image,
        "command": argv,
        "user": f"{uid}:{uid}",
        "working_dir": WORKDIR,
        "environment": env,
        "network_mode": "none",
        "mem_limit": limits.memory_bytes,
        "memswap_limit": limits.memory_bytes,  # no swap on top
        "nano_cpus": int(CPUS * 1e9),
        "pids_limit": limits.max_procs,
        "read_only": True,
        "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={limits.tmp_bytes}"},  # noqa: S108 - the container's own
        "volumes": {str(host_workspace): {"bind": WORKDIR, "mode": "rw"}},
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        # The bubblewrap backend's rlimits. data (private writable memory) stands for its address
        # space limit, which engines don't offer: a program asking for too much gets a
        # MemoryError, not the memory cgroup's kill (the cgroup bounds the whole container).
        # nofile and nproc are not left to the engine: podman then asks for 1048576 of each,
        # which a host whose root lacks CAP_SYS_RESOURCE refuses. nproc counts the uid's
        # processes, the session's (pids_limit counts the container's).
        "ulimits": [
            {"Name": "data", "Soft": limits.memory_bytes, "Hard": limits.memory_bytes},
            {"Name": "fsize", "Soft": limits.file_bytes, "Hard": limits.file_bytes},
            {"Name": "cpu", "Soft": limits.cpu_s, "Hard": limits.cpu_s},
            {"Name": "core", "Soft": 0, "Hard": 0},
            {"Name": "nofile", "Soft": MAX_OPEN_FILES, "Hard": MAX_OPEN_FILES},
            {"Name": "nproc", "Soft": limits.max_procs, "Hard": limits.max_procs},
        ],
        "init": True,
        "stdin_open": False,
        "tty": False,
        "detach": True,
        "labels": {"harvis.service": "vibe-coding", "harvis.session": target.session_id},
    }


def create_kwargs(spec: dict[str, Any]) -> dict[str, Any]:
    """`spec` as the docker SDK's `containers.create` takes it (typed ulimits, no `detach`)."""
    from docker.types import Ulimit

    out = {k: v for k, v in spec.items() if k != "detach"}
    out["ulimits"] = [Ulimit(name=u["Name"], soft=u["Soft"], hard=u["Hard"]) for u in spec["ulimits"]]
    return out


def docker_socket_reachable(url: str) -> bool:
    """Auto-detection: does something answer on the engine's socket?"""
    parts = urlsplit(url)
    try:
        if parts.scheme == "unix":
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(0.5)
                s.connect(parts.path)
        elif parts.scheme in ("tcp", "http", "https"):
            with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 2375), timeout=0.5):
                pass
        else:
            return False
    except OSError:
        return False
    return True


class DockerSandbox:
    name = "docker"

    def __init__(self, url: str, image_template: str, workspace_dir: Path, host_workspace_dir: str = "") -> None:
        self.url = url
        self.image_template = image_template
        self.workspace_dir = workspace_dir
        self.host_workspace_dir = Path(host_workspace_dir) if host_workspace_dir else workspace_dir
        self._client: Any = None

    def client(self) -> Any:
        if self._client is None:
            import docker  # only this backend needs it

            self._client = docker.DockerClient(base_url=self.url, timeout=30)
        return self._client

    def available(self) -> str:
        version = self.client().version()
        return f"docker {version.get('Version', '?')}"

    def target_uid(self, uid: int | None) -> int | None:
        return uid

    def images(self) -> list[str]:
        return [self.image_template.format(language=lang.image) for lang in LANGUAGES.values()]

    def check(self) -> str:
        """The engine answers and has every language's image (else the first run would fail)."""
        import docker

        described = self.available()
        missing = []
        for image in self.images():
            try:
                self.client().images.get(image)
            except docker.errors.ImageNotFound:
                missing.append(image)
        if missing:
            raise RuntimeError(f"{described}: no image {', '.join(missing)} (make build-sandbox builds them)")
        return described

    async def probe(self, scratch: Path, uid: int) -> str:
        return await asyncio.to_thread(self.check)

    def host_path(self, workspace: Path) -> Path:
        return self.host_workspace_dir / workspace.relative_to(self.workspace_dir)

    async def run(self, target: SandboxTarget, program: Program, limits: Limits) -> RunResult:
        image = self.image_template.format(language=program.language)
        spec = container_spec(
            image=image,
            program=program,
            target=target,
            host_workspace=self.host_path(target.workspace),
            limits=limits,
            uid=target.uid if target.uid is not None else 65534,
        )
        return await asyncio.to_thread(self._run_blocking, spec, limits)

    def _run_blocking(self, spec: dict[str, Any], limits: Limits) -> RunResult:
        client = self.client()
        start = time.perf_counter()
        container = client.containers.create(**create_kwargs(spec))
        timed_out = False
        try:
            container.start()
            try:
                status = container.wait(timeout=limits.timeout_s)
                code = int(status.get("StatusCode", -1))
            except Exception:  # requests' ReadTimeout: the wall-clock limit
                timed_out, code = True, -9
                container.kill()
            stdout = container.logs(stdout=True, stderr=False)[: limits.output_bytes]
            stderr = container.logs(stdout=False, stderr=True)[: limits.output_bytes]
        finally:
            container.remove(force=True)
        truncated = len(stdout) + len(stderr) >= limits.output_bytes
        return RunResult(
            exit_code=code,
            stdout=stdout.decode("utf-8", "replace"),
            stderr=stderr.decode("utf-8", "replace"),
            duration_s=time.perf_counter() - start,
            timed_out=timed_out,
            truncated=truncated,
        )
