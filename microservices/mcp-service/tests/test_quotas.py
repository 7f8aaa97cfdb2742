"""Issue 14: per-user quotas on the costly and abusable tools (email, SMS,
webhooks cost money and spam people; pings and port checks scan).

Limits must hold under concurrency: 20 parallel sends for one user with a quota
of 3 deliver exactly 3 (counted where they arrive: a real SMTP server, the
Twilio fake), another user is unaffected; REST answers 429 + Retry-After with
the contract's JSON, MCP a tool error naming the quota and when it resets. Both
backends: in-process, and Redis (the real one on 127.0.0.1:6379)."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from conftest import Harness
from smtp_sink import SmtpSink

from harvis_testkit import serve_app

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests" / "fakes"))
from fake_twilio import FakeTwilio

REDIS_URL = "redis://127.0.0.1:6379/15"
SID, TOKEN = "AC" + "2" * 32, "quota-token"


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, str]]:
    """Settings for one backend; Redis keys under a prefix of their own, removed after."""
    if request.param == "memory":
        yield {"redis_url": ""}
        return
    prefix = f"harvis:mcp-test:{uuid.uuid4().hex}:"
    yield {"redis_url": REDIS_URL, "mcp_redis_prefix": prefix}
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        assert keys, "the counts never reached Redis (a silent in-process fallback?)"
        await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
def twilio() -> Any:
    fake = FakeTwilio(SID, TOKEN).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpSink]:
    sink = await SmtpSink().start()
    try:
        yield sink
    finally:
        await sink.stop()


async def post_tool(h: Harness, name: str, user_id: int, **arguments: Any) -> httpx.Response:
    return await h.client.post("/api/mcp/tool", json={"name": name, "arguments": arguments}, headers=h.headers(user_id))


def assert_quota_refusal(r: httpx.Response, what: str) -> None:
    assert r.status_code == 429, r.text
    retry = int(r.headers["Retry-After"])
    body = r.json()
    assert set(body) == {"detail", "message"} and body["message"] == body["detail"]
    assert what in body["message"] and "quota" in body["message"] and "resets in" in body["message"], body
    assert retry >= 1


async def test_parallel_sms_hold_the_quota_per_user(make_harness: Any, backend: dict[str, str], twilio: Any) -> None:
    settings = {
        "twilio_api_base": twilio.url,
        "twilio_account_sid": SID,
        "twilio_auth_token": TOKEN,
        "twilio_from_number": "+15550001111",
        "mcp_sms_per_day": 3,
        **backend,
    }
    async with make_harness(**settings) as h:
        burst = await asyncio.gather(*(post_tool(h, "send_sms", 1, to="+15551234567", body=f"#{i}") for i in range(20)))
        sent = [r for r in burst if r.status_code == 200]
        assert len(sent) == 3 and all(r.json()["ok"] for r in sent), [r.text for r in sent]
        refused = [r for r in burst if r.status_code != 200]
        assert len(refused) == 17
        for r in refused:
            assert_quota_refusal(r, "SMS")
            assert 86_000 <= int(r.headers["Retry-After"]) <= 86_400
        assert len(twilio.messages) == 3
        # Another user has a quota of their own.
        other = await asyncio.gather(*(post_tool(h, "send_sms", 2, to="+15557654321", body="hi") for _ in range(5)))
        assert sorted(r.status_code for r in other) == [200, 200, 200, 429, 429]
        assert len(twilio.messages) == 6


async def test_parallel_emails_hold_the_quota(make_harness: Any, backend: dict[str, str], smtp: SmtpSink) -> None:
    settings = {
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp.port,
        "smtp_security": "none",
        "smtp_from": "harvis@example.test",
        "mcp_emails_per_hour": 3,
        **backend,
    }
    async with make_harness(**settings) as h:
        burst = await asyncio.gather(
            *(post_tool(h, "send_email", 1, to=["ada@example.test"], subject=f"#{i}", body="x") for i in range(20))
        )
        assert sorted(r.status_code for r in burst) == [200] * 3 + [429] * 17
        assert all(r.json()["ok"] for r in burst if r.status_code == 200)
        assert_quota_refusal(next(r for r in burst if r.status_code == 429), "emails")
        assert len(smtp.messages) == 3
        # Every recipient counts: a message to two people doesn't fit in user 2's last slot.
        two = await post_tool(h, "send_email", 2, to=["a@example.test", "b@example.test"], subject="s", body="x")
        assert two.status_code == 200 and two.json()["ok"]
        too_many = await post_tool(
            h, "send_email", 2, to=["a@example.test"], cc=["c@example.test"], subject="s", body="x"
        )
        assert_quota_refusal(too_many, "emails")
        one = await post_tool(h, "send_email", 2, to=["a@example.test"], subject="s", body="x")
        assert one.status_code == 200 and one.json()["ok"]
        assert len(smtp.messages) == 5


async def test_refused_input_costs_nothing(make_harness: Any, twilio: Any) -> None:
    async with make_harness(
        twilio_api_base=twilio.url,
        twilio_account_sid=SID,
        twilio_auth_token=TOKEN,
        twilio_from_number="+15550001111",
        mcp_sms_per_day=1,
    ) as h:
        for bad in ("12345", "+1 555", "'; rm -rf /"):
            assert (await h.call("send_sms", to=bad, body="x"))["ok"] is False
        assert (await h.call("send_sms", to="+15551234567", body="ok"))["ok"]
        assert_quota_refusal(await post_tool(h, "send_sms", 1, to="+15551234567", body="again"), "SMS")


@pytest.fixture
async def hooks() -> AsyncIterator[tuple[str, list[bytes]]]:
    seen: list[bytes] = []

    async def hook(request: web.Request) -> web.Response:
        seen.append(await request.read())
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_get("/page", hook)
    runner, url = await serve_app(app)
    try:
        yield url, seen
    finally:
        await runner.cleanup()


async def test_webhooks_are_limited_and_mcp_says_when_the_quota_resets(
    make_harness: Any, backend: dict[str, str], hooks: Any
) -> None:
    from test_registry import rpc

    base, seen = hooks
    async with make_harness(webhook_secret="s", mcp_webhooks_per_hour=2, **backend) as h:
        burst = await asyncio.gather(
            *(post_tool(h, "send_webhook", 1, url=f"{base}/hook", payload={}) for _ in range(8))
        )
        assert sorted(r.status_code for r in burst) == [200, 200] + [429] * 6
        assert len(seen) == 2
        # A URL the SSRF guard refuses sends nothing and costs nothing.
        assert (await h.call("send_webhook", user_id=3, url="http://10.0.0.1/", payload={}))["ok"] is False
        r = await rpc(h, "tools/call", {"name": "send_webhook", "arguments": {"url": f"{base}/hook", "payload": {}}})
        result = r.json()["result"]
        assert result["isError"] is True, result
        text = result["content"][0]["text"]
        assert "quota" in text and "2 webhooks per hour" in text and "resets in" in text, text
        assert len(seen) == 2
        assert (await h.call("send_webhook", user_id=3, url=f"{base}/hook", payload={}))["ok"]


async def test_network_probes_are_limited_per_port(make_harness: Any, backend: dict[str, str], hooks: Any) -> None:
    base, _ = hooks
    port = int(base.rsplit(":", 1)[1])
    async with make_harness(mcp_network_probes_per_minute=5, **backend) as h:
        first = await h.call("tcp_port_check", host="127.0.0.1", ports=[port, 1, 2])  # three probes
        assert first["ok"], first
        # Asking for more ports than are left is refused as a whole: no partial scan.
        assert_quota_refusal(await post_tool(h, "tcp_port_check", 1, host="127.0.0.1", ports=[3, 4, 5]), "probes")
        # More ports than the whole quota can never fit: said so plainly.
        whole = await post_tool(h, "tcp_port_check", 1, host="127.0.0.1", ports=list(range(1, 7)))
        assert whole.status_code == 429 and "at most 5" in whole.json()["message"], whole.text
        assert (await h.call("http_check", url=f"{base}/page"))["ok"]
        assert (await h.call("ssl_check", host="127.0.0.1", port=port))["ok"] is False  # a probe, not TLS
        assert_quota_refusal(await post_tool(h, "http_check", 1, url=f"{base}/page"), "probes")
        # Targets refused by the SSRF policy never reach the quota (nor the network).
        refused = await h.call("tcp_port_check", user_id=2, host="10.0.0.1", ports=[22])
        assert refused["ok"] is False and "not allowed" in refused["error"]
        burst = await asyncio.gather(
            *(post_tool(h, "tcp_port_check", 2, host="127.0.0.1", ports=[port]) for _ in range(12))
        )
        assert sorted(r.status_code for r in burst) == [200] * 5 + [429] * 7


async def test_an_unreachable_redis_still_limits_in_process(make_harness: Any, twilio: Any) -> None:
    async with make_harness(
        redis_url="redis://127.0.0.1:1/0",
        twilio_api_base=twilio.url,
        twilio_account_sid=SID,
        twilio_auth_token=TOKEN,
        twilio_from_number="+15550001111",
        mcp_sms_per_day=2,
    ) as h:
        burst = await asyncio.gather(*(post_tool(h, "send_sms", 1, to="+15551234567", body="x") for _ in range(6)))
        assert sorted(r.status_code for r in burst) == [200, 200, 429, 429, 429, 429]
        assert len(twilio.messages) == 2


# The windows themselves (weights, ageing, atomic takes, both backends) are tested with the
# shared module: microservices/common/tests/test_quotas.py.
