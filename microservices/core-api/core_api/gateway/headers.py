"""Header rewriting for the hop to a service, both ways.

Runs on every proxied request, so it is one pass over the headers with set
lookups and byte joins: no regex, no dicts of headers, no str round-trips.
"""

from __future__ import annotations

from collections.abc import Iterable

CRLF = b"\r\n"
SEP = b": "

# RFC 9110 §7.6.1 hop-by-hop headers (Proxy-* is checked by prefix).
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
)
_NOT_NAMED_IN_CONNECTION = frozenset({b"close", b"keep-alive", b"upgrade", b""})

# Never passed on as the client sent them, over HTTP or WebSocket: the user's credentials
# (services get identity only from the signed header), anything claiming to be that header,
# and the headers the gateway sets itself for the hop.
IDENTITY_AND_FORWARDING = frozenset(
    {
        b"host",
        b"authorization",
        b"cookie",
        b"x-internal-auth",
        b"x-request-id",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"content-length",
        b"traceparent",  # the gateway's own hop span is the service's parent (harvis_common.tracing)
    }
)

# HTTP request headers dropped or rewritten: those, and `Expect` (the ASGI server already
# answered it); `Accept` is looked at (does the client want a stream?) and passed on.
_REQUEST_SPECIAL = HOP_BY_HOP | IDENTITY_AND_FORWARDING | {b"accept", b"expect"}

# Response headers not passed back: hop-by-hop, and those the ASGI server or the
# gateway sets itself (a second Date/Server/X-Request-ID would be a duplicate).
_RESPONSE_DROP = HOP_BY_HOP | {b"date", b"server", b"x-request-id"}

COOKIE_NAME = b"access_token"
_METHODS = {m.decode(): m for m in (b"GET", b"POST", b"PUT", b"PATCH", b"DELETE", b"HEAD", b"OPTIONS")}


def strip_cookie(value: bytes, name: bytes = COOKIE_NAME) -> bytes:
    """The Cookie header without `name` (the user's token stays at the gateway)."""
    if name not in value:
        return value
    kept = [p for p in value.split(b";") if p.strip().partition(b"=")[0] != name]
    return b";".join(kept).strip()


def connection_named(value: bytes | None) -> frozenset[bytes]:
    """Extra headers a `Connection` header declares hop-by-hop (usually none)."""
    if not value:
        return frozenset()
    names = frozenset(t.strip().lower() for t in value.split(b","))
    return names - _NOT_NAMED_IN_CONNECTION


def forwarded_proto(scheme: str) -> bytes:
    return b"https" if scheme in ("https", "wss") else b"http"


class RequestHead:
    """The request line and headers for the service, plus how the body travels."""

    __slots__ = ("body_length", "data", "wants_stream")

    def __init__(self, data: bytes, body_length: int, wants_stream: bool) -> None:
        self.data = data
        self.body_length = body_length  # -1: chunked, 0: no body, n: Content-Length n
        self.wants_stream = wants_stream  # the client asked for text/event-stream


def build_request_head(
    scope: dict,
    target: bytes,
    netloc: bytes,
    internal_auth: bytes,
    request_id: bytes,
    headers: Iterable[tuple[bytes, bytes]] | None = None,
    traceparent: bytes = b"",
) -> RequestHead:
    method = scope["method"]
    out = [
        _METHODS.get(method) or method.encode("ascii"),
        b" ",
        target,
        b" HTTP/1.1\r\nhost: ",
        netloc,
        b"\r\nx-internal-auth: ",
        internal_auth,
        b"\r\nx-request-id: ",
        request_id,
        CRLF,
    ]
    if traceparent:
        out.extend((b"traceparent", SEP, traceparent, CRLF))
    xff = xfp = xfh = host = connection = content_length = None
    chunked = wants_stream = False
    for key, value in scope["headers"] if headers is None else headers:
        if key in _REQUEST_SPECIAL:
            if key == b"cookie":
                value = strip_cookie(value)
                if value:
                    out.extend((key, SEP, value, CRLF))
            elif key == b"accept":
                wants_stream = b"text/event-stream" in value
                out.extend((key, SEP, value, CRLF))
            elif key == b"content-length":
                content_length = value
            elif key == b"host":
                host = value
            elif key == b"x-forwarded-for":
                xff = value if xff is None else xff + b", " + value
            elif key == b"x-forwarded-proto":
                xfp = value
            elif key == b"x-forwarded-host":
                xfh = value
            elif key == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif key == b"connection":
                connection = value
            # authorization, x-internal-auth, x-request-id, expect, hop-by-hop: dropped
        elif key[:6] != b"proxy-":
            out.extend((key, SEP, value, CRLF))

    if connection is not None:
        named = connection_named(connection)
        if named:  # rare: redo the pass without the headers it names
            drop = named | {b"connection"}
            kept = [(k, v) for k, v in (scope["headers"] if headers is None else headers) if k not in drop]
            return build_request_head(scope, target, netloc, internal_auth, request_id, kept, traceparent)

    # Forwarding headers: append our peer to the chain; keep what the proxy in
    # front of us (nginx) said about scheme and host, since only it knows.
    client = scope.get("client")
    peer = client[0].encode() if client else None
    if peer is not None:
        if xff is None:
            xff = peer
        elif xff.rpartition(b",")[2].strip() != peer:  # uvicorn's proxy-headers may already show it
            xff = xff + b", " + peer
    if xff is not None:
        out.extend((b"x-forwarded-for", SEP, xff, CRLF))
    out.extend((b"x-forwarded-proto", SEP, xfp or forwarded_proto(scope.get("scheme", "http")), CRLF))
    if xfh or host:
        out.extend((b"x-forwarded-host", SEP, xfh or host, CRLF))

    if chunked:
        out.append(b"transfer-encoding: chunked\r\n\r\n")
        body_length = -1
    elif content_length is not None:
        out.extend((b"content-length", SEP, content_length, CRLF, CRLF))
        body_length = int(content_length)
    else:
        out.append(CRLF)
        body_length = 0
    return RequestHead(b"".join(out), body_length, wants_stream)


def response_headers(raw: list[tuple[bytes, bytes]], request_id: bytes) -> list[tuple[bytes, bytes]]:
    """The service's response headers (names already lower-case) for the client."""
    out = []
    connection = None
    for key, value in raw:
        if key in _RESPONSE_DROP:
            if key == b"connection":
                connection = value
        elif key[:6] != b"proxy-":
            out.append((key, value))
    if connection is not None:
        named = connection_named(connection)
        if named:
            out = [(k, v) for k, v in out if k not in named]
    out.append((b"x-request-id", request_id))
    return out
