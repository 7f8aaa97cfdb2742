"""Screen analysis (real Tesseract). The SSRF proxy in front of Chromium is harvis_common.ssrf_proxy
(tested in microservices/common/tests/test_ssrf_proxy.py, and here through real browsers)."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from conftest import as_user
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw, ImageFont

from browser_service import ocr
from harvis_testkit import InternalAuthKit

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


def test_ocr_keeps_label_and_value_on_one_line() -> None:
    rows = ["Name: Ada Lovelace", "Role: first programmer", "Machine: Analytical Engine", "Year: 1843"]
    result = ocr.analyze(text_image(rows, size=36))
    for row in rows:
        assert row in result["text"].splitlines(), result["text"]
