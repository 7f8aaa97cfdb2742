"""Issue 14: the webhook tool must not be a signing oracle.

Today's signature covers `<timestamp>.<body>` only: any user can have the
server sign what they like and present it as someone else's delivery, or to
another receiver. A signature must bind the user and the target URL too, and
a receiver following the README's scheme (`verify` below, written from it)
must reject a delivery replayed to another URL or claimed for another user."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from aiohttp import web

from harvis_testkit import serve_app
from mcp_service.tools.notify import canonical_url, sign

SECRET = "unit-webhook-secret"


def verify(secret: str, url: str, headers: Mapping[str, str], body: bytes, *, tolerance_s: int = 300) -> bool:
    """The receiver's check, exactly as microservices/mcp-service/README.md documents it:
    HMAC-SHA256(secret, "<X-Harvis-Timestamp>.<X-Harvis-User>.<your own URL>." + raw body),
    hex, sent as `X-Harvis-Signature: v1=<hex>`, timestamp within 5 minutes."""
    h = {k.lower(): v for k, v in headers.items()}
    signature, ts, user = h.get("x-harvis-signature", ""), h.get("x-harvis-timestamp", ""), h.get("x-harvis-user", "")
    if not signature.startswith("v1=") or not ts.isdigit() or not user.isdigit():
        return False
    if abs(time.time() - int(ts)) > tolerance_s:
        return False
    message = f"{ts}.{user}.{url}.".encode() + body
    expected = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return hmac.compare_digest(signature.removeprefix("v1="), expected)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        seen.append({"path": request.path_qs, "headers": dict(request.headers), "body": await request.read()})
        return web.json_response({"thanks": True})

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_post("/other", hook)
    runner, url = await serve_app(app)
    try:
        yield url, seen
    finally:
        await runner.cleanup()


async def test_signatures_bind_the_user_and_the_target(make_harness: Any, receiver: Any) -> None:
    base, seen = receiver
    url = f"{base}/hook"
    async with make_harness(webhook_secret=SECRET) as h:
        for user in (1, 2):
            out = await h.call("send_webhook", user_id=user, url=url, payload={"deploy": "prod"}, event="ci.done")
            assert out["ok"] and out["result"]["delivered"], out
    one, two = seen
    assert one["headers"]["X-Harvis-User"] == "1" and two["headers"]["X-Harvis-User"] == "2"
    # The receiver's documented check accepts each delivery as sent.
    assert verify(SECRET, url, one["headers"], one["body"]) and verify(SECRET, url, two["headers"], two["body"])
    assert one["headers"]["X-Harvis-Signature"] != two["headers"]["X-Harvis-Signature"]
    # User 1's delivery can't be passed off as user 2's...
    assert not verify(SECRET, url, {**one["headers"], "X-Harvis-User": "2"}, one["body"])
    # ...nor replayed to another receiver (or another endpoint of the same one).
    for elsewhere in (f"{base}/other", "https://victim.example/hook", url + "?x=1"):
        assert not verify(SECRET, elsewhere, one["headers"], one["body"]), elsewhere
    # The old scheme (timestamp and body only) no longer verifies anything.
    old = hmac.new(SECRET.encode(), one["headers"]["X-Harvis-Timestamp"].encode() + b"." + one["body"], hashlib.sha256)
    assert one["headers"]["X-Harvis-Signature"] not in ("sha256=" + old.hexdigest(), "v1=" + old.hexdigest())
    assert json.loads(one["body"])["data"] == {"deploy": "prod"}
    assert abs(int(one["headers"]["X-Harvis-Timestamp"]) - time.time()) < 30


def test_same_body_and_time_still_sign_differently_per_user_and_url() -> None:
    body, ts = b'{"event":"x","data":{}}', "1700000000"
    a = sign(SECRET, ts, 1, "https://a.example/hook", body)
    assert a != sign(SECRET, ts, 2, "https://a.example/hook", body)
    assert a != sign(SECRET, ts, 1, "https://b.example/hook", body)
    assert a != sign(SECRET, ts, 11, "https://a.example/hook", body)  # no 1|1 vs 11| ambiguity
    assert a == sign(SECRET, ts, 1, "https://a.example/hook", body)


async def test_the_signed_url_is_the_canonical_url_the_request_went_to(make_harness: Any, receiver: Any) -> None:
    base, seen = receiver
    port = base.rsplit(":", 1)[1]
    sent = f"http://127.0.0.1:{port}/hook?b=2&a=1#fragment"
    async with make_harness(webhook_secret=SECRET) as h:
        out = await h.call("send_webhook", url=sent, payload={})
    assert out["ok"], out
    signed = out["result"]["signed_url"]
    assert signed == canonical_url(sent) == f"http://127.0.0.1:{port}/hook?b=2&a=1"
    assert seen[-1]["path"] == "/hook?b=2&a=1"
    assert verify(SECRET, signed, seen[-1]["headers"], seen[-1]["body"])
    assert canonical_url("HTTPS://Example.COM:443/a b") == "https://example.com/a%20b"
    assert canonical_url("http://example.com") == "http://example.com/"


async def test_webhook_secret_and_signer_come_from_settings_only(make_harness: Any, receiver: Any) -> None:
    base, seen = receiver
    async with make_harness(webhook_secret=SECRET) as h:
        for extra in ({"secret": "mine"}, {"user": "2"}, {"headers": {"X-Harvis-User": "2"}}):
            out = await h.call("send_webhook", url=f"{base}/hook", payload={}, **extra)
            assert out["ok"] is False and "extra" in out["error"].lower(), (extra, out)
    assert seen == []
