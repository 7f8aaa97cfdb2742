"""The fleet, declared once: the native runner, the tests and the compose
agreement check all read this table (stdlib only, importable anywhere)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Service:
    name: str  # also the compose service name and the internal-auth audience
    directory: str  # under microservices/
    package: str  # the Python package holding `main:app`
    port: int
    url_env: str  # the core-api setting that points at this service ("" for core-api)
    needs_database: bool = False
    # Debian packages the service needs at run time; the native runner installs
    # them and the service's Dockerfile must too (tests/static checks).
    apt_packages: tuple[str, ...] = ()

    @property
    def app(self) -> str:
        return f"{self.package}.main:app"


SERVICES: tuple[Service, ...] = (
    Service("core-api", "core-api", "core_api", 8000, "", needs_database=True),
    # research-service: the knowledge base (pgvector) in PostgreSQL; web research works without it.
    Service(
        "research-service", "research-service", "research_service", 8001, "RESEARCH_SERVICE_URL", needs_database=True
    ),
    # espeak-ng: the fallback voice (uploads are decoded by PyAV's bundled FFmpeg, no ffmpeg needed).
    Service(
        "voice-service",
        "voice-service",
        "voice_service",
        8002,
        "VOICE_SERVICE_URL",
        needs_database=True,
        apt_packages=("espeak-ng",),
    ),
    Service(
        "browser-service",
        "browser-service",
        "browser_service",
        8003,
        "BROWSER_SERVICE_URL",
        apt_packages=("chromium", "chromium-driver", "tesseract-ocr"),
    ),
    # ping for the network tools (iputils: ICMP without a shell, argument lists only).
    Service("mcp-service", "mcp-service", "mcp_service", 8004, "MCP_SERVICE_URL", apt_packages=("iputils-ping",)),
    Service("n8n-integration", "n8n-integration", "n8n_integration", 8005, "N8N_INTEGRATION_URL", needs_database=True),
    Service(
        "vibe-coding",
        "vibe-coding",
        "vibe_coding",
        8006,
        "VIBE_CODING_URL",
        needs_database=True,
        # The bubblewrap sandbox (util-linux: setpriv, prlimit, setsid) and node for the sandboxed code.
        apt_packages=("bubblewrap", "util-linux", "nodejs"),
    ),
)

NGINX_PORT = 9000
HEALTH_PATH = "/health"
READY_PATH = "/ready"


def by_name(name: str) -> Service:
    for svc in SERVICES:
        if svc.name == name:
            return svc
    raise KeyError(name)
