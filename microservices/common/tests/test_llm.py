"""harvis_common.llm against the fake Ollama (its real NDJSON wire format) and a small
OpenAI-compatible SSE server: streaming, <think> splitting, errors, cancellation."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web

from harvis_common.llm import (
    LLMError,
    LLMInputTooLong,
    LLMTimeout,
    LLMUnavailable,
    ModelInfo,
    ModelNotFound,
    ModelPicker,
    OllamaClient,
    OpenAIClient,
    ThinkSplitter,
    create_llm_client,
    human_size,
)

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


# ---------------------------------------------------------------- ThinkSplitter


@pytest.mark.parametrize("size", [1, 2, 3, 5, 100])
def test_think_splitter_any_chunking(size: int) -> None:
    text = "<think>step one</think>The answer <b>is</b> 42"
    splitter = ThinkSplitter()
    content = reasoning = ""
    for i in range(0, len(text), size):
        c, r = splitter.feed(text[i : i + size])
        content, reasoning = content + c, reasoning + r
    c, r = splitter.flush()
    assert (content + c, reasoning + r) == ("The answer <b>is</b> 42", "step one")


def test_think_splitter_unclosed_goes_to_reasoning() -> None:
    splitter = ThinkSplitter()
    assert splitter.feed("<think>still thinking") == ("", "still thinking")
    assert splitter.flush() == ("", "")
    plain = ThinkSplitter()
    assert plain.feed("a < b <thi") == ("a < b ", "")
    assert plain.flush() == ("<thi", "")


def test_human_size() -> None:
    assert human_size(4_100_000_000) == "4.1GB"
    assert human_size(253_000_000) == "253MB"
    assert human_size(None) == ""


def test_factory() -> None:
    assert isinstance(create_llm_client("ollama", "http://x:1"), OllamaClient)
    client = create_llm_client("openai", "http://x:1/v1/", api_key="k")
    assert isinstance(client, OpenAIClient) and client.base_url == "http://x:1"
    with pytest.raises(ValueError):
        create_llm_client("nope", "http://x")


# ---------------------------------------------------------------- Ollama


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


# ---------------------------------------------------------------- OpenAI-compatible


def _sse(obj: object) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


@pytest_asyncio.fixture
async def openai_url() -> AsyncIterator[str]:
    seen: dict[str, object] = {}

    async def models(request: web.Request) -> web.Response:
        seen["auth"] = request.headers.get("Authorization")
        return web.json_response({"object": "list", "data": [{"id": "gemma-3-270m", "object": "model"}]})

    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        seen["body"] = body
        if body["model"] == "missing":
            return web.json_response({"error": {"message": "The model `missing` does not exist"}}, status=404)
        if str(body["messages"][-1]["content"]).startswith("word word"):
            # llama-cpp-python's server: streamed, an empty 200 stream; not streamed, a 400.
            if body["stream"]:
                resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
                await resp.prepare(request)
                return resp
            error = {"message": "This model's maximum context length is 4096 tokens. However, you requested "
                     "6015 tokens.", "type": "invalid_request_error", "code": "context_length_exceeded"}  # fmt: skip
            return web.json_response({"error": error}, status=400)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b": ping\n\n")
        for piece in ["<think>hm", "m</think>Hel", "lo", " world"]:
            await resp.write(_sse({"model": "gemma-3-270m", "choices": [{"index": 0, "delta": {"content": piece}}]}))
        await resp.write(
            _sse({"model": "gemma-3-270m", "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
        )
        if body["model"] != "truncated":
            await resp.write(b"data: [DONE]\n\n")
        return resp

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", completions)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/v1"
    await runner.cleanup()


async def test_openai_streams_and_splits_reasoning(openai_url: str) -> None:
    client = OpenAIClient(openai_url, api_key="sk-test")
    try:
        assert [m.name for m in await client.list_models()] == ["gemma-3-270m"]
        chunks = [c async for c in client.chat_stream(USER, "gemma-3-270m", max_tokens=8)]
        assert "".join(c.content for c in chunks) == "Hello world"
        assert "".join(c.reasoning for c in chunks) == "hmm"
        assert chunks[-1].done and chunks[-1].done_reason == "length"
        with pytest.raises(ModelNotFound):
            await client.chat(USER, "missing")
    finally:
        await client.close()


async def test_openai_too_long_input_is_a_413_not_an_outage(openai_url: str) -> None:
    """Seen by the fuzzer: a huge instruction to the AI edits got 503 ("the backend ended the
    answer without finishing it") from llama-cpp-python's empty stream; it is the caller's
    input that is too long."""
    client = OpenAIClient(openai_url)
    try:
        with pytest.raises(LLMInputTooLong) as err:
            await client.chat([{"role": "user", "content": "word " * 6000}], "gemma-3-270m")
        assert err.value.status == 413 and "maximum context length is 4096" in err.value.message
    finally:
        await client.close()


async def test_openai_images_become_content_parts(openai_url: str) -> None:
    client = OpenAIClient(openai_url)
    try:
        stream = client.chat_stream([{"role": "user", "content": "see", "images": ["QUJD"]}], "gemma-3-270m")
        async for _ in stream:
            pass
    finally:
        await client.close()
    from harvis_common.llm import _openai_message

    parts = _openai_message({"role": "user", "content": "see", "images": ["QUJD"]})["content"]
    assert parts[1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}}


class _ListingClient:
    provider = "ollama"

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.calls = 0

    async def list_models(self) -> list[ModelInfo]:
        self.calls += 1
        return [ModelInfo(name=n) for n in self.names]


async def test_model_picker_falls_back_from_unknown_names_and_caches_the_list() -> None:
    client = _ListingClient(["llama3.2:latest", "qwen3:4b"])
    picker = ModelPicker(client, default_model="qwen3:4b", ttl_s=60)
    assert await picker.pick("llama3.2") == ("llama3.2:latest", False)  # untagged name → :latest
    assert await picker.pick("mistral") == ("qwen3:4b", True)  # the front end's default name
    assert await picker.pick(None, preferred_default="llama3.2") == ("llama3.2:latest", True)
    assert client.calls == 1
    assert await ModelPicker(client, default_model="gone").pick("mistral") == ("llama3.2:latest", True)
    with pytest.raises(LLMError, match="no models"):
        await ModelPicker(_ListingClient([])).pick("x")


async def test_a_connection_the_backend_closed_is_retried_once_on_a_new_one() -> None:
    """llama-cpp-python's server closes some keep-alive connections after a stream; the next
    request on such a pooled connection failed with "Server disconnected" (seen as a 503 by the
    fuzzer). The backend never read it: it goes once more, on a new connection."""
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        if connections > 1:
            body = json.dumps({"object": "list", "data": [{"id": "m", "object": "model"}]}).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(body), body))  # fmt: skip
            await writer.drain()
        writer.close()  # the first: closed without an answer

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = OpenAIClient(f"http://127.0.0.1:{port}/v1")
    try:
        assert [m.name for m in await client.list_models()] == ["m"]
        assert connections == 2
    finally:
        await client.close()
        server.close()
        await server.wait_closed()
