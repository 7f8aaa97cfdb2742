"""bubblewrap backend: for hosts without a Docker engine.

The service (root natively) drops to a per-session uid with setpriv, then
bwrap builds an empty root with only /usr, the /lib* and /bin links or
directories and /etc read-only, the workspace read-write at /workspace, a
private size-limited /tmp and /dev/shm, fresh /proc and /dev (read-only), and
new namespaces for everything (no network but a private loopback, no view of
host processes). prlimit caps address space, CPU time, processes and file
size; the wall-clock timeout kills the whole process group (bwrap's own pid-1
reaper dies with it, which kills everything in the sandbox's pid namespace).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..workspace import disk_usage
from .base import MAX_OPEN_FILES, SANDBOX_PATH, WORKDIR, Limits, Program, RunResult, SandboxTarget

SYSTEM_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
QUOTA_POLL_S = 0.5


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for path in SYSTEM_DIRS:
        p = Path(path)
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), path]
        elif p.is_dir():
            args += ["--ro-bind", path, path]
    return [*args, "--ro-bind", "/etc", "/etc"]


def bwrap_argv(
    target: SandboxTarget,
    limits: Limits,
    argv: Sequence[str],
    *,
    file_fds: Sequence[tuple[int, str]] = (),
    env: dict[str, str] | None = None,
    terminal: bool = False,
    drop_to_uid: bool = True,
) -> list[str]:
    """The full command line: setpriv (when root) + bwrap + prlimit + argv."""
    cmd: list[str] = []
    if drop_to_uid and target.uid is not None:
        cmd += ["setpriv", f"--reuid={target.uid}", f"--regid={target.uid}", "--clear-groups"]
    cmd += ["bwrap", *_system_binds()]
    cmd += ["--bind", str(target.workspace), WORKDIR, "--chdir", WORKDIR]
    # Private, size-limited tmpfs mounts inside the sandbox (not the host's /tmp).
    cmd += ["--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]  # noqa: S108
    cmd += ["--proc", "/proc", "--dev", "/dev"]
    shm = str(min(limits.tmp_bytes, 16 * 1024 * 1024))
    cmd += ["--size", shm, "--tmpfs", "/dev/shm", "--remount-ro", "/dev"]  # noqa: S108
    for fd, dest in file_fds:
        cmd += ["--perms", "0444", "--ro-bind-data", str(fd), dest]
    cmd += ["--unshare-all", "--die-with-parent", "--cap-drop", "ALL"]
    if hostname_settable():
        cmd += ["--hostname", "sandbox"]
    if not terminal:
        # A terminal keeps the pty as its controlling terminal (its own, private one);
        # everything else gets a new session so it cannot push input into ours (TIOCSTI).
        cmd += ["--new-session"]
    cmd += ["--clearenv"]
    base_env = {"PATH": SANDBOX_PATH, "HOME": WORKDIR, "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
    for key, value in {**base_env, **(env or {})}.items():
        cmd += ["--setenv", key, value]
    cmd += ["--", "prlimit", f"--as={limits.memory_bytes}", f"--cpu={limits.cpu_s}"]
    cmd += [f"--nproc={limits.max_procs}", f"--fsize={limits.file_bytes}", "--core=0"]
    cmd += [f"--nofile={MAX_OPEN_FILES}", "--"]
    return cmd + list(argv)


@functools.cache
def hostname_settable() -> bool:
    """Whether a sandbox may name itself (its own UTS namespace). In a container without
    CAP_SYS_ADMIN the engine's seccomp profile refuses sethostname even inside the sandbox's
    user namespace; the sandbox then keeps the container's name (its id), nothing of the host's."""
    if shutil.which("bwrap") is None:
        return False
    probe = ["bwrap", "--unshare-all", "--hostname", "sandbox", "--ro-bind", "/", "/", "true"]
    return subprocess.run(probe, capture_output=True, timeout=10, check=False).returncode == 0  # noqa: S603 - fixed argv


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


class BwrapSandbox:
    name = "bwrap"

    def __init__(self, drop_to_uid: bool | None = None) -> None:
        self.drop_to_uid = os.geteuid() == 0 if drop_to_uid is None else drop_to_uid

    def available(self) -> str:
        missing = [tool for tool in ("bwrap", "prlimit") if shutil.which(tool) is None]
        if self.drop_to_uid and shutil.which("setpriv") is None:
            missing.append("setpriv")
        if missing:
            raise RuntimeError(f"missing: {', '.join(missing)}")
        return "bubblewrap" + (" (per-session uid)" if self.drop_to_uid else "")

    def target_uid(self, uid: int | None) -> int | None:
        return uid if self.drop_to_uid else None

    async def probe(self, scratch: Path, uid: int) -> str:
        """Readiness: start a real sandbox (namespaces, setpriv, rlimits) running `true`."""
        self.available()
        await asyncio.to_thread(hostname_settable)  # decided once, off the event loop
        await asyncio.to_thread(scratch.mkdir, mode=0o755, exist_ok=True)
        limits = Limits(
            timeout_s=10, memory_bytes=256 << 20, max_procs=8, cpu_s=5, file_bytes=1 << 20, output_bytes=4096
        )
        target = SandboxTarget(scratch, self.target_uid(uid), "probe")
        result = await self.run(target, Program(("true",)), limits)
        if result.exit_code != 0:
            raise RuntimeError(f"bubblewrap cannot start a sandbox here: {result.stderr.strip()[:300]}")
        mode = "per-session uid" if self.drop_to_uid else "user namespace"
        return f"bubblewrap ({mode}), started in {result.duration_s * 1000:.0f} ms"

    async def run(self, target: SandboxTarget, program: Program, limits: Limits) -> RunResult:
        fds = [(_memfd(Path(dest).name, data), dest) for dest, data in program.files.items()]
        start = time.perf_counter()
        try:
            argv = bwrap_argv(target, limits, program.argv, file_fds=fds, drop_to_uid=self.drop_to_uid)
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=[fd for fd, _ in fds],
                start_new_session=True,
                env={"PATH": SANDBOX_PATH},
            )
        finally:
            for fd, _ in fds:
                os.close(fd)
        return await collect(proc, limits, start, target.workspace)


async def watch_quota(workspace: Path, quota: int, on_exceeded: Callable[[], None]) -> None:
    """Poll the workspace's disk use while a sandbox runs; call `on_exceeded` once over `quota`.
    (Each file is capped by RLIMIT_FSIZE; this bounds the sum.)"""
    while True:
        await asyncio.sleep(QUOTA_POLL_S)
        if await asyncio.to_thread(disk_usage, workspace) > quota:
            on_exceeded()
            return


async def collect(
    proc: asyncio.subprocess.Process, limits: Limits, start: float, workspace: Path | None = None
) -> RunResult:
    """Read stdout/stderr up to the output cap, enforce the wall-clock timeout and the
    workspace quota, and make sure nothing of the process group survives."""
    out, err = bytearray(), bytearray()
    state = {"truncated": False, "first": None, "quota": False}

    def over_quota() -> None:
        state["quota"] = True
        kill_group(proc)

    watcher = (
        asyncio.create_task(watch_quota(workspace, limits.workspace_bytes, over_quota))
        if workspace is not None and limits.workspace_bytes
        else None
    )

    async def pump(stream: asyncio.StreamReader | None, buf: bytearray) -> None:
        if stream is None:
            return
        while chunk := await stream.read(65536):
            if state["first"] is None:
                state["first"] = time.perf_counter() - start
            room = limits.output_bytes - len(out) - len(err)
            if room <= 0 or len(chunk) > room:
                buf += chunk[: max(room, 0)]
                state["truncated"] = True
                kill_group(proc)
                return
            buf += chunk

    timed_out = False
    readers = asyncio.gather(pump(proc.stdout, out), pump(proc.stderr, err))
    try:
        await asyncio.wait_for(asyncio.shield(readers), limits.timeout_s)
        await asyncio.wait_for(proc.wait(), max(0.1, limits.timeout_s - (time.perf_counter() - start)))
    except TimeoutError:
        timed_out = True
    finally:
        if watcher is not None:
            watcher.cancel()
        kill_group(proc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 5)
        with contextlib.suppress(TimeoutError, Exception):
            await asyncio.wait_for(readers, 2)
    duration = time.perf_counter() - start
    stdout = out.decode("utf-8", "replace")
    stderr = err.decode("utf-8", "replace")
    if state["truncated"]:
        stderr += f"\n[output truncated at {limits.output_bytes} bytes; the program was stopped]"
    if timed_out:
        stderr += f"\n[timed out after {limits.timeout_s:g} s; the program was killed]"
    if state["quota"]:
        stderr += f"\n[the workspace exceeded its {limits.workspace_bytes} bytes; the program was stopped]"
    return RunResult(
        exit_code=proc.returncode,
        stdout=stdout,
        stderr=stderr,
        duration_s=duration,
        timed_out=timed_out,
        truncated=bool(state["truncated"]),
        first_output_s=state["first"],  # type: ignore[arg-type]
    )
