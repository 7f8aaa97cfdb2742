"""Screen analysis (real Tesseract) and the SSRF proxy on its own."""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path

import pytest
from conftest import as_user
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw, ImageFont

from browser_service import ocr
from browser_service.proxy import GuardProxy
from harvis_common.ssrf import SSRFPolicy
from harvis_common.testing import InternalAuthKit

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def text_image(lines: list[str], size: int = 28) -> bytes:
    font = ImageFont.truetype(str(FONT), size) if FONT.exists() else ImageFont.load_default(size)
    img = Image.new("RGB", (900, 80 + 60 * len(lines)), "white")
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        draw.text((40, 40 + 60 * i), line, fill="black", font=font)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_ocr_reads_text_with_boxes() -> None:
    result = ocr.analyze(text_image(["Harvis reads screens", "Invoice total 4213 EUR"]))
    assert "Harvis reads screens" in result["text"] and "Invoice total 4213 EUR" in result["text"]
    first = result["elements"][0]
    assert first["text"] == "Harvis reads screens"
    assert 30 <= first["x"] <= 50 and 35 <= first["y"] <= 60 and first["width"] > 200 and first["height"] > 10
    assert [w["text"] for w in first["words"]] == ["Harvis", "reads", "screens"]
    assert (result["width"], result["height"]) == (900, 200)


def test_screen_analyze_endpoint_validates_its_input(app_client: TestClient, kit: InternalAuthKit) -> None:
    h = as_user(kit, 41)
    png = text_image(["Quarterly report ready"])
    r = app_client.post("/api/screen-analyze", json={"image": base64.b64encode(png).decode()}, headers=h)
    assert r.status_code == 200, r.text
    assert "Quarterly report ready" in r.json()["text"] and r.json()["description"] is None
    data_url = "data:image/png;base64," + base64.b64encode(png).decode()
    assert app_client.post("/api/screen-analyze", json={"image": data_url}, headers=h).status_code == 200
    for body, status in (
        ({}, 422),
        ({"image": "!!!not base64!!!"}, 400),
        ({"image": base64.b64encode(b"plain text, no image").decode()}, 400),
        ({"session_id": "00000000-0000-0000-0000-000000000000"}, 404),
        ({"image": base64.b64encode(png).decode(), "language": "../etc"}, 422),
    ):
        r = app_client.post("/api/screen-analyze", json=body, headers=h)
        assert r.status_code == status, (body, r.text)
        assert r.json()["message"]


async def _request(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return data


async def _origin() -> tuple[asyncio.Server, int, list[bytes]]:
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.2", 0)
    return server, server.sockets[0].getsockname()[1], seen


@pytest.mark.parametrize(
    "raw",
    [
        b"GET http://127.0.0.1:9/ HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n",
        b"GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
        b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n",
        b"CONNECT [::1]:443 HTTP/1.1\r\n\r\n",
        b"CONNECT 10.0.0.1:22 HTTP/1.1\r\n\r\n",
        b"GET ftp://127.0.0.2/ HTTP/1.1\r\n\r\n",
        b"GET /relative HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    ],
)
async def test_proxy_refuses_internal_targets(raw: bytes) -> None:
    proxy = GuardProxy(SSRFPolicy.from_setting("127.0.0.2/32"))
    port = await proxy.start()
    try:
        answer = await _request(port, raw)
        assert answer.startswith(b"HTTP/1.1 403"), answer[:100]
        assert len(proxy.blocked) == 1
    finally:
        await proxy.close()


async def test_proxy_relays_allowed_requests_to_the_vetted_address() -> None:
    server, origin_port, seen = await _origin()
    proxy = GuardProxy(SSRFPolicy.from_setting("127.0.0.2/32"))
    port = await proxy.start()
    try:
        raw = (
            f"GET http://127.0.0.2:{origin_port}/page?q=1 HTTP/1.1\r\nHost: 127.0.0.2:{origin_port}\r\n"
            "Proxy-Connection: keep-alive\r\n\r\n"
        ).encode()
        answer = await _request(port, raw)
        assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"hello")
        assert b"Connection: close" in answer and b"keep-alive" not in answer
        assert seen[0].startswith(b"GET /page?q=1 HTTP/1.1\r\n")
        assert b"Proxy-Connection" not in seen[0] and b"Connection: close" in seen[0]
        assert not proxy.blocked
    finally:
        await proxy.close()
        server.close()


def test_ocr_keeps_label_and_value_on_one_line() -> None:
    rows = ["Name: Ada Lovelace", "Role: first programmer", "Machine: Analytical Engine", "Year: 1843"]
    result = ocr.analyze(text_image(rows, size=36))
    for row in rows:
        assert row in result["text"].splitlines(), result["text"]


async def test_proxy_tunnels_connect_to_an_allowed_host() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"echo:" + await reader.readexactly(5))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.2", 0)
    origin_port = server.sockets[0].getsockname()[1]
    proxy = GuardProxy(SSRFPolicy.from_setting("127.0.0.2/32"))
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
