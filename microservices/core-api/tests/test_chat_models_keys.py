"""Models (list, names, memory pressure, unload), API keys encrypted at rest, and the
internal history API's authentication."""

from __future__ import annotations

import uuid

import pytest
from chat_support import (
    PRIVATE_KEY,
    ChatServer,
    bad_internal_tokens,
    bearer,
    chat_events,
    free_port,
)
from chat_support import internal_token as _token
from conftest import new_user
from cryptography.exceptions import InvalidTag

from core_api.chat.key_cipher import KeyCipher, generate_key
from harvis_common.internal_auth import HEADER, InternalSigner

# ---------------------------------------------------------------- models


async def test_models_list_shape(chat_server: ChatServer) -> None:
    _, token = await chat_server.user()
    async with chat_server.client() as c:
        body = (await c.get("/api/models", headers=bearer(token))).json()
        first = body["models"][0]
        assert first["name"] == "fake-llama:latest" and first["displayName"] == "fake-llama"
        assert first["size"] == "4.1GB" and first["status"] == "available" and first["provider"] == "ollama"
        assert body["default_model"] == "fake-llama:latest"
        names = (await c.get("/api/ollama-models")).json()
        assert names == ["fake-llama:latest", "fake-vision:latest", "fake-think:latest"]
        assert (await c.get("/api/models")).status_code == 401


async def test_models_503_when_backend_down(make_chat_server) -> None:
    admin = new_user()
    server = await make_chat_server(ollama_url=f"http://127.0.0.1:{free_port()}", admin_emails=admin["email"])
    _, token = await server.user(admin)
    async with server.client() as c:
        for path, headers in (("/api/models", bearer(token)), ("/api/ollama-models", {})):
            r = await c.get(path, headers=headers, timeout=10)  # the front end gives up after 10 s
            assert r.status_code == 503 and "not reachable" in r.json()["message"]
        body = (await c.get("/api/models/memory-pressure", headers=bearer(token))).json()
        assert body["backend_reachable"] is False and body["allocated_gb"] == 0
        assert (
            await c.post("/api/models/unload", json={"model_type": "all"}, headers=bearer(token))
        ).status_code == 503


async def test_memory_pressure_and_unload(make_chat_server) -> None:
    admin = new_user()  # unloading is for administrators (tests/test_admin.py: others get 403)
    chat_server = await make_chat_server(admin_emails=admin["email"])
    _, token = await chat_server.user(admin)
    async with chat_server.client(cookies={"access_token": token}) as c:  # the front end sends the cookie only
        body = (await c.get("/api/models/memory-pressure")).json()
        assert body["allocated_gb"] == 0 and body["loaded_models"] == []
        await chat_events(c, None, {"message": "load it", "model": "fake-llama"})
        body = (await c.get("/api/models/memory-pressure")).json()
        assert set(body) >= {
            "pressure_level", "usage_percent", "free_gb", "allocated_gb", "total_gb",
            "recommendations", "auto_cleanup_suggested",
        }  # fmt: skip
        assert body["pressure_level"] in ("low", "moderate", "high", "critical")
        assert body["total_gb"] > body["free_gb"] > 0 and 0 < body["usage_percent"] < 100
        assert body["allocated_gb"] == pytest.approx(4.1e9 / 1024**3, abs=0.01)
        assert isinstance(body["recommendations"], list) and isinstance(body["auto_cleanup_suggested"], bool)
        r = await c.post("/api/models/unload", json={"model_type": "all"})
        assert r.status_code == 200 and r.json()["unloaded_models"] == ["fake-llama:latest"]
        assert chat_server.fake.loaded == {}
        assert (await c.post("/api/models/unload", json={"model_type": "all"})).json()["unloaded_models"] == []
    async with chat_server.client() as c:
        assert (await c.get("/api/models/memory-pressure")).status_code == 401
        assert (await c.post("/api/models/unload", json={"model_type": "all"})).status_code == 401


# ---------------------------------------------------------------- API keys


async def test_api_keys_are_encrypted_and_never_returned(make_chat_server) -> None:
    # Keys are for an OpenAI-compatible chat backend (test_chat_user_keys.py: how they are used,
    # and refused where the server's chat can't use them).
    chat_server = await make_chat_server(llm_provider="openai", openai_api_base=f"http://127.0.0.1:{free_port()}")
    _, token = await chat_server.user()
    _, other = await chat_server.user()
    secret = "sk-live-" + uuid.uuid4().hex
    async with chat_server.client() as c:
        h = bearer(token)
        r = await c.post(
            "/api/user/api-keys",
            json={
                "provider_name": "OpenAI",
                "api_key": secret,
                "api_url": "https://93.184.215.14/v1",  # public; no DNS needed
                "is_active": True,
            },
            headers=h,
        )
        assert r.status_code == 200, r.text
        assert secret not in r.text and "api_key" not in r.json()
        listed = await c.get("/api/user/api-keys", headers=h)
        assert secret not in listed.text
        keys = listed.json()
        assert isinstance(keys, list) and len(keys) == 1
        assert set(keys[0]) == {"id", "provider_name", "api_url", "is_active", "created_at", "updated_at",
                                "in_use", "in_use_reason"}  # fmt: skip
        assert keys[0]["provider_name"] == "openai"
        # upsert: one row per provider
        await c.post(
            "/api/user/api-keys", json={"provider_name": "openai", "api_key": "sk-2", "is_active": False}, headers=h
        )
        keys = (await c.get("/api/user/api-keys", headers=h)).json()
        assert len(keys) == 1 and keys[0]["is_active"] is False and keys[0]["api_url"] is None
        assert (await c.get("/api/user/api-keys", headers=bearer(other))).json() == []

        async with chat_server.app.state.pool.acquire() as conn:
            blob = await conn.fetchval("SELECT api_key_encrypted FROM user_api_keys WHERE provider_name = 'openai'"
                                       " AND api_key_encrypted IS NOT NULL ORDER BY id DESC LIMIT 1")  # fmt: skip
        assert b"sk-2" not in bytes(blob)
        owner = (await c.get("/api/auth/me", headers=h)).json()["id"]
        assert chat_server.app.state.key_cipher.decrypt(owner, "openai", bytes(blob)) == "sk-2"

        assert (await c.delete("/api/user/api-keys/openai", headers=bearer(other))).status_code == 404
        assert (await c.delete("/api/user/api-keys/openai", headers=h)).status_code == 200
        assert (await c.get("/api/user/api-keys", headers=h)).json() == []
        assert (await c.delete("/api/user/api-keys/openai", headers=h)).status_code == 404
        for bad in ({"provider_name": "a b", "api_key": "k"}, {"provider_name": "x", "api_key": ""},
                    {"provider_name": "x", "api_key": "k", "api_url": "ftp://x"}):  # fmt: skip
            r = await c.post("/api/user/api-keys", json=bad, headers=h)
            assert r.status_code == 422 and r.json()["message"]
        assert (await c.get("/api/user/api-keys")).status_code == 401


def test_key_cipher_binds_owner_and_provider() -> None:
    cipher = KeyCipher(generate_key())
    blob = cipher.encrypt(7, "openai", "sk-abc")
    assert b"sk-abc" not in blob and cipher.decrypt(7, "openai", blob) == "sk-abc"
    with pytest.raises(InvalidTag):
        cipher.decrypt(8, "openai", blob)  # copied to another user's row
    with pytest.raises(InvalidTag):
        KeyCipher(generate_key()).decrypt(7, "openai", blob)  # another key
    with pytest.raises(ValueError):
        KeyCipher("too-short")


async def test_api_keys_503_without_encryption_key(make_chat_server) -> None:
    server = await make_chat_server(api_key_encryption_key="")
    _, token = await server.user()
    async with server.client() as c:
        r = await c.post("/api/user/api-keys", json={"provider_name": "x", "api_key": "k"}, headers=bearer(token))
        assert r.status_code == 503 and "API_KEY_ENCRYPTION_KEY" in r.json()["message"]


# ---------------------------------------------------------------- internal history API


async def _me(c, token: str) -> int:
    return (await c.get("/api/auth/me", headers=bearer(token))).json()["id"]


async def test_internal_history_acts_as_the_tokens_user(chat_server: ChatServer) -> None:
    _, alice = await chat_server.user()
    _, bob = await chat_server.user()
    async with chat_server.client() as c:
        alice_id, bob_id = await _me(c, alice), await _me(c, bob)
        signed = InternalSigner(PRIVATE_KEY).sign("voice-service", user_id=alice_id, email="a@x", username="a")
        body = {
            "user_message": {"content": "spoken words", "input_type": "voice"},
            "assistant_message": {"content": "spoken answer", "model_used": "fake-llama", "metadata": {"audio": 1}},
        }
        r = await c.post("/internal/history/exchange", json=body, headers={HEADER: signed})
        assert r.status_code == 200, r.text
        saved = r.json()
        sid = saved["session_id"]
        listed = (await c.get("/api/chat-history/sessions", headers=bearer(alice))).json()
        assert listed[0]["id"] == sid and listed[0]["message_count"] == 2 and listed[0]["title"] == "spoken words"
        detail = (await c.get(f"/api/chat-history/sessions/{sid}", headers=bearer(alice))).json()
        assert [m["input_type"] for m in detail["messages"]] == ["voice", "text"]
        assert detail["messages"][1]["id"] == saved["message_id"]

        # continuing the same session, reading it back
        r = await c.post("/internal/history/exchange", json={**body, "session_id": sid}, headers={HEADER: signed})
        assert r.json()["session_id"] == sid
        r = await c.get(f"/internal/history/sessions/{sid}/messages?limit=3", headers={HEADER: signed})
        assert [m["content"] for m in r.json()["messages"]] == ["spoken answer", "spoken words", "spoken answer"]

        # Bob's token cannot touch Alice's session
        bobs = _token("research-service", bob_id)
        assert (await c.get(f"/internal/history/sessions/{sid}/messages", headers={HEADER: bobs})).status_code == 404
        r = await c.post("/internal/history/exchange", json={**body, "session_id": sid}, headers={HEADER: bobs})
        assert r.json()["session_id"] != sid  # a new session of Bob's
        assert (await c.get(f"/api/chat-history/sessions/{sid}", headers=bearer(alice))).json()["total_count"] == 4

        # a token past its 60 s exp but issued within the window is still accepted
        late = _token("voice-service", alice_id, iat_offset=-120, ttl=60)
        r = await c.post(
            "/internal/history/exchange", json={"user_message": {"content": "late"}}, headers={HEADER: late}
        )
        assert r.status_code == 200 and r.json()["session"]["user_id"] == alice_id


async def test_internal_history_rejects_bad_tokens(chat_server: ChatServer) -> None:
    _, alice = await chat_server.user()
    async with chat_server.client() as c:
        alice_id = await _me(c, alice)
        bad = bad_internal_tokens(alice_id, alice)
        for label, token in bad.items():
            headers = {HEADER: token} if token else {}
            r = await c.post("/internal/history/exchange", json={"user_message": {"content": "x"}}, headers=headers)
            assert r.status_code == 401, label
            assert r.json()["message"]
        assert (await c.get("/api/chat-history/sessions", headers=bearer(alice))).json() == []
