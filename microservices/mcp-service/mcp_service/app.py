"""The mcp-service app factory: registry, shared services, REST and MCP views.

One tool registry feeds both views: MCP at `/api/mcp/` (streamable HTTP) and
REST at `/api/mcp/tools` and `/api/mcp/tool`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from starlette.routing import Route

from harvis_common.app import create_service_app
from harvis_common.http_client import SafeHTTPClient
from harvis_common.ssrf import SSRFPolicy

from .api.routes import routers
from .mcp_server import build_mcp
from .quotas import mcp_quotas
from .registry import Registry
from .settings import Settings
from .tools import archives, files, network, notify, system


class Services:
    """What tools share: the SSRF policy, the guarded HTTP client, the per-user
    quotas, the pids of processes this service started."""

    def __init__(self, settings: Settings) -> None:
        self.policy = SSRFPolicy.from_setting(settings.mcp_ssrf_allowlist)
        self.http = SafeHTTPClient(self.policy)
        self.quotas = mcp_quotas(settings)
        self.spawned: set[int] = set()

    async def close(self) -> None:
        await self.http.close()
        await self.quotas.close()


def build_registry(settings: Settings) -> Registry:
    registry = Registry(settings)
    for family in (network, notify, files, archives, system):
        family.register(registry)
    return registry


def create_app(settings: Settings) -> FastAPI:
    registry = build_registry(settings)
    services = Services(settings)
    network.parse_nameservers(settings.mcp_dns_nameservers)  # fail at start on a bad setting
    server, mcp_app = build_mcp(registry, settings, services)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(Path(settings.mcp_workspace_dir).mkdir, parents=True, exist_ok=True, mode=0o700)
        # Mounted apps' lifespans don't run: the MCP session manager is entered here.
        async with server.session_manager.run():
            try:
                yield
            finally:
                await services.close()

    async def workspace_ready() -> str:
        path = Path(settings.mcp_workspace_dir)
        if not await asyncio.to_thread(path.is_dir):
            raise RuntimeError(f"workspace directory {path} is missing")
        return f"{len(registry.enabled())} tools enabled"

    app = create_service_app(
        settings,
        title="Harvis MCP",
        description="Model Context Protocol server with network, notification and OS tools.",
        slug="mcp",
        routers=routers,
        ready_checks={"tools": workspace_ready, "quotas": services.quotas.describe},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.registry = registry
    app.state.services = services
    # The MCP endpoint answers on /api/mcp and /api/mcp/ alike (no redirect hop).
    endpoint = mcp_app.routes[0].endpoint  # type: ignore[attr-defined]
    app.router.routes.append(Route("/api/mcp", endpoint=endpoint, methods=["GET", "POST", "DELETE"]))
    app.router.routes.append(Route("/api/mcp/", endpoint=endpoint, methods=["GET", "POST", "DELETE"]))
    return app
