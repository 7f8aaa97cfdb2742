"""Network and notification tools against real local servers (aiohttp, asyncio
TCP), SMS against the Twilio fake; settings-only secrets. Webhook signatures:
test_webhook_signing.py."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from conftest import Harness

from harvis_testkit import serve_app

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests" / "fakes"))
from fake_twilio import FakeTwilio


@pytest.fixture
async def site() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        seen.append({"headers": dict(request.headers), "body": await request.read()})
        return web.json_response({"thanks": True})

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="hi", headers={"X-Page": "1"})

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://10.0.0.1/")

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_get("/page", page)
    app.router.add_get("/moved", moved)
    runner, url = await serve_app(app)
    try:
        yield url, seen
    finally:
        await runner.cleanup()


async def test_webhook_needs_a_configured_secret(harness: Harness, site: Any) -> None:
    out = await harness.call("send_webhook", url=f"{site[0]}/hook", payload={})
    assert out["ok"] is False and "WEBHOOK_SECRET" in out["error"]


async def test_http_check_and_redirect_recheck(harness: Harness, site: Any) -> None:
    base, _ = site
    out = await harness.call("http_check", url=f"{base}/page")
    assert out["ok"] and out["result"]["status"] == 200 and out["result"]["headers"]["X-Page"] == "1"
    out = await harness.call("http_check", url=f"{base}/moved")
    assert out["ok"] is False and "10.0.0.1" in out["error"]


async def test_tcp_port_check(harness: Harness, site: Any) -> None:
    port = int(site[0].rsplit(":", 1)[1])
    out = await harness.call("tcp_port_check", host="127.0.0.1", ports=[port, 1])
    assert {p["port"]: p["state"] for p in out["result"]["ports"]} == {port: "open", 1: "closed"}


async def test_whois_follows_one_vetted_referral(make_harness: Any) -> None:
    queries: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queries.append((await reader.readline()).decode().strip())
        writer.write(b"refer: localhost\r\ndomain: EXAMPLE.COM\r\nregistrar: Unit Registrar\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with make_harness(mcp_whois_server="127.0.0.1", mcp_whois_port=port) as h:
            out = await h.call("whois", query="example.com")
            assert out["ok"], out
            assert out["result"]["servers"] == ["127.0.0.1", "localhost"]
            assert out["result"]["fields"]["registrar"] == "Unit Registrar" and queries == ["example.com"] * 2
        async with make_harness(mcp_whois_server="127.0.0.1", mcp_whois_port=port, mcp_ssrf_allowlist="") as h:
            out = await h.call("whois", query="example.com")  # the referral (localhost) is not public
            assert out["ok"] is False and "not allowed" in out["error"]
    finally:
        server.close()


async def test_sms_through_the_twilio_fake(make_harness: Any) -> None:
    fake = FakeTwilio("AC" + "1" * 32, "tok").start()
    try:
        async with make_harness(
            twilio_api_base=fake.url,
            twilio_account_sid="AC" + "1" * 32,
            twilio_auth_token="tok",
            twilio_from_number="+15550001111",
        ) as h:
            out = await h.call("send_sms", to="+15551234567", body="hello")
            assert out["ok"] and out["result"]["sid"].startswith("SM"), out
            assert fake.messages[-1]["body"] == "hello" and fake.messages[-1]["from"] == "+15550001111"
            assert (await h.call("send_sms", to="12345", body="x"))["ok"] is False
        async with make_harness(
            twilio_api_base=fake.url,
            twilio_account_sid="AC" + "1" * 32,
            twilio_auth_token="wrong",
            twilio_from_number="+15550001111",
        ) as h:
            out = await h.call("send_sms", to="+15551234567", body="hello")
            assert out["ok"] is False and "401" in out["error"] and "wrong" not in out["error"]
    finally:
        fake.stop()


async def test_unconfigured_notifications_say_so(harness: Harness) -> None:
    out = await harness.call("send_email", to=["a@example.test"], subject="s", body="b")
    assert out["ok"] is False and "SMTP_HOST" in out["error"]
    out = await harness.call("send_sms", to="+15551234567", body="b")
    assert out["ok"] is False and "TWILIO" in out["error"]


async def test_dns_nameserver_must_be_configured(make_harness: Any) -> None:
    async with make_harness(mcp_dns_nameservers="127.0.0.1:1") as h:
        out = await h.call("dns_lookup", name="example.test", nameserver="8.8.8.8")
        assert out["ok"] is False and "configured" in out["error"]
