"""The optional vision-model description of /api/screen-analyze, against the fake
Ollama of tests/fakes (Ollama's wire format; it answers "I see N image(s)…")."""

from __future__ import annotations

import asyncio
import base64
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import as_user, service_app
from fastapi.testclient import TestClient
from test_ocr import text_image

from harvis_testkit import InternalAuthKit

FAKES = Path(__file__).resolve().parents[3] / "tests" / "fakes"


@pytest.fixture(scope="module")
def fake_ollama() -> Iterator[str]:
    sys.path.insert(0, str(FAKES))
    from fake_ollama import FakeOllama

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    fake = FakeOllama()
    url = asyncio.run_coroutine_threadsafe(fake.start(), loop).result(10)
    yield url
    asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)


@pytest.fixture(scope="module")
def described(kit: InternalAuthKit, tmp_path_factory: pytest.TempPathFactory, fake_ollama: str) -> Iterator[TestClient]:
    with service_app(
        kit,
        tmp_path_factory.mktemp("profiles"),
        SCREEN_DESCRIBE_MODEL="fake-vision",
        SCREEN_DESCRIBE_URL=fake_ollama,
    ) as client:
        yield client


def test_description_comes_from_the_vision_model(described: TestClient, kit: InternalAuthKit) -> None:
    image = base64.b64encode(text_image(["Describe me please"])).decode()
    r = described.post("/api/screen-analyze", json={"image": image}, headers=as_user(kit, 51))
    assert r.status_code == 200, r.text
    body = r.json()
    assert "Describe me please" in body["text"]
    assert body["description"].startswith("I see 1 image(s).")
    r = described.post("/api/screen-analyze", json={"image": image, "describe": False}, headers=as_user(kit, 51))
    assert r.json()["description"] is None


def test_no_model_configured_means_no_description(app_client: TestClient, kit: InternalAuthKit) -> None:
    image = base64.b64encode(text_image(["Plain OCR"])).decode()
    r = app_client.post("/api/screen-analyze", json={"image": image, "describe": True}, headers=as_user(kit, 52))
    assert r.status_code == 400 and "SCREEN_DESCRIBE_MODEL" in r.json()["message"]
