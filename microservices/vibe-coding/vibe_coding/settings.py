"""vibe-coding settings (environment variables, see .env.example)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from harvis_common.config import LLMSettings, ReplicaSettings, ServiceSettings, checkout_state_dir

# Natively the workspaces live in the checkout's git-ignored state directory.
_DEFAULT_WORKSPACES = str(checkout_state_dir(__file__, "vibe-workspaces"))


class Settings(ServiceSettings, LLMSettings, ReplicaSettings):
    service_name: str = "vibe-coding"
    # PostgreSQL DSN (asyncpg): sessions live there.
    database_url: str = ""
    # Root of the session workspaces: <dir>/<user_id>/<session_id>/.
    vibe_workspace_dir: str = _DEFAULT_WORKSPACES
    # Sandbox backend: auto (docker when its socket answers, else bwrap), bwrap or docker.
    vibe_sandbox_backend: Literal["auto", "bwrap", "docker"] = "auto"
    # Largest file the file API reads or writes, and the largest workspace it writes into.
    vibe_max_file_bytes: int = Field(default=1_048_576, ge=1024)
    vibe_max_workspace_bytes: int = Field(default=209_715_200, ge=1_048_576)
    # Per execution: the largest timeout a request may ask for, memory (address space) per
    # process, processes per sandbox, CPU seconds, largest file written, output kept.
    vibe_exec_timeout_max_s: int = Field(default=120, ge=1, le=3600)
    vibe_exec_memory_mb: int = Field(default=1024, ge=64)
    vibe_exec_max_procs: int = Field(default=64, ge=4)
    vibe_exec_cpu_s: int = Field(default=120, ge=1)
    vibe_exec_file_mb: int = Field(default=100, ge=1)
    vibe_exec_output_bytes: int = Field(default=262_144, ge=1024)
    # When the service is root, each live session runs as a uid/gid of its own from the pool
    # base .. base + count - 1 (allocated in the database: two live sessions never share one), so
    # each has its own process limit and file owner; base + count is the readiness probe's.
    vibe_sandbox_uid_base: int = Field(default=200_000, ge=1000)
    vibe_sandbox_uid_count: int = Field(default=60_000, ge=1, le=1_000_000)
    # A terminal without input or output for this long is closed (pings do not count), and any
    # terminal after its maximum lifetime, in seconds.
    vibe_terminal_idle_s: int = Field(default=600, ge=1)
    vibe_terminal_max_lifetime_s: int = Field(default=14_400, ge=1)
    # Terminal input the service holds for a shell that does not read it; a client sending more
    # waits (is not read from) until the shell catches up.
    vibe_terminal_input_buffer_bytes: int = Field(default=262_144, ge=4096)
    # Docker backend: the engine, the image per language ({language}) and where the workspace
    # root is on the engine's host (empty: the same path as VIBE_WORKSPACE_DIR).
    vibe_docker_url: str = "unix:///var/run/docker.sock"
    vibe_docker_image: str = "harvis/sandbox-{language}:latest"
    vibe_docker_workspace_host_path: str = ""
    # Sandboxes (executions plus terminals) running at once; more wait their turn (executions,
    # at most VIBE_EXEC_QUEUE_WAIT_S seconds, then 503) or are refused (terminals).
    vibe_max_concurrent: int = Field(default=16, ge=1)
    vibe_exec_queue_wait_s: float = Field(default=10, ge=0, le=600)
    # Per user: sessions kept, terminals open and executions running (or waiting) at once;
    # beyond them 429 (a 1008 close for a terminal).
    vibe_max_sessions_per_user: int = Field(default=20, ge=1)
    vibe_max_terminals_per_user: int = Field(default=3, ge=1)
    vibe_max_concurrent_executions_per_user: int = Field(default=4, ge=1)
    # AI assist talks to the shared LLM backend (LLMSettings: LLM_PROVIDER, OLLAMA_URL,
    # OPENAI_API_BASE, DEFAULT_MODEL…), like chat; without a reachable backend it answers 503.

    @field_validator("vibe_workspace_dir")
    @classmethod
    def _workspace_dir(cls, value: str) -> str:
        return value.strip() or _DEFAULT_WORKSPACES  # an empty VIBE_WORKSPACE_DIR= means the default
