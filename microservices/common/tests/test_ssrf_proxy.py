"""The vetting forward proxy (harvis_common.ssrf_proxy) on its own: what browser-service's
Chromium and n8n-integration's n8n send every request through. Origins listen on 127.0.0.2
(the policy's allowlist); 127.0.0.1 and the rest of the non-public world stay blocked."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest

from harvis_common import ssrf
from harvis_common.ssrf import SSRFPolicy
from harvis_common.ssrf_proxy import GuardProxy

POLICY = SSRFPolicy.from_setting("127.0.0.2/32")


async def _request(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return data


async def _origin(host: str = "127.0.0.2", port: int = 0) -> tuple[asyncio.Server, int, list[bytes]]:
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, host, port)
    return server, server.sockets[0].getsockname()[1], seen


@pytest.mark.parametrize(
    "raw",
    [
        b"GET http://127.0.0.1:9/ HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n",
        b"GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
        b"GET http://2130706433:8001/health HTTP/1.1\r\n\r\n",
        b"GET http://0x7f000001:8001/health HTTP/1.1\r\n\r\n",
        b"GET http://0177.0.0.1:8001/health HTTP/1.1\r\n\r\n",
        b"GET http://[::ffff:7f00:1]:8001/health HTTP/1.1\r\n\r\n",
        b"GET http://localhost:8000/internal HTTP/1.1\r\n\r\n",
        b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n",
        b"CONNECT [::1]:443 HTTP/1.1\r\n\r\n",
        b"CONNECT 10.0.0.1:22 HTTP/1.1\r\n\r\n",
        b"CONNECT localhost:5432 HTTP/1.1\r\n\r\n",
        b"GET ftp://127.0.0.2/ HTTP/1.1\r\n\r\n",
        b"GET /relative HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    ],
)
async def test_proxy_refuses_internal_targets(raw: bytes) -> None:
    proxy = GuardProxy(POLICY)
    port = await proxy.start()
    try:
        answer = await _request(port, raw)
        assert answer.startswith(b"HTTP/1.1 403"), answer[:100]
        assert b"X-Harvis-Blocked: 1\r\n" in answer  # CONNECT refusals too: a client sees why
        assert len(proxy.blocked) == 1
    finally:
        await proxy.close()


async def test_proxy_relays_allowed_requests_to_the_vetted_address() -> None:
    server, origin_port, seen = await _origin()
    proxy = GuardProxy(POLICY)
    port = await proxy.start()
    try:
        raw = (
            f"GET http://127.0.0.2:{origin_port}/page?q=1 HTTP/1.1\r\nHost: 127.0.0.2:{origin_port}\r\n"
            "Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic eDp5\r\n\r\n"
        ).encode()
        answer = await _request(port, raw)
        assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"hello")
        assert b"Connection: close" in answer and b"keep-alive" not in answer
        assert seen[0].startswith(b"GET /page?q=1 HTTP/1.1\r\n")
        assert b"Proxy-" not in seen[0] and b"Connection: close" in seen[0]
        assert not proxy.blocked
    finally:
        await proxy.close()
        server.close()


async def test_proxy_tunnels_connect_to_an_allowed_host() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"echo:" + await reader.readexactly(5))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.2", 0)
    origin_port = server.sockets[0].getsockname()[1]
    proxy = GuardProxy(POLICY)
    port = await proxy.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"CONNECT 127.0.0.2:{origin_port} HTTP/1.1\r\n\r\n".encode())
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        writer.write(b"hello")
        assert await asyncio.wait_for(reader.read(), 5) == b"echo:hello"
        writer.close()
    finally:
        await proxy.close()
        server.close()


async def test_a_name_is_resolved_once_and_the_vetted_address_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the first answer (allowed) is where the connection goes, whatever a
    second lookup would say (here: loopback, where a canary listens on the same port)."""
    server, origin_port, seen = await _origin()
    try:
        canary, _, canary_seen = await _origin("127.0.0.1", origin_port)
    except OSError:
        pytest.fail(f"port {origin_port} is taken on 127.0.0.1; rerun")
    lookups: list[str] = []

    async def rebinding(host: str, port: int) -> list[ipaddress.IPv4Address]:
        lookups.append(host)
        return [ipaddress.IPv4Address("127.0.0.2" if len(lookups) == 1 else "127.0.0.1")]

    monkeypatch.setattr(ssrf, "resolve", rebinding)
    proxy = GuardProxy(POLICY)
    port = await proxy.start()
    try:
        raw = f"GET http://rebind.example:{origin_port}/x HTTP/1.1\r\nHost: rebind.example\r\n\r\n".encode()
        answer = await _request(port, raw)
        assert answer.startswith(b"HTTP/1.1 200 OK"), answer[:200]
        assert lookups == ["rebind.example"] and len(seen) == 1 and not canary_seen
    finally:
        await proxy.close()
        server.close()
        canary.close()


async def test_an_unknown_name_is_a_bad_gateway_not_a_refusal() -> None:
    proxy = GuardProxy(POLICY)
    port = await proxy.start()
    try:
        answer = await _request(port, b"GET http://no-such-host.invalid/ HTTP/1.1\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 502") and b"X-Harvis-Blocked" not in answer
        answer = await _request(port, b"CONNECT no-such-host.invalid:443 HTTP/1.1\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 502")
        assert not proxy.blocked
    finally:
        await proxy.close()


@pytest.mark.parametrize("raw", [b"NONSENSE\r\n\r\n", b"CONNECT 127.0.0.2:notaport HTTP/1.1\r\n\r\n"])
async def test_malformed_requests_get_a_400(raw: bytes) -> None:
    proxy = GuardProxy(POLICY)
    port = await proxy.start()
    try:
        assert (await _request(port, raw)).startswith(b"HTTP/1.1 400")
    finally:
        await proxy.close()


async def test_a_fixed_address_for_other_programs() -> None:
    """n8n is told the proxy's address in its environment: a fixed host and port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    proxy = GuardProxy(POLICY, name="fixed", host="127.0.0.1", port=free)
    assert await proxy.start() == free
    try:
        answer = await _request(free, b"GET http://127.0.0.1:9/ HTTP/1.1\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 403")
    finally:
        await proxy.close()
