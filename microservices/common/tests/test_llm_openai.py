"""OpenAIClient against a small OpenAI-compatible SSE server: streaming, <think>
splitting, unfinished streams, errors, images, embeddings, and the retry of a request
on a connection the server had closed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web

from harvis_common.llm import LLMInputTooLong, LLMUnavailable, ModelNotFound, OpenAIClient
from harvis_common.llm.openai import _openai_message

USER = [{"role": "user", "content": "hello there"}]


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
        if body["model"] == "unfinished":
            return resp  # cut off: no finish_reason, no [DONE]
        await resp.write(
            _sse({"model": "gemma-3-270m", "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
        )
        if body["model"] != "truncated":
            await resp.write(b"data: [DONE]\n\n")
        return resp

    async def embeddings(request: web.Request) -> web.Response:
        texts = (await request.json())["input"]
        data = [{"index": i, "embedding": [float(len(t))]} for i, t in enumerate(texts)]
        return web.json_response({"object": "list", "data": data[::-1]})  # the order is the index's

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_post("/v1/embeddings", embeddings)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
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


async def test_openai_stream_without_done_finishes_on_its_finish_reason(openai_url: str) -> None:
    client = OpenAIClient(openai_url)
    try:
        result = await client.chat(USER, "truncated")
        assert (result.content, result.reasoning, result.done_reason) == ("Hello world", "hmm", "length")
    finally:
        await client.close()


async def test_openai_stream_cut_off_before_its_finish_is_unavailable(openai_url: str) -> None:
    client = OpenAIClient(openai_url)
    got: list[str] = []
    try:
        with pytest.raises(LLMUnavailable, match="ended the answer without finishing it") as err:
            async for chunk in client.chat_stream(USER, "unfinished"):
                got.append(chunk.content)
        assert err.value.status == 503 and "".join(got) == "Hello world"
    finally:
        await client.close()


async def test_openai_embeddings_in_the_order_of_the_texts(openai_url: str) -> None:
    client = OpenAIClient(openai_url)
    try:
        assert await client.embed(["a", "bbb"], "gemma-3-270m") == [[1.0], [3.0]]
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
    parts = _openai_message({"role": "user", "content": "see", "images": ["QUJD"]})["content"]
    assert parts[1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}}


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
