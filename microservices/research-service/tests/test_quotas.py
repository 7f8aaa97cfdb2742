"""Issue 14: research turns per user per hour (`RESEARCH_TURNS_PER_HOUR`), one quota over
/api/web-search, /api/research/sources, /api/research-chat, /api/fact-check and
/api/comparative-research (one turn per topic). A burst of parallel turns for one user lets
exactly the quota through (the search engine is asked that many times), the rest get a JSON
429 + Retry-After — research chat too, before its stream starts — and another user is
unaffected. Both backends: in-process, and the real Redis (keys under a prefix of their own).
Against the fake SearXNG, the fixture web on 127.0.0.3 and the fake Ollama (conftest)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from harvis_testkit import InternalAuthKit, app_client, parse_sse, quota_backend
from research_service.app import create_app
from research_service.settings import Settings

from .test_api import HistoryStub, history  # noqa: F401 (a fixture)

SERVICE = "research-service"
REDIS_URL = "redis://127.0.0.1:6379/15"


class Harness:
    def __init__(self, client: httpx.AsyncClient, kit: InternalAuthKit) -> None:
        self.client, self.kit = client, kit

    async def post(self, path: str, body: dict[str, Any], user_id: int = 1) -> httpx.Response:
        r = await self.client.post(path, json=body, headers=self.kit.headers(SERVICE, user_id=user_id))
        if r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream"):
            events, _ = parse_sse(r.content)
            assert events[-1]["status"] == "complete", events[-1]
        return r


@pytest.fixture
def make_harness(searxng, ollama, history, site) -> Callable[..., Any]:  # noqa: F811
    @asynccontextmanager
    async def factory(**overrides: Any) -> AsyncIterator[Harness]:
        kit = InternalAuthKit()
        settings = Settings(
            internal_auth_public_key=kit.public_key,
            research_providers="searxng",
            searxng_url=searxng[1],
            research_ssrf_allowlist="127.0.0.3/32",
            llm_provider="ollama",
            ollama_url=ollama,
            default_model="fake-llama:latest",
            core_api_url=history[1],
            research_fetch_budget_s=2.0,
            research_cache_ttl_s=0,  # every turn reaches the engine: what is counted there
            **{"redis_url": "", **overrides},
        )
        app = create_app(settings)
        async with app_client(app, "http://127.0.0.1:8001", timeout=60) as c:
            yield Harness(c, kit)

    return factory


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, str]]:
    async for settings in quota_backend(request.param, REDIS_URL, "research_redis_prefix", "research"):
        yield settings


def assert_quota_refusal(r: httpx.Response, limit: int) -> None:
    assert r.status_code == 429, r.text
    assert r.headers["content-type"] == "application/json"  # not an SSE error
    body = r.json()
    assert set(body) == {"detail", "message"} and body["message"] == body["detail"]
    assert f"{limit} research turns per hour" in body["message"] and "resets in" in body["message"], body
    assert 3500 < int(r.headers["Retry-After"]) <= 3600


async def test_parallel_research_holds_the_quota_per_user(make_harness: Any, backend: dict[str, str], searxng) -> None:
    fake, _ = searxng
    tag = uuid.uuid4().hex[:8]
    async with make_harness(research_turns_per_hour=3, **backend) as h:
        burst = await asyncio.gather(
            *(h.post("/api/web-search", {"query": f"wind turbines {tag} {i}"}) for i in range(10))
        )
        assert sorted(r.status_code for r in burst) == [200] * 3 + [429] * 7
        for r in burst:
            if r.status_code == 429:
                assert_quota_refusal(r, 3)
        assert sum(n for q, n in fake.searches.items() if tag in q) == 3  # the engine was asked 3 times

        # Another user has a quota of their own.
        theirs = await asyncio.gather(
            *(h.post("/api/web-search", {"query": f"solar {tag} {i}"}, user_id=2) for i in range(5))
        )
        assert sorted(r.status_code for r in theirs) == [200, 200, 200, 429, 429]


async def test_parallel_research_chats_are_refused_before_the_stream(
    make_harness: Any, backend: dict[str, str]
) -> None:
    async with make_harness(research_turns_per_hour=2, **backend) as h:
        body = {"message": "When did Apollo 11 land on the Moon?", "history": []}
        burst = await asyncio.gather(*(h.post("/api/research-chat", body) for _ in range(6)))
        assert sorted(r.status_code for r in burst) == [200] * 2 + [429] * 4
        for r in burst:
            if r.status_code == 429:
                assert_quota_refusal(r, 2)


async def test_every_research_route_takes_from_the_one_quota(make_harness: Any) -> None:
    async with make_harness(research_turns_per_hour=6) as h:
        calls = [
            ("/api/web-search", {"query": "Python programming language"}),
            ("/api/research/sources", {"query": "When did Apollo 11 land?", "max_sources": 2}),
            ("/api/research-chat", {"message": "Apollo 11 landing", "history": []}),
            ("/api/fact-check", {"claim": "The Great Wall of China is visible from the Moon"}),
            ("/api/comparative-research", {"topics": ["solar power electricity", "wind power turbines"]}),  # two
        ]
        for path, body in calls:
            r = await h.post(path, body)
            assert r.status_code == 200, (path, r.text)
        for path, body in calls:
            assert_quota_refusal(await h.post(path, body), 6)
        # A comparison needs one turn per topic: five topics never fit in a quota of 4.
    async with make_harness(research_turns_per_hour=4) as h:
        topics = {"topics": ["solar", "wind", "coal", "hydro", "nuclear"]}
        r = await h.post("/api/comparative-research", topics)
        assert r.status_code == 429 and "needs 5 research turns" in r.json()["message"], r.text


async def test_bad_input_costs_no_turn(make_harness: Any) -> None:
    async with make_harness(research_turns_per_hour=1) as h:
        bad = [
            ("/api/web-search", {"query": "  "}),
            ("/api/web-search", {"query": "x", "max_results": 500}),
            ("/api/research/sources", {"query": "x", "max_sources": 0}),
            ("/api/research-chat", {"message": ""}),
            ("/api/fact-check", {"claim": " "}),
            ("/api/comparative-research", {"topics": ["a", "A"]}),
        ]
        for path, body in bad:
            assert (await h.post(path, body)).status_code == 422, path
        assert (await h.post("/api/web-search", {"query": "Python programming language"})).status_code == 200
        assert_quota_refusal(await h.post("/api/web-search", {"query": "Python"}), 1)
