"""The gateway's HTTP/1.1 client on its own: pool limits, stale keep-alive retries."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterator

import httpx
import pytest
from gateway_support import BEARER, Fleet, RawServer, ServerThread, research_app

from core_api.gateway.upstream import Endpoint, UpstreamPool, UpstreamUnavailable
from harvis_testkit import InternalAuthKit

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class OneShot:
    """Answers the first request on each connection; hangs up on the next one
    without a byte, like a service closing an idle keep-alive connection just
    as it is reused."""

    def __init__(self) -> None:
        # One handler task per connection; weak, so a new task reusing a dead one's id is new.
        self.seen: weakref.WeakSet[asyncio.Task[None]] = weakref.WeakSet()

    async def __call__(self, head: bytes) -> list[bytes]:
        task = asyncio.current_task()
        assert task is not None
        if task in self.seen:
            return [b"<close>"]
        self.seen.add(task)
        return [OK]


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    fleet = Fleet(OneShot())
    yield fleet
    fleet.stop()


async def test_stale_keep_alive_connection_is_retried_for_bodyless_requests(fleet: Fleet) -> None:
    async with httpx.AsyncClient(base_url=fleet.url, trust_env=False) as client:
        for _ in range(5):
            r = await client.get("/api/browser/anything", headers=BEARER)
            assert r.status_code == 200 and r.json() == {}


@pytest.fixture(scope="module")
def research() -> Iterator[ServerThread]:
    server = ServerThread(research_app(InternalAuthKit())).start()
    yield server
    server.stop()


async def test_pool_never_opens_more_than_its_limit(research: ServerThread) -> None:
    pool = UpstreamPool(Endpoint.from_url("research-service", research.url), connect_timeout=0.5, max_connections=2)
    try:
        results = await asyncio.gather(*(pool.fetch("GET", "/health", 5.0) for _ in range(20)))
        assert all(status == 200 for status, _ in results)
        assert pool.open_connections <= 2 and pool.idle_connections == pool.open_connections
    finally:
        await pool.close()


async def test_connection_refused_is_unavailable_quickly() -> None:
    raw = RawServer(OneShot()).start()
    port = raw.port
    raw.stop()  # the loop stopped: nothing accepts anymore
    pool = UpstreamPool(Endpoint.from_url("x", f"http://127.0.0.1:{port}"), connect_timeout=0.5, max_connections=2)
    with pytest.raises(UpstreamUnavailable):
        await asyncio.wait_for(pool.fetch("GET", "/health", 5.0), 2)
    assert pool.open_connections == 0
