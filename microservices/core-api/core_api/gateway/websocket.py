"""WebSocket proxying: authenticate the upgrade, then pump frames both ways.

Browsers cannot set headers on a WebSocket, so besides the cookie and Bearer
the token may come as a `token` query parameter (removed before the URL goes
on to the service). An explicit credential (Bearer, then `?token=`) wins over
the cookie; an upgrade that rests on the cookie alone must come from our own
Origin (see origin.py), else it is refused with HTTP 403 before anything else.
Other failures are reported as close codes after accepting, so a browser can
see them (a refusal before accept is an opaque HTTP 403): 4401 unauthenticated,
4000+status when the service refuses the handshake, 1013 when the service is
unreachable or the user's state can't be checked, 4410 (as HTTP's 410) when the
path names a session whose replica is gone (replicas.py).

With several replicas, a WebSocket naming a session (its path, or query) goes to the
replica that owns it, and only there; any other takes the next replica's turn, and
one refusing the connection hands it on to the next. A connect that times out is
1013 at once: websockets' open timeout also covers the service's handshake, so the
service may have seen the upgrade.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from harvis_common.errors import error_body
from harvis_common.logging import request_id_var
from harvis_common.middleware import REQUEST_ID_HEADER, clean_request_id, header
from harvis_common.tracing import HEADER_LOWER as TRACEPARENT
from harvis_common.tracing import current_trace, server_span

from ..auth.context import token_from_headers
from ..auth.user_state import StateUnavailable
from .asgi import UNAUTHORIZED, Message, Receive, Scope, Send, log_access
from .headers import COOKIE_NAME, HOP_BY_HOP, IDENTITY_AND_FORWARDING, forwarded_proto, strip_cookie
from .origin import origin_allowed
from .replicas import GONE, Replicas
from .routes import has_dot_segment
from .telemetry import CONNECT_FAILURES, OPEN_STREAMS, observe_proxied

if TYPE_CHECKING:
    from .proxy import Gateway

log = logging.getLogger("harvis.gateway")

CLOSE_UNAUTHORIZED = 4401
CLOSE_TRY_AGAIN = 1013
CLOSE_POLICY = 1008
CLOSE_GONE = 4410  # the session's replica is gone (4000 + HTTP's 410, like a refused handshake's)
MAX_MESSAGE = 16 * 1024 * 1024  # uvicorn's own default limit

# Handshake and credential headers are the client library's to set, or ours.
_DROP = HOP_BY_HOP | IDENTITY_AND_FORWARDING | {b"user-agent"}


FOREIGN_ORIGIN = "Cross-origin WebSocket refused: this Origin may not use the session cookie"


def credential(scope: Scope) -> tuple[str | None, bool]:
    """(the caller's token, whether it came from the cookie). Explicit credentials first:
    a page that put a token in the header or the query holds it; a cookie rides along by itself."""
    headers = scope["headers"]
    bearer = token_from_headers([(k, v) for k, v in headers if k == b"authorization"])
    if bearer:
        return bearer, False
    query = scope.get("query_string", b"")
    if b"token=" in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if name == "token" and value:
                return value, False
    cookie = token_from_headers([(k, v) for k, v in headers if k == b"cookie"])
    return cookie, cookie is not None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def _deny(scope: Scope, send: Send, rid: str, status: int, detail: str) -> None:
    """Refuse the upgrade with an HTTP answer: JSON where the server supports it."""
    if "websocket.http.response" in scope.get("extensions", {}):
        body = error_body(status, detail)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (REQUEST_ID_HEADER, rid.encode()),
        ]
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": CLOSE_POLICY})  # the server answers 403


def _upstream_query(query: bytes) -> str:
    if not query:
        return ""
    if b"token=" not in query:
        return "?" + query.decode("latin-1")
    kept = [(k, v) for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True) if k != "token"]
    return "?" + urlencode(kept) if kept else ""


def _upstream_headers(scope: Scope, signed: str, rid: str, traceparent: str) -> list[tuple[str, str]]:
    out = [("X-Internal-Auth", signed), ("X-Request-ID", rid), ("traceparent", traceparent)]
    xff = xfp = xfh = host = None
    for key, value in scope["headers"]:
        if key in _DROP or key.startswith((b"sec-websocket-", b"proxy-")):
            if key == b"cookie":
                kept = strip_cookie(value, COOKIE_NAME)
                if kept:
                    out.append(("Cookie", kept.decode("latin-1")))
            elif key == b"x-forwarded-for":
                xff = value.decode("latin-1")
            elif key == b"x-forwarded-proto":
                xfp = value.decode("latin-1")
            elif key == b"x-forwarded-host":
                xfh = value.decode("latin-1")
            elif key == b"host":
                host = value.decode("latin-1")
            continue
        out.append((key.decode("latin-1"), value.decode("latin-1")))
    client = scope.get("client")
    if client:
        xff = client[0] if not xff else (xff if xff.rpartition(",")[2].strip() == client[0] else f"{xff}, {client[0]}")
    if xff:
        out.append(("X-Forwarded-For", xff))
    out.append(("X-Forwarded-Proto", xfp or forwarded_proto(scope.get("scheme", "ws")).decode()))
    if xfh or host:
        out.append(("X-Forwarded-Host", xfh or host or ""))
    return out


def _sendable(code: int | None, abnormal: int) -> int:
    """A close code that may go on the wire: 1005 (none given) and 1006 (no
    close frame at all) only describe what happened."""
    if code is None or code == 1005:
        return 1000
    if code in (1006, 1015) or not (1000 <= code <= 4999):
        return abnormal
    return code


async def _accept_and_close(send: Send, rid: str, code: int, reason: str) -> None:
    await send({"type": "websocket.accept", "headers": [(REQUEST_ID_HEADER, rid.encode())]})
    await send({"type": "websocket.close", "code": code, "reason": reason[:120]})


async def proxy_websocket(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    path = scope["path"]
    if has_dot_segment(path):
        await send({"type": "websocket.close", "code": CLOSE_POLICY})
        return
    route = gateway.routes.match(path)
    if route is None:
        await gateway.api(scope, receive, send)
        return
    start = time.perf_counter()
    rid = clean_request_id(header(scope, REQUEST_ID_HEADER))
    rid_token = request_id_var.set(rid)
    span = server_span(f"WS {route.prefix}", header(scope, TRACEPARENT))
    trace_token = current_trace.set(span.ids)
    outcome: int = 0
    user_id: int | None = None
    try:
        if (await receive())["type"] != "websocket.connect":
            return
        replicas = gateway.replicas.get(route.service)
        if not gateway.ready or replicas is None:
            outcome = CLOSE_TRY_AGAIN
            await _accept_and_close(send, rid, CLOSE_TRY_AGAIN, "The gateway is starting")
            return
        token, from_cookie = credential(scope)
        origin = _header(scope, b"origin")
        # No Origin: not a browser, so no page riding our cookie (browsers always send it).
        if (
            from_cookie
            and origin is not None
            and not origin_allowed(origin, _header(scope, b"host"), gateway.ws_origins)
        ):
            outcome = 403
            log.warning("cross-origin websocket refused", extra={"origin": origin[:200], "upstream": route.service})
            await _deny(scope, send, rid, 403, FOREIGN_ORIGIN)
            return
        try:
            identified = await gateway.identify(token, route.service, rid)
        except StateUnavailable:
            outcome = CLOSE_TRY_AGAIN
            await _accept_and_close(send, rid, CLOSE_TRY_AGAIN, "Sign-in is temporarily unavailable")
            return
        if identified is None:
            outcome = CLOSE_UNAUTHORIZED
            await _accept_and_close(send, rid, CLOSE_UNAUTHORIZED, UNAUTHORIZED)
            return
        user_id, signed = identified
        query = scope.get("query_string", b"")
        owner = replicas.owner(replicas.session_in_url(path, query))
        if owner is not None and owner >= len(replicas):
            outcome = CLOSE_GONE
            await _accept_and_close(send, rid, CLOSE_GONE, GONE)
            return
        target = f"{(scope.get('raw_path') or path.encode()).decode('latin-1')}{_upstream_query(query)}"
        headers = _upstream_headers(scope, signed, rid, span.traceparent)
        upstream: ClientConnection | None = None
        for ordinal in replicas.order() if owner is None else (owner,):
            try:
                upstream = await _connect(gateway, replicas, ordinal, target, headers, scope.get("subprotocols"))
                break
            except InvalidStatus as exc:
                status = exc.response.status_code
                outcome = 4000 + status if 400 <= status < 500 else CLOSE_TRY_AGAIN
                await _accept_and_close(send, rid, outcome, f"{route.service} refused the connection ({status})")
                return
            except (TimeoutError, InvalidHandshake) as exc:  # the service may have seen the upgrade
                if isinstance(exc, TimeoutError):
                    CONNECT_FAILURES.labels(route.service).inc()
                log.warning("service unavailable", extra={"upstream": route.service, "reason": str(exc)})
                break
            except OSError as exc:  # could not connect: nothing was sent, the next replica may take it
                replicas.failed(ordinal, exc)
                if owner is not None:
                    outcome = CLOSE_GONE
                    await _accept_and_close(send, rid, CLOSE_GONE, GONE)
                    return
        if upstream is None:
            outcome = CLOSE_TRY_AGAIN
            await _accept_and_close(send, rid, CLOSE_TRY_AGAIN, f"{route.service} is unavailable")
            return
        outcome = 101
        await send(
            {
                "type": "websocket.accept",
                "subprotocol": upstream.subprotocol,
                "headers": [(REQUEST_ID_HEADER, rid.encode())],
            }
        )
        streams = OPEN_STREAMS.labels(route.service, "websocket")
        streams.inc()
        try:
            await _pump(upstream, receive, send)
        finally:
            streams.dec()
    finally:
        log_access(scope, outcome, start, user_id, route.service)
        observe_proxied(route.service, outcome, start)
        if user_id is not None and gateway.audit is not None:
            gateway.audit.record(user_id, route.service, "websocket", path, outcome, rid)
        span.set("harvis.upstream", route.service)
        span.end(outcome if outcome < 1000 else None, None if outcome < 1000 or outcome == 1000 else f"close {outcome}")
        current_trace.reset(trace_token)
        request_id_var.reset(rid_token)


async def _connect(
    gateway: Gateway,
    replicas: Replicas,
    ordinal: int,
    target: str,
    headers: list[tuple[str, str]],
    subprotocols: list[str] | None,
) -> ClientConnection:
    """The WebSocket to replica `ordinal` (`target`: the path and query to ask it for)."""
    endpoint = replicas.pools[ordinal].endpoint
    url = f"{'wss' if endpoint.ssl else 'ws'}://{endpoint.netloc.decode()}{endpoint.base_path.decode()}{target}"
    settings = gateway.settings
    return await connect(
        url,
        additional_headers=headers,
        subprotocols=subprotocols or None,
        # connect + the service's handshake answer (a quick one, never a long read)
        open_timeout=settings.gateway_connect_timeout_s + min(settings.gateway_read_timeout_s, 10),
        compression=None,
        max_size=MAX_MESSAGE,
        user_agent_header=None,
        proxy=None,
    )


async def _pump(upstream: ClientConnection, receive: Receive, send: Send) -> None:
    async def client_to_upstream() -> None:
        while True:
            message: Message = await receive()
            kind = message["type"]
            if kind == "websocket.receive":
                text = message.get("text")
                await upstream.send(text if text is not None else message.get("bytes") or b"")
            elif kind == "websocket.disconnect":
                await upstream.close(_sendable(message.get("code"), 1001), message.get("reason") or "")
                return

    async def upstream_to_client() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for data in upstream:
                if isinstance(data, str):
                    await send({"type": "websocket.send", "text": data})
                else:
                    await send({"type": "websocket.send", "bytes": data})
        await send(
            {
                "type": "websocket.close",
                "code": _sendable(upstream.close_code, 1011),
                "reason": upstream.close_reason or "",
            }
        )

    tasks = [asyncio.create_task(client_to_upstream()), asyncio.create_task(upstream_to_client())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.warning("websocket relay failed", extra={"reason": repr(task.exception())})
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await upstream.close()
