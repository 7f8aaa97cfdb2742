"""What every sandbox backend offers, and the languages it runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Limits:
    timeout_s: float
    memory_bytes: int  # address space per process (bwrap) / the container's memory (docker)
    max_procs: int
    cpu_s: int
    file_bytes: int  # largest file a program may write
    output_bytes: int  # stdout + stderr kept; beyond it the program is stopped
    tmp_bytes: int = 64 * 1024 * 1024
    workspace_bytes: int | None = None  # disk the workspace may use; the run is stopped beyond it


@dataclass(frozen=True)
class Language:
    name: str
    argv: tuple[str, ...]  # run as argv + (the code,): inline code, so the workspace (the
    # working directory) is where imports and relative requires resolve
    image: str  # docker image tag suffix


LANGUAGES: dict[str, Language] = {
    "python": Language("python", ("python3", "-u", "-c"), "python"),
    "node": Language("node", ("node", "-e"), "node"),
    "bash": Language("bash", ("bash", "-c"), "bash"),
}
ALIASES = {
    "python3": "python",
    "py": "python",
    "javascript": "node",
    "js": "node",
    "nodejs": "node",
    "sh": "bash",
    "shell": "bash",
}
WORKDIR = "/workspace"
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
MAX_CODE_BYTES = 100_000
MAX_OPEN_FILES = 1024  # per sandboxed process (RLIMIT_NOFILE), in every backend


def language(name: str) -> Language | None:
    key = name.strip().lower()
    return LANGUAGES.get(ALIASES.get(key, key))


@dataclass(frozen=True)
class Program:
    """What to run: `argv` in /workspace, with `files` (absolute sandbox path → bytes)
    placed read-only in the sandbox's private /tmp first (for programs that need them)."""

    argv: tuple[str, ...]
    files: dict[str, bytes] = field(default_factory=dict)
    language: str = "bash"


def program_for(lang: Language, code: str | None, command: str | None) -> Program:
    """`command` runs in bash; `code` inline in the language's interpreter (at most
    MAX_CODE_BYTES, well under the kernel's 128 KiB limit for one argument)."""
    if command is not None:
        return Program(("bash", "-c", command), language=lang.name)
    return Program((*lang.argv, code or ""), language=lang.name)


@dataclass
class RunResult:
    exit_code: int | None
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool = False
    truncated: bool = False
    first_output_s: float | None = None  # start to the first byte of output

    @property
    def status(self) -> str:
        if self.timed_out:
            return "timeout"
        return "completed" if self.exit_code == 0 else "error"


@dataclass(frozen=True)
class SandboxTarget:
    """Where a session's sandbox lives: its workspace and the uid it runs as
    (None: the service's own uid, when it cannot switch users)."""

    workspace: Path
    uid: int | None
    session_id: str


class Sandbox(Protocol):
    name: str

    async def run(self, target: SandboxTarget, program: Program, limits: Limits) -> RunResult: ...

    def available(self) -> str:
        """A short description when the tools are there; raises when not."""
        ...

    async def probe(self, scratch: Path, uid: int) -> str:
        """Readiness: really start a sandbox; a short description, or raises."""
        ...
