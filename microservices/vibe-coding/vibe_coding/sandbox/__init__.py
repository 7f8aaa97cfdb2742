"""Sandbox backends behind one interface, chosen by VIBE_SANDBOX_BACKEND."""

from __future__ import annotations

import logging
from pathlib import Path

from .base import LANGUAGES, Limits, Program, RunResult, Sandbox, SandboxTarget, language, program_for
from .bwrap import BwrapSandbox
from .docker import DockerSandbox, container_spec, docker_socket_reachable

log = logging.getLogger("harvis.vibe.sandbox")

__all__ = [
    "LANGUAGES",
    "BwrapSandbox",
    "DockerSandbox",
    "Limits",
    "Program",
    "RunResult",
    "Sandbox",
    "SandboxTarget",
    "choose_backend",
    "container_spec",
    "language",
    "program_for",
]


def choose_backend(
    setting: str, *, docker_url: str, image_template: str, workspace_dir: Path, host_workspace_dir: str
) -> BwrapSandbox | DockerSandbox:
    """`docker` or `bwrap` as configured; `auto`: docker when its socket answers."""
    if setting == "docker" or (setting == "auto" and docker_socket_reachable(docker_url)):
        return DockerSandbox(docker_url, image_template, workspace_dir, host_workspace_dir)
    return BwrapSandbox()
