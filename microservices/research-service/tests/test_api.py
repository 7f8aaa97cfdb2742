"""The four endpoints through the app (TestClient, internal auth), against the fake SearXNG,
the fixture web on 127.0.0.3 and the fake Ollama; core-api's internal history API is a
recording stub here (the real one is exercised end to end)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from fastapi.testclient import TestClient

from harvis_common.internal_auth import HEADER
from harvis_testkit import InternalAuthKit, parse_sse, serve_app
from research_service.app import create_app
from research_service.settings import Settings

from .conftest import Background

SERVICE = "research-service"


class HistoryStub:
    def __init__(self) -> None:
        self.exchanges: list[dict[str, Any]] = []
        self.tokens: list[str] = []

    async def exchange(self, request: web.Request) -> web.Response:
        self.tokens.append(request.headers.get(HEADER, ""))
        body = await request.json()
        self.exchanges.append(body)
        sid = body.get("session_id") or str(uuid.uuid4())
        return web.json_response({"session_id": sid, "session": {"id": sid}, "user_message_id": 1, "message_id": 2,
                                  "messages": []})  # fmt: skip


@pytest.fixture(scope="module")
def history(background: Background) -> Iterator[tuple[HistoryStub, str]]:
    stub = HistoryStub()

    app = web.Application()
    app.router.add_post("/internal/history/exchange", stub.exchange)
    runner, url = background.run(serve_app(app))
    yield stub, url
    background.run(runner.cleanup())


@pytest.fixture(scope="module")
def kit() -> InternalAuthKit:
    return InternalAuthKit()


def make_client(kit: InternalAuthKit, **overrides: Any) -> TestClient:
    settings = Settings(internal_auth_public_key=kit.public_key, research_cache_ttl_s=600, redis_url="", **overrides)
    return TestClient(create_app(settings))


@pytest.fixture(scope="module")
def client(kit, searxng, ollama, history, site) -> Iterator[TestClient]:
    with make_client(
        kit,
        research_providers="searxng",
        searxng_url=searxng[1],
        research_ssrf_allowlist="127.0.0.3/32",
        llm_provider="ollama",
        ollama_url=ollama,
        default_model="fake-llama:latest",
        core_api_url=history[1],
        research_fetch_budget_s=2.0,
    ) as c:
        yield c


def auth(kit: InternalAuthKit) -> dict[str, str]:
    return kit.headers(SERVICE)


def sse(raw: bytes) -> list[dict[str, Any]]:
    return parse_sse(raw)[0]


def test_requires_internal_auth(client: TestClient) -> None:
    assert client.post("/api/web-search", json={"query": "x"}).status_code == 401


def test_web_search_with_extraction(client: TestClient, kit: InternalAuthKit, searxng) -> None:
    r = client.post("/api/web-search", json={"query": "Python programming language Guido", "max_results": 3,
                                             "extract_content": True}, headers=auth(kit))  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"] == "Python programming language Guido"
    results = body["search_results"]
    assert 1 <= len(results) <= 3 and {"title", "url", "snippet", "source", "relevance_score"} <= set(results[0])
    urls = [r["url"] for r in results]
    assert len({u.split("?")[0] for u in urls}) == len(urls)  # the utm duplicate is gone
    content = {e["url"]: e for e in body["extracted_content"]}
    top = content[results[0]["url"]]
    assert "Guido van Rossum" in top["content"] and "Accept all cookies" not in top["content"]


def test_web_search_validation(client: TestClient, kit: InternalAuthKit) -> None:
    r = client.post("/api/web-search", json={"query": "  "}, headers=auth(kit))
    assert r.status_code == 422 and r.json()["message"]
    assert client.post("/api/web-search", json={"query": "x", "max_results": 500}, headers=auth(kit)).status_code == 422


def test_search_results_are_cached(client: TestClient, kit: InternalAuthKit, searxng) -> None:
    fake, _ = searxng
    q = "Wind turbines offshore capacity"
    for _ in range(2):
        assert client.post("/api/web-search", json={"query": q}, headers=auth(kit)).status_code == 200
    assert fake.searches[q] == 1


def test_research_sources_without_an_answer(client: TestClient, kit: InternalAuthKit, history, site) -> None:
    stub, _ = history
    saved_before = len(stub.exchanges)
    r = client.post("/api/research/sources", json={"query": "When did Apollo 11 land?", "max_sources": 3},
                    headers=auth(kit))  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"] == "When did Apollo 11 land?"
    sources = body["sources"]
    assert 1 <= len(sources) <= 3 and [s["index"] for s in sources] == list(range(1, len(sources) + 1))
    assert "apollo-11" in sources[0]["url"] and sources[0]["fetched"] is True
    # The excerpts sit under their source numbers, without the pages' boilerplate.
    assert body["context"].startswith(f"[1] {sources[0]['title']} ({sources[0]['url']})")
    assert "20 July 1969" in body["context"] and "Accept all cookies" not in body["context"]
    assert len(stub.exchanges) == saved_before  # no answer, nothing written to the history

    hostile = client.post("/api/research/sources", json={"query": "hostile apollo"}, headers=auth(kit)).json()
    assert len(hostile["sources"]) == 1 and "apollo-11" in hostile["sources"][0]["url"]  # loopback/metadata refused
    assert "SECRET" not in hostile["context"] and hostile["errors"]

    assert client.post("/api/research/sources", json={"query": " "}, headers=auth(kit)).status_code == 422
    assert client.post("/api/research/sources", json={"query": "x", "max_sources": 0},
                       headers=auth(kit)).status_code == 422  # fmt: skip
    assert client.post("/api/research/sources", json={"query": "x"}).status_code == 401


def test_research_chat_stream(client: TestClient, kit: InternalAuthKit, history) -> None:
    stub, _ = history
    body = {"message": "When did Apollo 11 land on the Moon?", "history": [], "model": "mistral"}
    with client.stream("POST", "/api/research-chat", json=body, headers=auth(kit)) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-accel-buffering"] == "no"
        events = sse(r.read())
    statuses = [e["status"] for e in events]
    assert statuses[0] == "starting" and statuses[1] == "searching"
    kinds = [e.get("type") for e in events if e["status"] == "researching"]
    assert kinds[0] == "search_query" and "search_result" in kinds and "reading" in kinds
    assert kinds.index("search_result") < kinds.index("reading")
    first_streaming = statuses.index("streaming")
    assert all(s != "researching" for s in statuses[first_streaming:])
    done = events[-1]
    assert done["status"] == "complete"
    answer = "".join(e["content"] for e in events if e["status"] == "streaming")
    assert done["final_answer"] == done["response"] == answer.strip()
    assert done["sources_found"] == len(done["sources"]) >= 1
    assert "apollo-11" in done["sources"][0]["url"] and done["sources"][0]["index"] == 1
    assert "[1]" in answer  # the fake model echoes the prompt: the excerpts carry their numbers
    assert "20 July 1969" in answer and "Accept all cookies" not in answer
    assert len(done["session_id"]) >= 32
    assert done["history"][-1] == {"role": "assistant", "content": answer.strip()}
    saved = stub.exchanges[-1]
    assert saved["user_message"]["content"] == body["message"]
    assert saved["assistant_message"]["metadata"]["sources"][0]["url"] == done["sources"][0]["url"]
    assert stub.tokens[-1]  # the token the gateway gave this request, sent back


def test_research_chat_no_results_is_honest(client: TestClient, kit: InternalAuthKit) -> None:
    body = {"message": "zzznothing at all", "history": []}
    with client.stream("POST", "/api/research-chat", json=body, headers=auth(kit)) as r:
        events = sse(r.read())
    done = events[-1]
    assert done["status"] == "complete" and done["sources"] == [] and done["sources_found"] == 0
    assert "found no sources" in done["final_answer"]


def test_research_chat_hostile_results_are_not_fetched(client: TestClient, kit: InternalAuthKit, site) -> None:
    body = {"message": "hostile apollo", "history": []}
    with client.stream("POST", "/api/research-chat", json=body, headers=auth(kit)) as r:
        events = sse(r.read())
    done = events[-1]
    urls = [s["url"] for s in done["sources"]]
    assert len(urls) == 1 and "apollo-11" in urls[0]  # loopback/metadata results are not sources at all
    assert "SECRET" not in done["final_answer"]


def test_research_chat_llm_down_is_an_error_event(kit: InternalAuthKit, searxng, history) -> None:
    with make_client(kit, searxng_url=searxng[1], research_providers="searxng", llm_provider="ollama",
                     ollama_url="http://127.0.0.1:9", core_api_url=history[1]) as c:  # fmt: skip
        with c.stream("POST", "/api/research-chat", json={"message": "apollo"}, headers=auth(kit)) as r:
            assert r.status_code == 200
            events = sse(r.read())
        assert [e["status"] for e in events] == ["starting", "error"] and events[-1]["error"]
        r = c.post("/api/fact-check", json={"claim": "x"}, headers=auth(kit))
        assert r.status_code == 503 and r.json()["message"]


def test_fact_check(client: TestClient, kit: InternalAuthKit) -> None:
    r = client.post("/api/fact-check", json={"claim": "The Great Wall of China is visible from the Moon"},
                    headers=auth(kit))  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["verdict"] in ("supported", "refuted", "mixed", "unverifiable")
    assert 0 <= body["confidence"] <= 1 and body["analysis"] and body["model_used"] == "fake-llama:latest"
    assert any("great-wall" in s["url"] for s in body["sources"]) and body["timestamp"]
    r = client.post("/api/fact-check", json={"claim": "zzznothing claim"}, headers=auth(kit))
    assert r.json()["verdict"] == "unverifiable" and r.json()["confidence"] == 0.0 and r.json()["sources"] == []


def test_parse_verdict() -> None:
    from research_service.analysis import parse_verdict

    assert parse_verdict("VERDICT: Refuted\nCONFIDENCE: 0.9\nANALYSIS: Not visible [1].", True) == (
        "refuted", 0.9, "Not visible [1].")  # fmt: skip
    assert parse_verdict("VERDICT: <supported | refuted>", True)[0] == "unverifiable"
    assert parse_verdict("VERDICT: supported\nCONFIDENCE: 0.8", False)[:2] == ("unverifiable", 0.0)


def test_comparative_research(client: TestClient, kit: InternalAuthKit) -> None:
    r = client.post("/api/comparative-research", json={"topics": ["solar power electricity", "wind power turbines"]},
                    headers=auth(kit))  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["topics"] == ["solar power electricity", "wind power turbines"]
    assert set(body["individual_research"]) == set(body["topics"])
    indexes = [s["index"] for s in body["sources"]]
    assert indexes == list(range(1, len(indexes) + 1))
    assert "[1]" in body["comparative_analysis"]
    for topic in body["topics"]:
        assert body["individual_research"][topic]["sources_found"] >= 1
    assert client.post("/api/comparative-research", json={"topics": ["one"]}, headers=auth(kit)).status_code == 422
    assert client.post("/api/comparative-research", json={"topics": ["a", "A"]}, headers=auth(kit)).status_code == 422
