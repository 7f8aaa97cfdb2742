"""Serving a fake's aiohttp app on a port, for the fakes in this folder (stdlib + aiohttp)."""

from __future__ import annotations

from aiohttp import web


class Served:
    """`start()` serves `self.app()` on host:port (0: a free one) and says where; `stop()` ends it."""

    runner: web.AppRunner | None = None
    port = 0

    def app(self) -> web.Application:
        raise NotImplementedError

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self.runner = web.AppRunner(self.app(), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
