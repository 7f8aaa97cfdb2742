"""The gateway's pure parts: routing table, path checks, header rewriting."""

from __future__ import annotations

import pytest

from core_api.gateway.headers import build_request_head, response_headers, strip_cookie
from core_api.gateway.routes import CHECKOUT_MANIFESTS, SERVICES, RouteTable, has_dot_segment, is_long
from core_api.gateway.upstream import Endpoint
from harvis_common.manifest import ManifestError, load_dir

TABLE = RouteTable.from_manifests(load_dir(CHECKOUT_MANIFESTS, SERVICES))


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/api/web-search", "research-service"),
        ("/api/research-chat", "research-service"),
        ("/api/fact-check", "research-service"),
        ("/api/comparative-research", "research-service"),
        ("/api/research/diagnostics/whoami", "research-service"),
        ("/api/research", "research-service"),
        ("/api/mic-chat", "voice-service"),
        ("/api/tts", "voice-service"),
        ("/api/tts/", "voice-service"),
        ("/api/tts/x", "voice-service"),
        ("/api/stt", "voice-service"),
        ("/api/audio/abc.wav", "voice-service"),
        ("/api/jobs/tts", "voice-service"),
        ("/api/jobs/123", "voice-service"),
        ("/api/voice/diagnostics/stream", "voice-service"),
        ("/api/browser/navigate", "browser-service"),
        ("/api/screen-analyze", "browser-service"),
        ("/api/mcp", "mcp-service"),
        ("/api/mcp/", "mcp-service"),
        ("/api/mcp/tools", "mcp-service"),
        ("/api/n8n/workflow/create", "n8n-integration"),
        ("/api/vibe/session/create", "vibe-coding"),
        ("/api/vibecoding/container/s1/terminal", "vibe-coding"),
    ],
)
def test_prefixes_route_to_their_service(path: str, service: str) -> None:
    route = TABLE.match(path)
    assert route is not None and route.service == service


@pytest.mark.parametrize(
    "path",
    [
        "/api/ttsx",
        "/api/tts-x/y",
        "/api/mcpx",
        "/api/vibes",
        "/api/researcher",
        "/api/auth/login",
        "/api/health",
        "/api/chat",
        "/api",
        "/api/",
        "/",
        "/health",
        "/tts",
        "/apix/tts",
        "/api//tts",
    ],
)
def test_non_prefixes_stay_local(path: str) -> None:
    assert TABLE.match(path) is None


def test_streaming_routes_get_the_long_timeout() -> None:
    def streaming(path: str) -> bool:
        route = TABLE.match(path)
        assert route is not None
        return is_long(route, path)

    assert streaming("/api/research-chat")
    assert streaming("/api/mic-chat")
    assert streaming("/api/vibe/execute")
    assert streaming("/api/mcp/diagnostics/stream")
    # JSON routes that wait on a model: a slow CPU model must not become a 504
    model_bound = ["/api/fact-check", "/api/comparative-research", "/api/vibe/ai/propose", "/api/n8n/optimize"]
    model_bound += ["/api/n8n/workflow/create", "/api/screen-analyze", "/api/stt", "/api/tts", "/api/research/sources"]
    for path in model_bound:
        assert streaming(path), path
    assert streaming("/api/vibecoding/container/s-1/terminal")  # a template: one segment
    assert not streaming("/api/vibecoding/container/s-1/x/terminal")
    assert not streaming("/api/web-search")
    assert not streaming("/api/vibe/session/create")


def test_every_service_has_a_manifest_and_a_missing_one_stops_the_gateway(tmp_path) -> None:
    assert TABLE.services() == sorted(SERVICES)
    with pytest.raises(ManifestError, match=r"research-service/manifest\.toml is missing"):
        load_dir(tmp_path, SERVICES)


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        ("/api/tts/../auth/me", True),
        ("/api/tts/..", True),
        ("/..", True),
        ("/api/tts/%2e%2e/x", True),  # the client double-encoded it: a second decoding gives `..`
        ("/api/tts/%252e%252e/x", False),  # decodes once more to `%2e%2e`: a name, not `..`
        ("/api/tts/..%2fsecret", True),
        ("/api/tts/...", False),
        ("/api/tts/a..b", False),
        ("/api/tts/file..wav", False),
        ("/api/tts/x", False),
    ],
)
def test_dot_segments(path: str, bad: bool) -> None:
    assert has_dot_segment(path) is bad


def _head(headers: list[tuple[bytes, bytes]], **scope_extra: object) -> tuple[bytes, dict[bytes, list[bytes]]]:
    scope = {"method": "POST", "headers": headers, "client": ("10.0.0.5", 5555), "scheme": "http", **scope_extra}
    head = build_request_head(scope, b"/api/tts/x?q=1", b"voice:8002", b"SIGNED", b"rid-1")
    lines = head.data.split(b"\r\n")
    assert lines[0] == b"POST /api/tts/x?q=1 HTTP/1.1"
    assert head.data.endswith(b"\r\n\r\n")
    parsed: dict[bytes, list[bytes]] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(b": ")
            parsed.setdefault(name.lower(), []).append(value)
    return head, parsed


def test_request_head_replaces_credentials_and_identity() -> None:
    _, h = _head(
        [
            (b"host", b"harvis.local:9000"),
            (b"authorization", b"Bearer user-token"),
            (b"x-internal-auth", b"forged"),
            (b"x-request-id", b"client-rid"),
            (b"cookie", b"theme=dark; access_token=user-token; lang=en"),
            (b"content-type", b"application/json"),
            (b"content-length", b"2"),
        ]
    )
    assert h[b"host"] == [b"voice:8002"]
    assert h[b"x-internal-auth"] == [b"SIGNED"]
    assert h[b"x-request-id"] == [b"rid-1"]
    assert b"authorization" not in h
    assert h[b"cookie"] == [b"theme=dark; lang=en"]
    assert h[b"x-forwarded-host"] == [b"harvis.local:9000"]
    assert h[b"x-forwarded-proto"] == [b"http"]
    assert h[b"x-forwarded-for"] == [b"10.0.0.5"]
    assert h[b"content-length"] == [b"2"]


def test_request_head_strips_hop_by_hop_and_connection_named() -> None:
    head, h = _head(
        [
            (b"connection", b"keep-alive, X-Secret-Hop"),
            (b"x-secret-hop", b"1"),
            (b"keep-alive", b"timeout=5"),
            (b"te", b"trailers"),
            (b"trailer", b"x-t"),
            (b"upgrade", b"h2c"),
            (b"proxy-authorization", b"Basic x"),
            (b"proxy-connection", b"keep-alive"),
            (b"transfer-encoding", b"chunked"),
            (b"expect", b"100-continue"),
            (b"x-kept", b"yes"),
        ]
    )
    for name in (b"connection", b"x-secret-hop", b"keep-alive", b"te", b"trailer", b"upgrade", b"expect"):
        assert name not in h
    assert not [n for n in h if n.startswith(b"proxy-")]
    assert h[b"x-kept"] == [b"yes"]
    assert h[b"transfer-encoding"] == [b"chunked"]  # ours: the body is re-chunked
    assert head.body_length == -1


def test_forwarded_chain_is_appended_not_duplicated() -> None:
    _, h = _head([(b"x-forwarded-for", b"203.0.113.9"), (b"x-forwarded-proto", b"https")])
    assert h[b"x-forwarded-for"] == [b"203.0.113.9, 10.0.0.5"]
    assert h[b"x-forwarded-proto"] == [b"https"]
    # uvicorn's proxy-headers support may already have made the client the peer.
    _, h = _head([(b"x-forwarded-for", b"203.0.113.9")], client=("203.0.113.9", 1))
    assert h[b"x-forwarded-for"] == [b"203.0.113.9"]


def test_sse_accept_is_noticed() -> None:
    head, _ = _head([(b"accept", b"text/event-stream")])
    assert head.wants_stream and head.body_length == 0


def test_strip_cookie() -> None:
    assert strip_cookie(b"access_token=abc") == b""
    assert strip_cookie(b"a=1; access_token=abc") == b"a=1"
    assert strip_cookie(b"access_token=abc; b=2") == b"b=2"
    assert strip_cookie(b"my_access_token=x; a=1") == b"my_access_token=x; a=1"


def test_response_headers_drop_hop_by_hop_and_keep_the_rest() -> None:
    out = response_headers(
        [
            (b"content-type", b"application/json"),
            (b"content-length", b"2"),
            (b"connection", b"keep-alive, x-hop"),
            (b"x-hop", b"1"),
            (b"keep-alive", b"timeout=5"),
            (b"transfer-encoding", b"chunked"),
            (b"proxy-authenticate", b"Basic"),
            (b"date", b"Mon"),
            (b"server", b"uvicorn"),
            (b"x-request-id", b"service-rid"),
            (b"set-cookie", b"a=1"),
            (b"set-cookie", b"b=2"),
        ],
        b"rid-1",
    )
    assert out == [
        (b"content-type", b"application/json"),
        (b"content-length", b"2"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
        (b"x-request-id", b"rid-1"),
    ]


def test_endpoint_from_url() -> None:
    ep = Endpoint.from_url("voice-service", "http://voice-service:8002")
    assert (ep.host, ep.port, ep.netloc) == ("voice-service", 8002, b"voice-service:8002")
    assert (ep.base_path, ep.ssl) == (b"", False)
    ep = Endpoint.from_url("x", "https://example.com/base/")
    assert (ep.port, ep.base_path, ep.ssl) == (443, b"/base", True)
    with pytest.raises(ValueError):
        Endpoint.from_url("x", "ftp://nope")
