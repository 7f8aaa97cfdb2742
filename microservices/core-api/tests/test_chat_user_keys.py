"""Users' own provider API keys are used for their chats (issue 14: "a stored secret that
does nothing is a trap"). With an OpenAI-compatible chat backend, a user's active `openai`
key goes with *their* requests only (chat, vision chat, their model list), to their own
`api_url` when they gave one — vetted by the SSRF policy when stored and again at use time.
Keys the server can't use are refused when stored; a key the provider rejects is an error
naming the stored key, never a silent fall-back to the server's key."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from chat_support import ChatServer, bearer, chat_events
from fake_openai import FakeOpenAI

from harvis_common.llm import LLMAuthError, OpenAIClient
from harvis_common.ssrf import SSRFPolicy

SERVER_KEY = "sk-server-" + "s" * 24
IMAGE = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


@pytest_asyncio.fixture
async def fakes() -> AsyncIterator[tuple[FakeOpenAI, FakeOpenAI]]:
    """The server's OpenAI-compatible backend, and another one a user runs for themselves."""
    server = FakeOpenAI({SERVER_KEY: ["server-model"]})
    own = FakeOpenAI({})
    await server.start()
    await own.start()
    yield server, own
    await server.stop()
    await own.stop()


@pytest_asyncio.fixture
async def openai_chat(make_chat_server, fakes: tuple[FakeOpenAI, FakeOpenAI]) -> ChatServer:
    server, _ = fakes
    return await make_chat_server(
        llm_provider="openai",
        openai_api_base=server.url,
        openai_api_key=SERVER_KEY,
        default_model="server-model",
        vision_model="server-model",
    )


def allow_loopback(chat: ChatServer) -> None:
    """The fakes listen on 127.0.0.1, which the policy refuses: tests that need a user's own
    server to be reachable open loopback, as an operator's allowlist would."""
    chat.app.state.provider_url_policy = SSRFPolicy.from_setting("127.0.0.0/8")


async def store(c: Any, token: str, **body: Any) -> Any:
    return await c.post("/api/user/api-keys", json={"provider_name": "openai", "is_active": True, **body},
                        headers=bearer(token))  # fmt: skip


def answer(events: list[dict[str, Any]]) -> str:
    assert events[-1]["status"] == "complete", events
    return events[-1]["final_answer"]


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Names under `.harvis-test` resolve to what the test says (others as usual)."""
    table: dict[str, str] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name.rstrip(".").endswith(".harvis-test"):
            if name.rstrip(".") not in table:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return real(table[name.rstrip(".")], port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table


# ---------------------------------------------------------------- each user's own key


async def test_each_user_chats_with_their_own_key(openai_chat: ChatServer, fakes, caplog) -> None:
    server, _ = fakes
    alice_key = "sk-alice-" + uuid.uuid4().hex
    server.keys[alice_key] = ["alice-model"]
    _, alice = await openai_chat.user()
    _, bob = await openai_chat.user()
    caplog.set_level(logging.DEBUG)
    async with openai_chat.client() as c:
        assert (await store(c, alice, api_key=alice_key)).status_code == 200

        server.seen.clear()
        (_, a_events, _), (_, b_events, _) = await asyncio.gather(
            chat_events(c, alice, {"message": "from alice", "model": "mistral"}),
            chat_events(c, bob, {"message": "from bob", "model": "mistral"}),
        )
        # Alice's key sees only her model, so hers answered; Bob got the server's backend.
        assert answer(a_events) == "Echo from alice-model: from alice"
        assert answer(b_events) == "Echo from server-model: from bob"
        assert sorted(set(server.auths())) == sorted({f"Bearer {alice_key}", f"Bearer {SERVER_KEY}"})
        completions = [b["messages"][-1]["content"] for b in server.bodies]
        by_auth = dict(zip(completions, server.auths("/v1/chat/completions"), strict=True))
        assert by_auth == {"from alice": f"Bearer {alice_key}", "from bob": f"Bearer {SERVER_KEY}"}

        server.seen.clear()
        _, events, _ = await chat_events(c, alice, {"message": "look", "images": [IMAGE]}, "/api/vision-chat")
        assert answer(events) == "Echo from alice-model: look"
        assert set(server.auths()) == {f"Bearer {alice_key}"}

        # The model list each one sees is their backend's.
        names = [m["name"] for m in (await c.get("/api/models", headers=bearer(alice))).json()["models"]]
        assert names == ["alice-model"]
        names = [m["name"] for m in (await c.get("/api/models", headers=bearer(bob))).json()["models"]]
        assert names == ["server-model"]

        # Deleting the key puts Alice back on the server's backend at once.
        assert (await c.delete("/api/user/api-keys/openai", headers=bearer(alice))).status_code == 200
        server.seen.clear()
        _, events, _ = await chat_events(c, alice, {"message": "again"})
        assert answer(events) == "Echo from server-model: again"
        assert set(server.auths()) == {f"Bearer {SERVER_KEY}"}

        # So does switching it off.
        await store(c, alice, api_key=alice_key, is_active=False)
        server.seen.clear()
        _, events, _ = await chat_events(c, alice, {"message": "off"})
        assert answer(events) == "Echo from server-model: off"
        assert set(server.auths()) == {f"Bearer {SERVER_KEY}"}
    assert not [r for r in caplog.records if alice_key in r.getMessage() or alice_key in str(r.__dict__)]


async def test_a_users_api_url_takes_their_chats_to_their_server(openai_chat: ChatServer, fakes) -> None:
    server, own = fakes
    key = "sk-own-" + uuid.uuid4().hex
    own.keys[key] = ["own-model"]
    allow_loopback(openai_chat)
    _, alice = await openai_chat.user()
    _, bob = await openai_chat.user()
    async with openai_chat.client() as c:
        r = await store(c, alice, api_key=key, api_url=own.url)
        assert r.status_code == 200, r.text
        assert r.json()["api_url"] == own.url and r.json()["in_use"] is True
        server.seen.clear()
        _, events, _ = await chat_events(c, alice, {"message": "to my server"})
        assert answer(events) == "Echo from own-model: to my server"
        assert set(own.auths()) == {f"Bearer {key}"} and server.seen == []
        _, events, _ = await chat_events(c, bob, {"message": "to the server's"})
        assert answer(events) == "Echo from server-model: to the server's"
        assert set(own.auths()) == {f"Bearer {key}"}  # nothing of Bob's went there
        models = (await c.get("/api/models", headers=bearer(alice))).json()["models"]
        assert [m["name"] for m in models] == ["own-model"]


async def test_a_key_the_provider_rejects_is_a_clear_error_not_the_servers_key(
    openai_chat: ChatServer, fakes, caplog
) -> None:
    server, _ = fakes
    revoked = "sk-revoked-" + uuid.uuid4().hex  # the fake doesn't know it: 401, echoing it
    _, alice = await openai_chat.user()
    caplog.set_level(logging.DEBUG)
    async with openai_chat.client() as c:
        assert (await store(c, alice, api_key=revoked)).status_code == 200
        server.seen.clear()
        r, events, _ = await chat_events(c, alice, {"message": "hello"})
        assert r.status_code == 200 and events[0]["status"] == "starting"
        assert events[-1]["status"] == "error" and "complete" not in [e["status"] for e in events]
        error = events[-1]["error"]
        assert "API key you stored for openai" in error and "401" in error, error
        assert revoked not in r.text  # the provider echoed it: it is not passed on
        assert set(server.auths()) == {f"Bearer {revoked}"}  # no silent fall-back to the server's key

        r = await c.get("/api/models", headers=bearer(alice))
        assert r.status_code == 502 and "API key you stored for openai" in r.json()["message"]
        assert revoked not in r.text
    assert not [r for r in caplog.records if revoked in r.getMessage() or revoked in str(r.__dict__)]


async def test_the_client_sends_its_own_key_on_a_session_it_is_given(fakes) -> None:
    """harvis_common.llm: a client handed a session (the vetting one) still authenticates as
    itself, and a refused key is LLMAuthError (core-api names the stored key for it)."""
    server, _ = fakes
    async with aiohttp.ClientSession() as session:
        client = OpenAIClient(server.url, api_key=SERVER_KEY, session=session)
        assert [m.name for m in await client.list_models()] == ["server-model"]
        assert server.auths() == [f"Bearer {SERVER_KEY}"]
        with pytest.raises(LLMAuthError):
            await OpenAIClient(server.url, api_key="sk-unknown", session=session).list_models()
        await client.close()
        assert not session.closed  # not the client's to close


# ---------------------------------------------------------------- keys the server can't use


async def test_keys_the_servers_chat_cannot_use_are_refused(openai_chat: ChatServer, make_chat_server) -> None:
    _, token = await openai_chat.user()
    async with openai_chat.client() as c:
        r = await c.post("/api/user/api-keys", json={"provider_name": "anthropic", "api_key": "sk-ant-x"},
                         headers=bearer(token))  # fmt: skip
        assert r.status_code == 422 and "doesn't use anthropic keys" in r.json()["message"]
        assert (await c.get("/api/user/api-keys", headers=bearer(token))).json() == []

        # A row stored before the operator changed the backend says it is not in use, and why.
        me = (await c.get("/api/auth/me", headers=bearer(token))).json()["id"]
        blob = openai_chat.app.state.key_cipher.encrypt(me, "anthropic", "sk-ant-old")
        async with openai_chat.app.state.pool.acquire() as conn:
            await conn.execute("INSERT INTO user_api_keys (user_id, provider_name, api_key_encrypted, is_active)"
                               " VALUES ($1, 'anthropic', $2, true)", me, blob)  # fmt: skip
        await store(c, token, api_key="sk-mine", is_active=False)
        listed = {k["provider_name"]: k for k in (await c.get("/api/user/api-keys", headers=bearer(token))).json()}
        assert listed["anthropic"]["in_use"] is False and "anthropic" in listed["anthropic"]["in_use_reason"]
        assert listed["openai"]["in_use"] is False and "inactive" in listed["openai"]["in_use_reason"]
        await store(c, token, api_key="sk-mine")
        listed = {k["provider_name"]: k for k in (await c.get("/api/user/api-keys", headers=bearer(token))).json()}
        assert listed["openai"]["in_use"] is True and listed["openai"]["in_use_reason"] is None

    ollama = await make_chat_server()  # Ollama has no API keys at all
    _, token = await ollama.user()
    async with ollama.client() as c:
        for provider in ("openai", "anthropic"):
            r = await c.post("/api/user/api-keys", json={"provider_name": provider, "api_key": "sk-x"},
                             headers=bearer(token))  # fmt: skip
            assert r.status_code == 422 and "Ollama" in r.json()["message"], r.text
        assert (await c.get("/api/user/api-keys", headers=bearer(token))).json() == []


# ---------------------------------------------------------------- the SSRF policy on api_url


HOSTILE_URLS = [
    "http://127.0.0.1:8000/v1",
    "http://localhost:11434/v1",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/v1",
    "http://2130706433/",  # 127.0.0.1 as one decimal number
    "http://[::1]:8000/v1",
    "http://[::ffff:127.0.0.1]/v1",
    "http://loopback.harvis-test/v1",  # a name that resolves to 127.0.0.1
    "http://nowhere.harvis-test/v1",  # a name that doesn't resolve: unusable
    "file:///etc/passwd",
]


@pytest.mark.parametrize("url", HOSTILE_URLS)
async def test_internal_api_urls_are_refused_when_stored(openai_chat: ChatServer, fake_dns, url: str) -> None:
    fake_dns["loopback.harvis-test"] = "127.0.0.1"
    _, token = await openai_chat.user()
    async with openai_chat.client() as c:
        r = await store(c, token, api_key="sk-x", api_url=url)
        assert r.status_code == 422, r.text
        assert "api_url" in r.json()["message"], r.json()
        assert (await c.get("/api/user/api-keys", headers=bearer(token))).json() == []


async def test_api_url_is_vetted_again_when_used(openai_chat: ChatServer, fakes, fake_dns) -> None:
    """DNS may change after the key was stored (rebinding): the name is resolved and vetted
    again for every use, and what is connected to is what was vetted."""
    server, own = fakes
    own.keys["sk-own"] = ["own-model"]
    fake_dns["llm.harvis-test"] = "93.184.215.14"  # public when stored
    _, alice = await openai_chat.user()
    async with openai_chat.client() as c:
        r = await store(c, alice, api_key="sk-own", api_url=f"http://llm.harvis-test:{own.port}/v1")
        assert r.status_code == 200, r.text
        fake_dns["llm.harvis-test"] = "127.0.0.1"  # now it points inside
        server.seen.clear()
        _, events, _ = await chat_events(c, alice, {"message": "hello"})
        assert events[-1]["status"] == "error", events
        assert "api_url" in events[-1]["error"] and "non-public" in events[-1]["error"]
        r = await c.get("/api/models", headers=bearer(alice))
        assert r.status_code == 502 and "non-public" in r.json()["message"]
        assert own.seen == [] and server.seen == []  # neither reached, no fall-back


async def test_redirects_to_internal_addresses_are_not_followed(openai_chat: ChatServer, fakes, fake_dns) -> None:
    server, own = fakes
    own.keys["sk-own"] = ["own-model"]
    fake_dns["llm.harvis-test"] = "127.0.0.1"
    # The operator allows this one name (as SSRF allowlists do); where it redirects is vetted anew.
    openai_chat.app.state.provider_url_policy = SSRFPolicy(allow_hosts=frozenset({"llm.harvis-test"}))
    _, alice = await openai_chat.user()
    async with openai_chat.client() as c:
        r = await store(c, alice, api_key="sk-own", api_url=f"http://llm.harvis-test:{own.port}/v1")
        assert r.status_code == 200, r.text
        own.redirect_to = server.url.removesuffix("/v1")  # an internal IP literal
        _, events, _ = await chat_events(c, alice, {"message": "hello"})
        assert events[-1]["status"] == "error" and "non-public" in events[-1]["error"], events
        assert [p for p, _ in own.seen] == ["/v1/models"] and server.seen == []
