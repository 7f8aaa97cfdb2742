"""Pure-ASGI middleware every service runs: request id, trace context, internal auth, access log.

Pure ASGI (not BaseHTTPMiddleware) so streamed bodies — SSE, uploads,
downloads — pass through untouched and nothing is buffered.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from .errors import error_body
from .internal_auth import HEADER_LOWER, InternalAuthError, InternalVerifier
from .logging import request_id_var
from .metrics import route_template
from .tracing import HEADER_LOWER as TRACEPARENT
from .tracing import current_trace, server_span, unrecorded_span

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("harvis.access")
auth_log = logging.getLogger("harvis.internal_auth")

REQUEST_ID_HEADER = b"x-request-id"
_MAX_RID_LEN = 128


def clean_request_id(raw: bytes | None) -> str:
    """Keep a caller's request id if it is sane, else make one."""
    if raw and len(raw) <= _MAX_RID_LEN:
        try:
            rid = raw.decode("ascii")
        except UnicodeDecodeError:
            rid = ""
        if rid and all(c.isalnum() or c in "-_.:" for c in rid):
            return rid
    return uuid.uuid4().hex


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value
    return None


async def send_json_error(
    send: Send, status: int, detail: str, rid: str, extra: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    body = error_body(status, detail)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (REQUEST_ID_HEADER, rid.encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ServiceMiddleware:
    """Verifies X-Internal-Auth on everything but the open paths (health probes)."""

    def __init__(self, app: ASGIApp, verifier: InternalVerifier | None, open_paths: Iterable[str]) -> None:
        self.app = app
        self.verifier = verifier
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        rid = clean_request_id(header(scope, REQUEST_ID_HEADER))
        token = request_id_var.set(rid)
        raw_traceparent = header(scope, TRACEPARENT)
        if scope["path"] in self.open_paths:
            span = unrecorded_span(raw_traceparent)
        else:
            span = server_span(scope["path"], raw_traceparent)
        trace_token = current_trace.set(span.ids)
        start = time.perf_counter()
        status_holder = [0]
        user_id: int | None = None
        try:
            if scope["path"] not in self.open_paths:
                raw = header(scope, HEADER_LOWER)
                try:
                    if self.verifier is None:
                        raise InternalAuthError("internal auth is not configured")
                    identity = self.verifier.verify(raw.decode("latin-1") if raw else None)
                except InternalAuthError as exc:
                    auth_log.warning("rejected request", extra={"reason": str(exc), "path": scope["path"]})
                    if scope["type"] == "websocket":
                        await send({"type": "websocket.close", "code": 4401})
                        return
                    status_holder[0] = 401
                    await send_json_error(
                        send, 401, "Missing or invalid internal authentication", rid, [(b"www-authenticate", b"Bearer")]
                    )
                    return
                user_id = identity.user_id
                scope.setdefault("state", {})["identity"] = identity
            scope.setdefault("state", {})["request_id"] = rid

            async def send_with_rid(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status_holder[0] = message["status"]
                    message["headers"] = [*message.get("headers", ()), (REQUEST_ID_HEADER, rid.encode())]
                await send(message)

            await self.app(scope, receive, send_with_rid)
        finally:
            if scope["path"] not in self.open_paths:
                access_log.info(
                    "request",
                    extra={
                        "method": scope.get("method", "WS"),
                        "path": scope["path"],
                        "status": status_holder[0],
                        "duration_ms": round((time.perf_counter() - start) * 1000, 2),
                        "user_id": user_id,
                    },
                )
            if span.recording:
                method, route = scope.get("method", "WS"), route_template(scope)
                span.rename(f"{method} {route}")
                span.set("http.request.method", method)
                span.set("http.route", route)
                span.set("harvis.request_id", rid)
            span.end(status_holder[0])
            current_trace.reset(trace_token)
            request_id_var.reset(token)
