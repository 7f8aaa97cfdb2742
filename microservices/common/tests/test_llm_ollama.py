"""OllamaClient against the fake Ollama (its real NDJSON wire format): model lists,
streaming, <think> splitting, images, errors, timeouts, cancellation, unload, embeddings."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from harvis_common.llm import LLMError, LLMTimeout, LLMUnavailable, ModelNotFound, OllamaClient

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests" / "fakes"))
from fake_ollama import FakeOllama


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[tuple[FakeOllama, str]]:
    server = FakeOllama()
    url = await server.start()
    yield server, url
    await server.stop()


@pytest_asyncio.fixture
async def ollama(fake: tuple[FakeOllama, str]) -> AsyncIterator[OllamaClient]:
    client = OllamaClient(fake[1], read_timeout_s=5)
    yield client
    await client.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


USER = [{"role": "user", "content": "hello there"}]


async def test_ollama_lists_models(ollama: OllamaClient) -> None:
    models = await ollama.list_models()
    names = [m.name for m in models]
    assert "fake-llama:latest" in names
    assert models[0].size == 4_100_000_000 and models[0].quantization == "Q4_K_M"


async def test_ollama_streams_chunks_in_order(ollama: OllamaClient, fake: tuple[FakeOllama, str]) -> None:
    chunks = [c async for c in ollama.chat_stream(USER, "fake-llama", temperature=0.2)]
    assert len(chunks) > 2
    assert chunks[-1].done and chunks[-1].completion_tokens is not None
    assert "".join(c.content for c in chunks) == "Echo: hello there"
    sent = fake[0].stats["last_request"]
    assert sent["stream"] is True and sent["options"]["temperature"] == 0.2


async def test_ollama_chat_collects(ollama: OllamaClient) -> None:
    result = await ollama.chat([{"role": "user", "content": "x [[think]]"}], "fake-llama:latest")
    assert result.content == "Echo: x"
    assert result.reasoning == "Let me think."


async def test_ollama_images_are_sent_bare_base64(ollama: OllamaClient, fake: tuple[FakeOllama, str]) -> None:
    msg = {"role": "user", "content": "what", "images": ["data:image/png;base64,AAAA", "BBBB"]}
    result = await ollama.chat([msg], "fake-vision")
    assert result.content.startswith("I see 2 image(s).")
    assert fake[0].stats["last_request"]["messages"][0]["images"] == ["AAAA", "BBBB"]


async def test_ollama_missing_model(ollama: OllamaClient) -> None:
    with pytest.raises(ModelNotFound) as info:
        async for _ in ollama.chat_stream(USER, "no-such-model"):
            pass
    assert "no-such-model" in str(info.value) and info.value.status == 404


async def test_ollama_error_mid_stream(ollama: OllamaClient) -> None:
    got: list[str] = []
    with pytest.raises(LLMError, match="out of memory"):
        async for chunk in ollama.chat_stream([{"role": "user", "content": "[[error]] a b c d e"}], "fake-llama"):
            got.append(chunk.content)
    assert got  # the tokens before the failure were delivered


async def test_ollama_down_is_unavailable() -> None:
    client = OllamaClient(f"http://127.0.0.1:{free_port()}", connect_timeout_s=1)
    try:
        with pytest.raises(LLMUnavailable):
            await client.list_models()
        with pytest.raises(LLMUnavailable) as info:
            async for _ in client.chat_stream(USER, "m"):
                pass
        assert info.value.status == 503
    finally:
        await client.close()


async def test_ollama_stall_times_out(fake: tuple[FakeOllama, str]) -> None:
    client = OllamaClient(fake[1], read_timeout_s=0.3)
    try:
        with pytest.raises(LLMTimeout):
            async for _ in client.chat_stream([{"role": "user", "content": "[[delay:2]] hi"}], "fake-llama"):
                pass
    finally:
        await client.close()


async def test_ollama_stopping_early_cancels_generation(ollama: OllamaClient, fake: tuple[FakeOllama, str]) -> None:
    stream = ollama.chat_stream([{"role": "user", "content": "[[slow]]"}], "fake-llama")
    async for _ in stream:
        break
    await stream.aclose()
    for _ in range(50):
        if fake[0].stats["cancelled"]:
            break
        await asyncio.sleep(0.05)
    assert fake[0].stats["cancelled"] == 1 and fake[0].stats["completed"] == 0


async def test_ollama_loaded_models_and_unload(ollama: OllamaClient) -> None:
    await ollama.chat(USER, "fake-llama")
    assert [m.name for m in await ollama.loaded_models()] == ["fake-llama:latest"]
    assert await ollama.unload("fake-llama:latest") is True
    assert await ollama.loaded_models() == []


async def test_ollama_embed(ollama: OllamaClient) -> None:
    vectors = await ollama.embed(["a", "bb"], "fake-llama")
    assert len(vectors) == 2 and len(vectors[0]) == 3
