"""WebSockets through the gateway: authenticated upgrade, frames both ways, closes."""

from __future__ import annotations

import orjson
import pytest
from gateway_support import Fleet, close_at_once
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

TERMINAL = "/api/vibecoding/container/s-42/terminal"


def ws_url(fleet: Fleet, path: str = TERMINAL, query: str = "") -> str:
    return f"ws://127.0.0.1:{fleet.port}{path}{query}"


async def test_echo_with_token_in_query(fleet: Fleet) -> None:
    async with connect(ws_url(fleet, query="?token=tok-alice&cols=80"), proxy=None) as ws:
        hello = orjson.loads(await ws.recv())
        assert hello["session_id"] == "s-42" and hello["user_id"] == 7
        assert hello["query"] == "cols=80"  # the token stays at the gateway
        assert hello["has_authorization"] is False
        assert ws.response.headers["x-request-id"]
        await ws.send("ls -la")
        assert await ws.recv() == "echo:ls -la"
        await ws.send(b"\x01\x02\x03")
        assert await ws.recv() == b"\x03\x02\x01"


async def test_echo_with_cookie_and_bearer(fleet: Fleet) -> None:
    headers = {"Cookie": "theme=dark; access_token=tok-bob"}
    async with connect(ws_url(fleet), additional_headers=headers, proxy=None) as ws:
        hello = orjson.loads(await ws.recv())
        assert hello["user_id"] == 8 and hello["cookie"] == "theme=dark"
    async with connect(ws_url(fleet), additional_headers={"Authorization": "Bearer tok-alice"}, proxy=None) as ws:
        hello = orjson.loads(await ws.recv())
        assert hello["user_id"] == 7 and hello["has_authorization"] is False


async def test_subprotocol_is_negotiated_through(fleet: Fleet) -> None:
    async with connect(ws_url(fleet, query="?token=tok-alice"), subprotocols=["tty"], proxy=None) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "tty"


@pytest.mark.parametrize("query", ["", "?token=wrong"])
async def test_unauthenticated_is_closed_4401(fleet: Fleet, query: str) -> None:
    async with connect(ws_url(fleet, query=query), proxy=None) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_service_close_code_reaches_the_client(fleet: Fleet) -> None:
    async with connect(ws_url(fleet, query="?token=tok-alice"), proxy=None) as ws:
        await ws.recv()
        await ws.send("close-please")
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4321, "asked to")


async def test_service_refusing_the_handshake_is_reported(fleet: Fleet) -> None:
    async with connect(ws_url(fleet, "/api/vibecoding/nowhere", "?token=tok-alice"), proxy=None) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code in (4403, 4404)


async def test_service_down_is_1013(fleet: Fleet) -> None:
    async with connect(ws_url(fleet, "/api/mcp/ws", "?token=tok-alice"), proxy=None) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    assert "mcp-service is unavailable" in closed.value.rcvd.reason


# ---------------------------------------------------------------- cross-site WebSocket hijacking
# A page on another site can open a WebSocket to us and the browser adds our cookie
# (SameSite=Lax lets same-site and top-level cases through, and older browsers send it
# always). Browsers always send Origin on a WebSocket upgrade, so a cookie-authenticated
# upgrade from an Origin that isn't our own host is refused (issue 14).

COOKIE = {"Cookie": "access_token=tok-alice"}


@pytest.mark.parametrize(
    "origin",
    ["http://evil.example", "null", "http://127.0.0.1.evil.example", "https://127.0.0.1:1"],
)
async def test_cookie_upgrade_from_a_foreign_origin_is_403(fleet: Fleet, origin: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(ws_url(fleet), additional_headers={**COOKIE, "Origin": origin}, proxy=None):
            pass
    response = refused.value.response
    assert response.status_code == 403
    assert response.headers.get("content-type") == "application/json"
    body = orjson.loads(response.body)
    assert "origin" in body["message"].lower() and body["detail"]


async def test_cookie_upgrade_from_our_own_origin_works(fleet: Fleet) -> None:
    for origin in (f"http://127.0.0.1:{fleet.port}", f"HTTP://127.0.0.1:{fleet.port}"):
        headers = {**COOKIE, "Origin": origin}
        async with connect(ws_url(fleet), additional_headers=headers, proxy=None) as ws:
            assert orjson.loads(await ws.recv())["user_id"] == 7


async def test_cookie_upgrade_without_origin_is_not_a_browser(fleet: Fleet) -> None:
    """Only browsers ride cookies cross-site, and they always send Origin: a client without
    one (a CLI, a test) chose to send the cookie itself."""
    async with connect(ws_url(fleet), additional_headers=COOKIE, proxy=None) as ws:
        assert orjson.loads(await ws.recv())["user_id"] == 7


async def test_token_upgrades_are_not_origin_bound(fleet: Fleet) -> None:
    """A token in the query or a Bearer header was put there by the page that holds it: a
    foreign site can't, so the front end served from elsewhere keeps working."""
    foreign = {"Origin": "http://frontend.example:3000"}
    async with connect(ws_url(fleet, query="?token=tok-alice"), additional_headers=foreign, proxy=None) as ws:
        assert orjson.loads(await ws.recv())["user_id"] == 7
    headers = {**foreign, "Authorization": "Bearer tok-bob", **COOKIE}
    async with connect(ws_url(fleet), additional_headers=headers, proxy=None) as ws:
        assert orjson.loads(await ws.recv())["user_id"] == 8


async def test_configured_origins_may_use_the_cookie() -> None:
    fleet = Fleet(close_at_once, websocket_allowed_origins="http://frontend.example:3000, https://app.example")
    try:
        for origin in ("http://frontend.example:3000", "https://app.example"):
            headers = {**COOKIE, "Origin": origin}
            async with connect(ws_url(fleet), additional_headers=headers, proxy=None) as ws:
                assert orjson.loads(await ws.recv())["user_id"] == 7
        with pytest.raises(InvalidStatus) as refused:
            headers = {**COOKIE, "Origin": "http://frontend.example:3001"}
            async with connect(ws_url(fleet), additional_headers=headers, proxy=None):
                pass
        assert refused.value.response.status_code == 403
    finally:
        fleet.stop()
