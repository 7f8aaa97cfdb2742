"""Grounded chat (chat/knowledge.py): /api/chat against the fake Ollama with research-service's
`/api/rag/search` served by a small stub that checks the signed X-Internal-Auth as
research-service does (audience, signature) and answers what each test asks for.

The excerpts reach the model in the system prompt, numbered; `complete` and the saved assistant
message list the sources; the request's flag wins over the user's preference (default off); a
knowledge base that is down, slow or without its database never fails a turn; the search is
made as the turn's own user."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from chat_support import PRIVATE_KEY, PUBLIC_KEY, ChatServer, ChatServerFactory, bearer, chat_events, free_port

from core_api.auth.context import AuthUser
from core_api.chat.knowledge import KnowledgeClient, ground
from harvis_common.internal_auth import HEADER, InternalAuthError, InternalSigner, InternalVerifier

FACT = "The archive's vault door code is KB-7731 and it is rotated every Monday."


def hit(text: str, document: str = "vault.md", location: str = "Vault", similarity: float = 0.62, **extra: Any):
    return {"text": text, "source": "uploads", "document": document, "document_id": f"id-{document}",
            "location": location, "score": 0.03, "similarity": similarity, "terms_matched": 0.0, **extra}  # fmt: skip


class FakeResearchService:
    """research-service's `POST /api/rag/search` as chat uses it: verifies the token like the
    real service (`InternalVerifier`, audience research-service), records who asked what."""

    def __init__(self) -> None:
        self.verifier = InternalVerifier(PUBLIC_KEY, "research-service")
        self.results: list[dict[str, Any]] = []
        self.status = 200
        self.delay_s = 0.0
        self.calls: list[dict[str, Any]] = []  # {identity, body}
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def search(self, request: web.Request) -> web.Response:
        try:
            identity = self.verifier.verify(request.headers.get(HEADER))
        except InternalAuthError as exc:
            return web.json_response({"detail": str(exc)}, status=401)
        body = await request.json()
        self.calls.append({"identity": identity, "body": body})
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.status != 200:
            return web.json_response({"detail": "The knowledge base is not available"}, status=self.status)
        return web.json_response({"query": body["query"], "results": self.results, "count": len(self.results)})

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/api/rag/search", self.search)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest_asyncio.fixture
async def research() -> Any:
    fake = FakeResearchService()
    await fake.start()
    yield fake
    await fake.stop()


@pytest_asyncio.fixture
async def server(make_chat_server: ChatServerFactory, research: FakeResearchService) -> ChatServer:
    # Artifacts off: the system prompt is then CHAT_SYSTEM_PROMPT and the excerpts alone.
    return await make_chat_server(research_service_url=research.url, chat_kb_timeout_s=1.0, chat_artifacts=False)


def system_prompt(server: ChatServer) -> str:
    messages = server.fake.stats["last_request"]["messages"]
    return "\n".join(m["content"] for m in messages if m["role"] == "system")


async def turn(server: ChatServer, token: str, **fields: Any) -> dict[str, Any]:
    async with server.client() as c:
        r, events, _ = await chat_events(c, token, {"message": "What is the vault door code?", **fields})
    assert r.status_code == 200, r.text
    done = events[-1]
    assert done["status"] == "complete", done
    assert [e["status"] for e in events].count("complete") == 1
    return done


async def test_flag_on_with_hits_grounds_the_answer(server: ChatServer, research: FakeResearchService) -> None:
    research.results = [
        hit(FACT),
        hit("Old codes are kept in the red binder.", location="Vault > History", similarity=0.41),
        hit("Parking is behind building C.", document="offices.md", location="Parking", similarity=0.52),
        hit("Unrelated printer notes.", document="printers.md", location="Printers", similarity=0.1),
    ]
    _, token = await server.user()
    done = await turn(server, token, use_knowledge_base=True)

    prompt = system_prompt(server)
    assert prompt.startswith("You are Harvis")  # the configured prompt stays first
    assert "[1] vault.md (Vault, Vault > History)" in prompt and FACT in prompt
    assert "(Vault > History) Old codes are kept in the red binder." in prompt
    assert "[2] offices.md (Parking)" in prompt
    assert "printer" not in prompt  # below CHAT_KB_MIN_SIMILARITY: not relevant
    assert "[1]" not in server.fake.stats["last_request"]["messages"][-1]["content"]  # the question as asked

    assert [(s["index"], s["document"], s["source"], s["location"]) for s in done["sources"]] == [
        (1, "vault.md", "uploads", "Vault"),
        (2, "offices.md", "uploads", "Parking"),
    ]
    assert done["sources"][0]["locations"] == ["Vault", "Vault > History"]
    assert done["knowledge_base"] == {"used": True, "hits": 3, "error": None}
    assert research.calls[-1]["body"] == {"query": "What is the vault door code?", "k": 5}

    # The reopened session shows them: the assistant message keeps the sources.
    async with server.client() as c:
        detail = (await c.get(f"/api/chat-history/sessions/{done['session_id']}", headers=bearer(token))).json()
    saved = detail["messages"][-1]
    assert saved["role"] == "assistant" and saved["id"] == done["message_id"]
    assert saved["metadata"]["sources"] == done["sources"]
    assert saved["metadata"]["knowledge_base"]["used"] is True


async def test_exact_terms_count_as_relevant(server: ChatServer, research: FakeResearchService) -> None:
    research.results = [hit(FACT, similarity=0.12, terms_matched=0.5), hit("noise", similarity=0.2)]
    _, token = await server.user()
    done = await turn(server, token, use_knowledge_base=True)
    assert [s["document"] for s in done["sources"]] == ["vault.md"] and done["knowledge_base"]["hits"] == 1
    assert FACT in system_prompt(server) and "noise" not in system_prompt(server)


async def test_no_relevant_hits_no_excerpts(server: ChatServer, research: FakeResearchService) -> None:
    research.results = [hit("Parking is behind building C.", similarity=0.2)]
    _, token = await server.user()
    done = await turn(server, token, use_knowledge_base=True)
    assert done["sources"] == [] and done["knowledge_base"] == {"used": False, "hits": 0, "error": None}
    assert system_prompt(server) == "You are Harvis, a helpful AI assistant."


async def test_flag_off_searches_nothing(server: ChatServer, research: FakeResearchService) -> None:
    research.results = [hit(FACT)]
    _, token = await server.user()
    for fields in ({}, {"use_knowledge_base": False}):
        done = await turn(server, token, **fields)
        assert "sources" not in done and "knowledge_base" not in done
        assert FACT not in system_prompt(server)
    assert research.calls == []


@pytest.mark.parametrize("failure", ["503", "timeout", "down", "garbage"])
async def test_knowledge_base_trouble_never_fails_the_chat(
    make_chat_server: ChatServerFactory, research: FakeResearchService, failure: str
) -> None:
    url = research.url
    if failure == "503":
        research.status = 503
    elif failure == "timeout":
        research.delay_s = 3.0
    elif failure == "down":
        url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    else:
        research.results = "not a list"  # type: ignore[assignment]
    server = await make_chat_server(research_service_url=url, chat_kb_timeout_s=0.5, chat_artifacts=False)
    _, token = await server.user()
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with server.client() as c:
        r, events, heartbeats = await chat_events(
            c, token, {"message": "What is the vault door code?", "use_knowledge_base": True}
        )
    assert r.status_code == 200 and [e["status"] for e in events].count("complete") == 1
    done = events[-1]
    assert loop.time() - started < 2.5  # CHAT_KB_TIMEOUT_S bounds the wait
    if failure == "timeout":
        assert heartbeats >= 1  # the line is kept alive while the search runs (SSE_HEARTBEAT_S 0.2)
    assert done["final_answer"] == "Echo: What is the vault door code?"
    assert done["sources"] == [] and done["knowledge_base"]["used"] is False
    assert done["knowledge_base"]["error"]
    assert "knowledge base" not in system_prompt(server)


async def test_the_preference_decides_when_the_request_does_not(
    server: ChatServer, research: FakeResearchService
) -> None:
    research.results = [hit(FACT)]
    _, token = await server.user()
    async with server.client() as c:
        r = await c.get("/api/user/preferences", headers=bearer(token))
        assert r.status_code == 200 and r.json() == {"use_knowledge_base": False}  # default off
        assert (await c.get("/api/user/preferences")).status_code == 401
        r = await c.put("/api/user/preferences", json={"use_knowledge_base": "sometimes"}, headers=bearer(token))
        assert r.status_code == 422
        r = await c.put("/api/user/preferences", json={"colour": "blue"}, headers=bearer(token))
        assert r.status_code == 422

    done = await turn(server, token)
    assert "sources" not in done and research.calls == []

    async with server.client() as c:
        r = await c.put("/api/user/preferences", json={"use_knowledge_base": True}, headers=bearer(token))
        assert r.status_code == 200 and r.json() == {"use_knowledge_base": True}
        assert (await c.get("/api/user/preferences", headers=bearer(token))).json() == {"use_knowledge_base": True}
        r = await c.put("/api/user/preferences", json={}, headers=bearer(token))  # nothing to change
        assert r.json() == {"use_knowledge_base": True}

    done = await turn(server, token)
    assert done["sources"][0]["document"] == "vault.md" and len(research.calls) == 1

    # The request's own flag wins over the preference.
    done = await turn(server, token, use_knowledge_base=False)
    assert "sources" not in done and len(research.calls) == 1

    # Another user's preference is their own (still the default).
    _, other = await server.user()
    async with server.client() as c:
        assert (await c.get("/api/user/preferences", headers=bearer(other))).json() == {"use_knowledge_base": False}
    done = await turn(server, other)
    assert "sources" not in done and len(research.calls) == 1

    # And the flag turns it on against a preference that is off.
    async with server.client() as c:
        r = await c.put("/api/user/preferences", json={"use_knowledge_base": False}, headers=bearer(token))
        assert r.json() == {"use_knowledge_base": False}
    done = await turn(server, token, use_knowledge_base=True)
    assert done["sources"] and len(research.calls) == 2


async def test_research_service_sees_the_turns_own_user(server: ChatServer, research: FakeResearchService) -> None:
    research.results = [hit(FACT)]
    alice, alice_token = await server.user()
    bob, bob_token = await server.user()
    async with server.client() as c:
        alice_id = (await c.get("/api/auth/me", headers=bearer(alice_token))).json()["id"]
        bob_id = (await c.get("/api/auth/me", headers=bearer(bob_token))).json()["id"]
    await turn(server, alice_token, use_knowledge_base=True)
    await turn(server, bob_token, use_knowledge_base=True)
    first, second = (call["identity"] for call in research.calls)
    assert (first.user_id, first.username, first.email) == (alice_id, alice["username"], alice["email"].lower())
    assert (second.user_id, second.username) == (bob_id, bob["username"])
    assert first.is_admin is False


def test_ground_numbers_documents_and_skips_malformed_hits() -> None:
    grounding = ground(
        [hit("a"), {"text": 3}, "nope", hit("b", document="b.md", location=""), hit("c", location="Vault")], 0.35
    )
    assert [(s["index"], s["document"], s["locations"]) for s in grounding.sources] == [
        (1, "vault.md", ["Vault"]),
        (2, "b.md", []),
    ]
    assert grounding.hits == 3 and grounding.excerpts == {1: ["(Vault) a", "(Vault) c"], 2: ["b"]}
    assert "[2] b.md\nb" in grounding.context()


async def test_the_search_takes_turns_over_replicas_and_skips_one_that_refuses(research: FakeResearchService) -> None:
    """RESEARCH_SERVICE_URL may list research-service's replicas: searches take turns, and a
    replica that refuses the connection (nothing was sent) costs nothing but a try of the next."""
    second = FakeResearchService()
    await second.start()
    research.results = second.results = [hit(FACT)]
    dead = f"http://127.0.0.1:{free_port()}"
    signer, user = InternalSigner(PRIVATE_KEY), AuthUser(7, "a@example.com", "alice", False, "j", 2**31)
    client = KnowledgeClient([research.url, second.url, dead], timeout_s=2.0, k=3, min_similarity=0.3)
    try:
        for _ in range(6):
            grounding = await client.search(signer, user, "vault door code?")
            assert grounding.error is None and grounding.hits == 1
        assert (len(research.calls), len(second.calls)) == (4, 2)  # the dead one's turns went to the next
    finally:
        await client.close()
        await second.stop()
