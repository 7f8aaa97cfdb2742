"""harvis_common.http_client against real local HTTP servers: the allowlist opens
them, everything else is refused at every hop; redirects, time and size limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from harvis_common import http_client
from harvis_common.http_client import FetchError, SafeHTTPClient, VettedResolver, fetch
from harvis_common.ssrf import SSRFBlocked, SSRFPolicy
from harvis_testkit import serve_app

LOCAL = SSRFPolicy.from_setting("127.0.0.1/32")
SEEN: dict[str, object] = {}  # what the last /hello request carried


@pytest.fixture
async def server() -> AsyncIterator[str]:
    SEEN.clear()
    seen = SEEN

    async def hello(request: web.Request) -> web.Response:
        seen["host"] = request.headers.get("Host")
        seen["auth"] = request.headers.get("Authorization")
        return web.json_response({"ok": True, "method": request.method})

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read(), headers={"X-Method": request.method})

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def see_other(request: web.Request) -> web.Response:
        raise web.HTTPSeeOther("/echo")

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def big(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for _ in range(64):
            await resp.write(b"x" * 65536)
        return resp

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/hello", hello)
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/redirect", redirect)
    app.router.add_post("/see-other", see_other)
    app.router.add_get("/loop", loop)
    app.router.add_get("/big", big)
    app.router.add_get("/slow", slow)
    runner, base = await serve_app(app)
    try:
        yield base
    finally:
        await runner.cleanup()


async def test_allowlisted_local_server_is_reached(server: str) -> None:
    res = await fetch("GET", f"{server}/hello", LOCAL)
    assert res.status == 200 and res.body == b'{"ok": true, "method": "GET"}'
    assert not res.truncated and res.redirects == [] and res.elapsed_ms > 0


async def test_local_server_is_refused_without_the_allowlist(server: str) -> None:
    with pytest.raises(SSRFBlocked):
        await fetch("GET", f"{server}/hello")
    port = server.rsplit(":", 1)[1]
    with pytest.raises(SSRFBlocked):
        await fetch("GET", f"http://localhost:{port}/hello")


async def test_post_body_and_host_header(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    policy = SSRFPolicy.from_setting("localhost")
    res = await fetch("POST", f"http://localhost:{port}/echo", policy, data=b'{"a":1}')
    assert res.status == 200 and res.body == b'{"a":1}' and res.headers["X-Method"] == "POST"


async def test_each_redirect_hop_is_rechecked(server: str) -> None:
    ok = await fetch("GET", f"{server}/redirect?to=/hello", LOCAL)
    assert ok.status == 200 and ok.redirects == [f"{server}/redirect?to=/hello"]
    for target in (
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://[::1]/",
        "http://0.0.0.0/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_INFO",
        "http://[::ffff:169.254.169.254]/",
    ):
        with pytest.raises(SSRFBlocked):
            await fetch("GET", f"{server}/redirect?to={target}", LOCAL)


async def test_redirect_loop_is_capped(server: str) -> None:
    with pytest.raises(FetchError, match="too many redirects"):
        await fetch("GET", f"{server}/loop", LOCAL, max_redirects=3)


async def test_303_turns_post_into_get(server: str) -> None:
    res = await fetch("POST", f"{server}/see-other", LOCAL, data=b"payload")
    assert res.status == 200 and res.headers["X-Method"] == "GET" and res.body == b""


async def test_credentials_do_not_follow_a_cross_origin_redirect(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    policy = SSRFPolicy.from_setting("127.0.0.1/32, localhost")
    same = await fetch("GET", f"{server}/redirect?to=/hello", policy, headers={"Authorization": "Bearer s"})
    assert same.status == 200 and SEEN["auth"] == "Bearer s"
    other = await fetch(
        "GET", f"{server}/redirect?to=http://localhost:{port}/hello", policy, headers={"Authorization": "Bearer s"}
    )
    assert other.status == 200 and other.redirects and SEEN["auth"] is None
    assert SEEN["host"] == f"localhost:{port}"


async def test_body_size_limit_truncates(server: str) -> None:
    res = await fetch("GET", f"{server}/big", LOCAL, max_bytes=100_000)
    assert res.truncated and len(res.body) == 100_000


async def test_time_limit(server: str) -> None:
    with pytest.raises(FetchError, match="timed out"):
        await fetch("GET", f"{server}/slow", LOCAL, timeout_s=0.5)


async def test_connection_refused_is_a_fetch_error() -> None:
    with pytest.raises(FetchError, match="cannot connect"):
        await fetch("GET", "http://127.0.0.1:1/", LOCAL)


async def test_resolver_refuses_non_public_names_even_after_the_check(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the URL check passed (simulated), then the name resolves to
    loopback at connect time: the vetting resolver still refuses to connect."""
    port = server.rsplit(":", 1)[1]

    async def passed(url: str, policy: SSRFPolicy | None = None) -> None:
        return None

    monkeypatch.setattr(http_client, "check_url", passed)
    async with SafeHTTPClient(SSRFPolicy()) as client:
        with pytest.raises(SSRFBlocked):
            await client.request("GET", f"http://localhost:{port}/hello")


async def test_vetted_resolver_returns_only_checked_addresses() -> None:
    resolver = VettedResolver(SSRFPolicy.from_setting("localhost"))
    results = await resolver.resolve("localhost", 80)
    assert results and all(r["host"] in ("127.0.0.1", "::1") for r in results)
    with pytest.raises(SSRFBlocked):
        await VettedResolver(SSRFPolicy()).resolve("localhost", 80)


async def test_headers_are_plain_strings(server: str) -> None:
    import orjson

    res = await fetch("GET", f"{server}/hello", LOCAL)
    assert all(type(k) is str and type(v) is str for k, v in res.headers.items())
    orjson.dumps(res.headers)  # JSON-able as is (aiohttp's istr keys are not)
