"""The mcp-service app in-process, with a temporary workspace and real
internal-auth headers (harvis_testkit)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from harvis_testkit import InternalAuthKit, app_client
from mcp_service.app import create_app
from mcp_service.settings import Settings

AUD = "mcp-service"


class Harness:
    def __init__(self, client: httpx.AsyncClient, kit: InternalAuthKit, settings: Settings, app: Any) -> None:
        self.client, self.kit, self.settings, self.app = client, kit, settings, app

    def headers(self, user_id: int = 1, is_admin: bool = False) -> dict[str, str]:
        return self.kit.headers(AUD, user_id=user_id, is_admin=is_admin)

    async def call(self, name: str, /, user_id: int = 1, is_admin: bool = False, **arguments: Any) -> dict[str, Any]:
        r = await self.client.post(
            "/api/mcp/tool", json={"name": name, "arguments": arguments}, headers=self.headers(user_id, is_admin)
        )
        assert r.status_code == 200, r.text
        return r.json()

    def workspace(self, user_id: int = 1) -> Path:
        return Path(self.settings.mcp_workspace_dir) / str(user_id)


@pytest.fixture
def make_harness(tmp_path: Path) -> Callable[..., Any]:
    @asynccontextmanager
    async def factory(**overrides: Any) -> AsyncIterator[Harness]:
        kit = InternalAuthKit()
        values = {"mcp_workspace_dir": str(tmp_path / "ws"), "mcp_ssrf_allowlist": "127.0.0.1/32", **overrides}
        settings = Settings(internal_auth_public_key=kit.public_key, **values)
        app = create_app(settings)
        async with app_client(app, "http://127.0.0.1:8004") as client:
            yield Harness(client, kit, settings, app)

    return factory


@pytest.fixture
async def harness(make_harness: Callable[..., Any]) -> AsyncIterator[Harness]:
    async with make_harness() as h:
        yield h
