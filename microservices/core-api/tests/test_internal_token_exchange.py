"""Token exchange (`POST /internal/token`): a service gets a token for another service, for
the same user, only where the delegation policy allows it; forged, stale or foreign
tokens get nothing."""

from __future__ import annotations

import httpx
import pytest
from chat_support import PRIVATE_KEY, PUBLIC_KEY, ChatServer, bad_internal_tokens, bearer, internal_token

from core_api.internal.token_exchange import DELEGATIONS
from harvis_common.internal_auth import HEADER, InternalAuthError, InternalSigner, InternalVerifier


async def _me(c: httpx.AsyncClient, token: str) -> int:
    return (await c.get("/api/auth/me", headers=bearer(token))).json()["id"]


async def _exchange(c: httpx.AsyncClient, token: str | None, audience: object) -> httpx.Response:
    headers = {HEADER: token} if token else {}
    return await c.post("/internal/token", json={"audience": audience}, headers=headers)


async def test_voice_gets_a_research_token_for_the_same_user(chat_server: ChatServer) -> None:
    fields, alice = await chat_server.user()
    async with chat_server.client() as c:
        alice_id = await _me(c, alice)
        voice = InternalSigner(PRIVATE_KEY).sign(
            "voice-service", user_id=alice_id, email=fields["email"], username=fields["username"], request_id="rid-1"
        )
        r = await _exchange(c, voice, "research-service")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["audience"] == "research-service" and body["expires_in"] == 60
        who = InternalVerifier(PUBLIC_KEY, "research-service").verify(body["token"])
        assert (who.user_id, who.email, who.username, who.is_admin, who.request_id) == (
            alice_id, fields["email"], fields["username"], False, "rid-1"
        )  # fmt: skip
        # It is a token for research-service only: voice-service (or any other) would refuse it.
        with pytest.raises(InternalAuthError, match=r"(?i)audience"):
            InternalVerifier(PUBLIC_KEY, "voice-service").verify(body["token"])
        # research-service can use it for the user's history, like the gateway's own tokens.
        saved = {"user_message": {"content": "researched"}}
        r = await c.post("/internal/history/exchange", json=saved, headers={HEADER: body["token"]})
        assert r.status_code == 200 and r.json()["session"]["user_id"] == alice_id
        # A voice token that outlived its exp (mic-chat transcribing a long recording) still works.
        late = internal_token("voice-service", alice_id, iat_offset=-300)
        assert (await _exchange(c, late, "research-service")).status_code == 200


async def test_only_the_delegation_policy_is_granted(chat_server: ChatServer) -> None:
    _, alice = await chat_server.user()
    async with chat_server.client() as c:
        alice_id = await _me(c, alice)
        services = ("research-service", "voice-service", "browser-service", "mcp-service", "n8n-integration",
                    "vibe-coding")  # fmt: skip
        for caller in services:
            token = internal_token(caller, alice_id)
            for audience in services:
                r = await _exchange(c, token, audience)
                allowed = audience in DELEGATIONS.get(caller, frozenset())
                assert r.status_code == (200 if allowed else 403), (caller, audience, r.text)
                if not allowed:
                    assert caller in r.json()["message"] and audience in r.json()["message"]
        assert {"voice-service": frozenset({"research-service"})} == DELEGATIONS
        # A token got by exchange cannot be exchanged onwards (research may delegate to no one).
        research = (await _exchange(c, internal_token("voice-service", alice_id), "research-service")).json()["token"]
        assert (await _exchange(c, research, "vibe-coding")).status_code == 403


async def test_bad_requests_are_refused(chat_server: ChatServer) -> None:
    _, alice = await chat_server.user()
    async with chat_server.client() as c:
        alice_id = await _me(c, alice)
        for label, token in bad_internal_tokens(alice_id, alice).items():
            r = await _exchange(c, token, "research-service")
            assert r.status_code == 401 and r.json()["message"], label
            assert "token" not in r.json(), label
        voice = internal_token("voice-service", alice_id)
        for audience in ("core-api", "someone", "", "x" * 500, None, 7, ["research-service"]):
            r = await _exchange(c, voice, audience)
            assert r.status_code == 422 and r.json()["message"], audience
        r = await c.post("/internal/token", content=b"{not json", headers={HEADER: voice})
        assert r.status_code == 422 and r.json()["message"]
        # The user's own JWT is no way in either (it is not an internal token).
        r = await c.post("/internal/token", json={"audience": "research-service"}, headers=bearer(alice))
        assert r.status_code == 401
