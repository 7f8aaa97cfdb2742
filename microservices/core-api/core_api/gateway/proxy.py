"""The gateway: a raw ASGI app in front of core-api's FastAPI app.

Requests under a service's prefix are authenticated here and proxied to the
service with a signed `X-Internal-Auth` header; everything else (lifespan,
core-api's own routes) goes to `api`. No framework on the proxy path: at
thousands of requests per second, request objects and routing cost more CPU
than the service we are proxying to.
"""

from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import quote

from harvis_common.internal_auth import InternalSigner
from harvis_common.logging import request_id_var
from harvis_common.metrics import METRICS_PATH, observe_request
from harvis_common.middleware import REQUEST_ID_HEADER, clean_request_id, header, send_json_error
from harvis_common.tracing import HEADER_LOWER as TRACEPARENT
from harvis_common.tracing import current_trace, server_span, tracing_enabled, unrecorded_span

from ..audit import INTERNAL_ACTIONS, AuditLog
from ..auth.context import AUTH_UNAVAILABLE, STATE_RETRY_AFTER_S, Authenticator, token_from_headers
from ..auth.user_state import StateUnavailable
from ..settings import Settings
from .asgi import UNAUTHORIZED, ASGIApp, Message, Receive, Scope, Send, log_access
from .headers import build_request_head, response_headers
from .origin import parse_allowed
from .replicas import GONE, Replicas, SessionGone, replay
from .routes import Route, RouteTable, has_dot_segment, is_long, load_manifests, service_urls
from .telemetry import OPEN_STREAMS, observe_proxied
from .upstream import (
    ClientGone,
    Connection,
    Endpoint,
    UpstreamBroken,
    UpstreamError,
    UpstreamPool,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from .websocket import proxy_websocket

log = logging.getLogger("harvis.gateway")

WWW_AUTHENTICATE = ((b"www-authenticate", b"Bearer"),)
CLIENT_CLOSED = 499  # nginx's code for "client closed the request", for the access log
QUIET_PATHS = frozenset({"/health", "/ready", METRICS_PATH})  # probes, scrapes: not worth an access line each


class Gateway:
    """The ASGI app uvicorn serves: proxies service prefixes, else calls `api`."""

    def __init__(self, api: ASGIApp, settings: Settings, routes: RouteTable | None = None) -> None:
        self.api = api
        self.settings = settings
        manifests = load_manifests(settings)
        self.manifests = manifests
        self.routes = routes or RouteTable.from_manifests(manifests)
        # Each service's replicas' endpoints, in ordinal order (one for most).
        self.endpoints = {
            name: [Endpoint.from_url(name, url) for url in urls]
            for name, urls in service_urls(settings, manifests).items()
        }
        self.replicas: dict[str, Replicas] = {}
        self._auth: Authenticator | None = None
        self._signer: InternalSigner | None = None
        self._read_timeout = settings.gateway_read_timeout_s
        self.ws_origins = parse_allowed(settings.websocket_allowed_origins)
        self._stream_timeout = settings.gateway_stream_timeout_s
        self.audit: AuditLog | None = None  # set by the app's lifespan (core_api/audit.py)

    # ---------------------------------------------------------------- lifecycle

    @property
    def signer(self) -> InternalSigner | None:
        return self._signer

    def attach(self, authenticator: Authenticator, signer: InternalSigner) -> None:
        self._auth = authenticator
        self._signer = signer

    async def start(self) -> None:
        """Create the connection pools, one per replica (connections themselves open on demand)."""
        loop = asyncio.get_running_loop()
        settings = self.settings
        self.replicas = {
            name: Replicas(
                name,
                [
                    UpstreamPool(
                        endpoint,
                        connect_timeout=settings.gateway_connect_timeout_s,
                        max_connections=settings.gateway_max_connections,
                        loop=loop,
                    )
                    for endpoint in endpoints
                ],
                self.manifests[name].sessions,
            )
            for name, endpoints in self.endpoints.items()
        }

    async def stop(self) -> None:
        replicas, self.replicas = self.replicas, {}
        for service in replicas.values():
            await service.close()

    @property
    def ready(self) -> bool:
        return bool(self.replicas) and self._auth is not None and self._signer is not None

    async def identify(self, credential: str | None, service: str, request_id: str) -> tuple[int, str] | None:
        """(user id, the signed X-Internal-Auth for `service`) for a valid user credential, else
        None. HTTP and WebSocket requests both go through here; call only when `ready`. The
        identity signed is the user's current one (admin flag, still active); raises
        StateUnavailable when that can't be known."""
        assert self._auth is not None and self._signer is not None
        user = await self._auth.authenticate(credential) if credential else None
        if user is None:
            return None
        signed = self._signer.sign(
            service,
            user_id=user.id,
            email=user.email,
            username=user.username,
            is_admin=user.is_admin,
            request_id=request_id,
        )
        return user.id, signed

    # ---------------------------------------------------------------- ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            if has_dot_segment(path):
                await self._reject(scope, send, 400, "Invalid path: '..' segments are not allowed")
                return
            route = self.routes.match(path)
            if route is None:
                await self._local(scope, receive, send)
            else:
                await self._proxy(scope, receive, send, route)
        elif kind == "websocket":
            await proxy_websocket(self, scope, receive, send)
        else:
            await self.api(scope, receive, send)

    async def _reject(self, scope: Scope, send: Send, status: int, detail: str) -> None:
        rid = clean_request_id(header(scope, REQUEST_ID_HEADER))
        token = request_id_var.set(rid)
        try:
            await send_json_error(send, status, detail, rid)
            log_access(scope, status, time.perf_counter(), None, None)
        finally:
            request_id_var.reset(token)

    async def _local(self, scope: Scope, receive: Receive, send: Send) -> None:
        """core-api's own routes: add the request id and the access line, no proxying."""
        start = time.perf_counter()
        rid = clean_request_id(header(scope, REQUEST_ID_HEADER))
        rid_header = (REQUEST_ID_HEADER, rid.encode())
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        status = 0

        async def send_with_rid(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        token = request_id_var.set(rid)
        quiet = scope["path"] in QUIET_PATHS  # probes and scrapes: no access line, no exported span
        raw_traceparent = header(scope, TRACEPARENT)
        span = unrecorded_span(raw_traceparent) if quiet else server_span("core-api", raw_traceparent)
        trace_token = current_trace.set(span.ids)
        try:
            await self.api(scope, receive, send_with_rid)
        finally:
            if not quiet:
                log_access(scope, status or 500, start, state.get("user_id"), None)
                route = observe_request(scope, status or 500, start)
                if route in INTERNAL_ACTIONS and self.audit is not None and "internal_service" in state:
                    # A service acting for a user on the internal API (api/deps.py internal_caller).
                    self.audit.record(
                        state.get("user_id"),
                        state["internal_service"],
                        INTERNAL_ACTIONS[route],
                        state.get("audit_target") or scope["path"],
                        status or 500,
                        rid,
                    )
                span.rename(f"{scope.get('method', 'WS')} {route}")
                span.set("http.route", route)
                span.set("harvis.request_id", rid)
            span.end(status or 500)
            current_trace.reset(trace_token)
            request_id_var.reset(token)

    async def _proxy(self, scope: Scope, receive: Receive, send: Send, route: Route) -> None:
        start = time.perf_counter()
        rid = clean_request_id(header(scope, REQUEST_ID_HEADER))
        token = request_id_var.set(rid)
        # One span for the hop (the service's own span is its child): with tracing on, each span
        # costs ~100 µs of CPU in the SDK, so the gateway makes one, not a server and a client span.
        span = server_span(
            f"{scope['method']} {route.prefix}",
            header(scope, TRACEPARENT),
            {"harvis.upstream": route.service, "harvis.request_id": rid} if tracing_enabled() else None,
        )
        trace_token = current_trace.set(span.ids)
        status = 0
        user_id = None
        try:
            if not self.ready:
                status = 503
                await send_json_error(send, 503, "The gateway is starting", rid)
                return
            try:
                identified = await self.identify(token_from_headers(scope["headers"]), route.service, rid)
            except StateUnavailable:
                status = 503
                await send_json_error(
                    send, 503, AUTH_UNAVAILABLE, rid, ((b"retry-after", STATE_RETRY_AFTER_S.encode()),)
                )
                return
            if identified is None:
                status = 401
                await send_json_error(send, 401, UNAUTHORIZED, rid, WWW_AUTHENTICATE)
                return
            user_id, signed = identified
            status = await self._exchange(scope, receive, send, route, signed.encode(), rid, span.traceparent)
        finally:
            log_access(scope, status, start, user_id, route.service)
            observe_proxied(route.service, status, start)
            if user_id is not None and self.audit is not None:
                self.audit.record(user_id, route.service, "request", f"{scope['method']} {scope['path']}", status, rid)
            span.end(status)
            current_trace.reset(trace_token)
            request_id_var.reset(token)

    async def _exchange(
        self, scope: Scope, receive: Receive, send: Send, route: Route, signed: bytes, rid: str, traceparent: str
    ) -> int:
        """Send the request to the service and stream its response back; returns the status."""
        replicas = self.replicas[route.service]
        endpoint = replicas.first.endpoint
        path = scope["path"]
        raw_path = scope.get("raw_path") or quote(path).encode()
        query = scope["query_string"]
        target = raw_path + b"?" + query if query else raw_path
        rid_bytes = rid.encode()
        trace = traceparent.encode()
        head = build_request_head(
            scope, endpoint.base_path + target, endpoint.netloc, signed, rid_bytes, traceparent=trace
        )
        timeout = self._stream_timeout if head.wants_stream or is_long(route, path) else self._read_timeout
        has_body = head.body_length != 0
        is_head = scope["method"] == "HEAD"
        owner: int | None = None  # the replica owning the session the request names, if it names one
        body: bytes | None = None  # the body, when it was read to find the session
        if replicas.sessions is not None:
            try:
                session_id, body = await replicas.session_of(scope, receive, head.body_length)
            except ClientGone:
                return CLIENT_CLOSED
            owner = replicas.owner(session_id)

        for attempt in (0, 1):
            try:
                pool, conn = await (replicas.acquire() if owner is None else replicas.acquire_owner(owner))
            except UpstreamUnavailable:
                await send_json_error(send, 503, f"{route.service} is unavailable", rid)
                return 503
            except SessionGone as exc:
                log.warning("session's replica is gone", extra={"upstream": route.service, "reason": str(exc)})
                await send_json_error(send, 410, GONE, rid)
                return 410
            if pool.endpoint is not endpoint:  # another replica: its own Host and base path
                endpoint = pool.endpoint
                head = build_request_head(
                    scope, endpoint.base_path + target, endpoint.netloc, signed, rid_bytes, traceparent=trace
                )
            try:
                conn.begin(timeout, head=is_head, receive=None if has_body else receive)
                conn.write(head.data)
                if has_body:
                    if not await _send_body(conn, receive if body is None else replay(body, receive), head.body_length):
                        pool.release(conn)
                        return CLIENT_CLOSED
                    conn.watch_client(receive)
                await conn.wait_headers()
                break
            except asyncio.CancelledError:
                pool.release(conn)  # not complete: closes it rather than leak it
                raise
            except UpstreamError as exc:
                pool.release(conn)
                if isinstance(exc, ClientGone):
                    return CLIENT_CLOSED
                # A kept-alive connection the service closed just as we reused it:
                # safe to replay once, as long as no body was consumed (or it was read whole).
                if attempt == 0 and conn.reused and (not has_body or body is not None) and not conn.received_any:
                    continue
                if isinstance(exc, UpstreamTimeout):
                    log.warning("service timed out", extra={"upstream": route.service, "reason": str(exc)})
                    await send_json_error(send, 504, f"{route.service} did not answer in time", rid)
                    return 504
                if isinstance(exc, UpstreamBroken) and not conn.received_any and conn.closed:
                    # Dropped without a byte (a fresh connection, or a kept-alive one we could not
                    # replay because its body is gone): the service is going down, not broken.
                    log.warning("service dropped the connection", extra={"upstream": route.service})
                    await send_json_error(send, 503, f"{route.service} is unavailable", rid)
                    return 503
                log.warning("bad gateway", extra={"upstream": route.service, "reason": str(exc)})
                await send_json_error(send, 502, f"{route.service} sent an invalid response", rid)
                return 502

        status = conn.status
        start_message = {
            "type": "http.response.start",
            "status": status,
            "headers": response_headers(conn.headers, rid_bytes),
        }
        if conn.complete:  # the common case: the whole response came in one go
            body = conn.take_body() if conn.chunks else b""
            pool.release(conn)
            await send(start_message)
            await send({"type": "http.response.body", "body": body})
            return status
        await _stream_response(conn, pool, send, start_message, route.service)
        return status


async def _send_body(conn: Connection, receive: Receive, length: int) -> bool:
    """Stream the request body to the service as it arrives; False if the client left."""
    chunked = length < 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            conn.keep_alive = False
            conn.abort(ClientGone("client disconnected during upload"))
            return False
        if conn.closed or conn.complete:
            # The service hung up or already answered: the rest of the body is
            # moot, and the connection is not reusable with a request half sent.
            conn.keep_alive = False
            return True
        body = message.get("body", b"")
        if body:
            conn.write(b"".join((b"%x\r\n" % len(body), body, b"\r\n")) if chunked else body)
            if conn.write_paused:
                await conn.drain()
        if not message.get("more_body", False):
            break
    if chunked:
        conn.write(b"0\r\n\r\n")
    return True


async def _stream_response(conn: Connection, pool: UpstreamPool, send: Send, start: Message, service: str) -> None:
    """Pass the body on chunk by chunk as the service sends it (SSE, downloads)."""
    streams = OPEN_STREAMS.labels(service, "stream")
    streams.inc()
    try:
        await send(start)
        while True:
            try:
                await conn.wait_body()
            except ClientGone:
                return
            except UpstreamError as exc:
                # Headers are out: the only honest signal left is an unfinished body.
                log.warning("service failed mid-response", extra={"upstream": service, "reason": str(exc)})
                return
            data = conn.take_body() if conn.chunks else b""
            if conn.complete:
                await send({"type": "http.response.body", "body": data})
                return
            await send({"type": "http.response.body", "body": data, "more_body": True})
    finally:
        streams.dec()
        pool.release(conn)
