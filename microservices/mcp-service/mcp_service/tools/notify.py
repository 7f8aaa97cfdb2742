"""Notification tools: email (SMTP), signed webhooks, SMS (Twilio-compatible).

Servers, credentials and the signing key come from settings only; a tool's
arguments say what to send and to whom, never how to authenticate. Each send
takes from the user's quota (`quotas.py`) once its input has been checked.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import smtplib
import ssl
import time
import uuid
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import aiohttp
import orjson
from pydantic import Field
from yarl import URL

from harvis_common.http_client import FetchError
from harvis_common.ssrf import SSRFBlocked, check_url

from ..registry import Args, Registry, Tool, ToolContext, ToolError

_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
SIGNATURE_HEADER = "X-Harvis-Signature"
TIMESTAMP_HEADER = "X-Harvis-Timestamp"
USER_HEADER = "X-Harvis-User"
SIGNATURE_VERSION = "v1"  # the scheme in README.md; a new scheme gets a new prefix


def _no_newlines(value: str, what: str) -> str:
    if any(c in value for c in "\r\n\x00"):
        raise ToolError(f"{what} must not contain line breaks")
    return value


# ---------------------------------------------------------------- email


class EmailArgs(Args):
    to: list[str] = Field(description="Recipient addresses (up to 10)", min_length=1, max_length=10)
    subject: str = Field(description="Subject line", max_length=300)
    body: str = Field(description="Plain-text body", max_length=200_000)
    cc: list[str] = Field(default_factory=list, max_length=10)
    reply_to: str | None = Field(default=None, max_length=320)


def _send_smtp(ctx: ToolContext, msg: EmailMessage) -> dict[str, Any]:
    s = ctx.settings
    security = s.smtp_security.lower()
    context = ssl.create_default_context()
    if security == "tls":
        client: smtplib.SMTP = smtplib.SMTP_SSL(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_s, context=context)
    else:
        client = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_s)
    with client:
        client.ehlo()
        if security == "starttls":
            client.starttls(context=context)
            client.ehlo()
        if s.smtp_username:
            client.login(s.smtp_username, s.smtp_password)
        refused = client.send_message(msg)
    return {"refused": {k: v[1].decode(errors="replace") for k, v in refused.items()}}


async def send_email(args: EmailArgs, ctx: ToolContext) -> dict[str, Any]:
    s = ctx.settings
    if not s.smtp_host or not s.smtp_from:
        raise ToolError("email is not configured on this server (SMTP_HOST, SMTP_FROM)")
    if s.smtp_security.lower() not in ("none", "starttls", "tls"):
        raise ToolError("SMTP_SECURITY must be none, starttls or tls")
    for addr in [*args.to, *args.cc, *([args.reply_to] if args.reply_to else [])]:
        _no_newlines(addr, "addresses")
        if not _EMAIL.fullmatch(addr):
            raise ToolError(f"not a valid email address: {addr[:80]!r}")
    subject = _no_newlines(args.subject, "subject")
    # Spam is counted per recipient: one message to ten people is ten emails.
    await ctx.services.quotas.take("emails", ctx.identity.user_id, cost=len(args.to) + len(args.cc))
    msg = EmailMessage()
    msg["From"] = s.smtp_from
    msg["To"] = ", ".join(args.to)
    if args.cc:
        msg["Cc"] = ", ".join(args.cc)
    if args.reply_to:
        msg["Reply-To"] = args.reply_to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=s.smtp_from.rpartition("@")[2] or None)
    msg["X-Harvis-User"] = str(ctx.identity.user_id)
    msg.set_content(args.body)
    try:
        sent = await asyncio.to_thread(_send_smtp, ctx, msg)
    except smtplib.SMTPAuthenticationError:
        raise ToolError("the SMTP server refused our credentials") from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise ToolError(f"the SMTP server refused every recipient ({len(exc.recipients)})") from None
    except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
        raise ToolError(f"sending failed: {exc.__class__.__name__}: {exc}") from None
    return {"sent": True, "message_id": msg["Message-ID"], "recipients": len(args.to) + len(args.cc), **sent}


# ---------------------------------------------------------------- webhook


def canonical_url(url: str) -> str:
    """The URL exactly as the request goes out (aiohttp sends what yarl makes of it):
    scheme and host in lower case (IDNA), no default port, path at least "/",
    percent-encoding normalised, dot segments resolved, no fragment. This is the
    URL a signature binds, so a receiver rebuilds it from its own address."""
    try:
        parsed = URL(url)
        if not parsed.absolute or not parsed.host:
            raise ValueError("not an absolute URL")
        return str(parsed.origin()) + parsed.raw_path_qs
    except (ValueError, TypeError, UnicodeError):
        raise ToolError("url is not a valid absolute http(s) URL") from None


def sign(secret: str, timestamp: str, user_id: int | str, url: str, body: bytes) -> str:
    """`v1=` + hex HMAC-SHA256 of `<timestamp>.<user id>.<canonical url>.<body>`.

    Binding the user and the target is what keeps the tool from being a signing
    oracle: a user can only ever obtain signatures that say "user N sent this to
    URL U", never one a receiver would accept as another user's or at another URL.
    The fields can't bleed into each other: timestamp and user id are digits, the
    canonical URL has no "{" (yarl percent-encodes it) and the body starts with "{".
    """
    message = f"{timestamp}.{user_id}.{url}.".encode() + body
    return f"{SIGNATURE_VERSION}=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class WebhookArgs(Args):
    url: str = Field(description="http(s) URL to POST to", max_length=4096)
    payload: dict[str, Any] = Field(description="JSON object to send")
    event: str = Field(default="harvis.notification", max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")


async def send_webhook(args: WebhookArgs, ctx: ToolContext) -> dict[str, Any]:
    secret = ctx.settings.webhook_secret
    if not secret:
        raise ToolError("webhooks are not configured on this server (WEBHOOK_SECRET)")
    try:
        # The URL as the caller wrote it passes the SSRF guard before anything is signed
        # (canonicalising first could smooth over what the guard refuses, e.g. spaces).
        await check_url(args.url, ctx.services.policy)
    except SSRFBlocked as exc:
        raise ToolError(f"URL refused: {exc}") from None
    url = canonical_url(args.url)
    delivery = uuid.uuid4().hex
    body = orjson.dumps({"event": args.event, "delivery_id": delivery, "data": args.payload})
    if len(body) > 256_000:
        raise ToolError("payload too large (256 kB at most)")
    await ctx.services.quotas.take("webhooks", ctx.identity.user_id)
    user = str(ctx.identity.user_id)
    ts = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret, ts, user, url, body),
        TIMESTAMP_HEADER: ts,
        USER_HEADER: user,
        "X-Harvis-Event": args.event,
        "X-Harvis-Delivery": delivery,
    }
    try:
        # No redirects: a signed POST must land where the caller said (and was signed for).
        res = await ctx.services.http.request(
            "POST", url, headers=headers, data=body, timeout_s=15, max_bytes=16384, follow_redirects=False
        )
    except SSRFBlocked as exc:
        raise ToolError(f"URL refused: {exc}") from None
    except FetchError as exc:
        raise ToolError(str(exc)) from None
    return {
        "delivered": 200 <= res.status < 300,
        "status": res.status,
        "delivery_id": delivery,
        "signed_url": url,
        "response": res.text()[:2000],
        "latency_ms": res.elapsed_ms,
    }


# ---------------------------------------------------------------- SMS


class SmsArgs(Args):
    to: str = Field(description="Recipient in E.164 form, e.g. +15551234567", max_length=20)
    body: str = Field(description="Message text", min_length=1, max_length=1600)


async def send_sms(args: SmsArgs, ctx: ToolContext) -> dict[str, Any]:
    s = ctx.settings
    if not (s.twilio_account_sid and s.twilio_auth_token and s.twilio_from_number):
        raise ToolError(
            "SMS is not configured on this server (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM_NUMBER)"
        )
    if not _E164.fullmatch(args.to):
        raise ToolError("to must be a phone number in E.164 form (+ and 7-15 digits)")
    if not re.fullmatch(r"[A-Za-z0-9]{1,64}", s.twilio_account_sid):
        raise ToolError("TWILIO_ACCOUNT_SID is malformed")
    await ctx.services.quotas.take("sms", ctx.identity.user_id)
    url = f"{s.twilio_api_base.rstrip('/')}/2010-04-01/Accounts/{s.twilio_account_sid}/Messages.json"
    auth = base64.b64encode(f"{s.twilio_account_sid}:{s.twilio_auth_token}".encode()).decode()
    timeout = aiohttp.ClientTimeout(total=15)
    try:
        # The API base is an operator setting (not user input): a plain client.
        async with (
            aiohttp.ClientSession(timeout=timeout, trust_env=False) as session,
            session.post(
                url,
                data={"To": args.to, "From": s.twilio_from_number, "Body": args.body},
                headers={"Authorization": f"Basic {auth}", "Accept": "application/json"},
                allow_redirects=False,
            ) as resp,
        ):
            raw = await resp.content.read(65536)
            status = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ToolError(f"SMS API unreachable: {exc.__class__.__name__}") from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = {}
    if status >= 400:
        raise ToolError(f"SMS API refused the message ({status}): {str(data.get('message', ''))[:300]}")
    return {"sent": True, "sid": data.get("sid"), "status": data.get("status"), "to": args.to}


def register(registry: Registry) -> None:
    registry.add(
        Tool(
            "send_email",
            "Send a plain-text email through the configured SMTP server.",
            "notification",
            EmailArgs,
            send_email,
            timeout_s=45,
        )
    )
    registry.add(
        Tool(
            "send_webhook",
            "POST a JSON payload to a URL, signed with HMAC-SHA256 for you and that URL "
            "(X-Harvis-Signature over '<timestamp>.<user id>.<url>.<body>').",
            "notification",
            WebhookArgs,
            send_webhook,
            timeout_s=20,
        )
    )
    registry.add(
        Tool(
            "send_sms",
            "Send an SMS through the configured Twilio-compatible API.",
            "notification",
            SmsArgs,
            send_sms,
            timeout_s=20,
        )
    )
