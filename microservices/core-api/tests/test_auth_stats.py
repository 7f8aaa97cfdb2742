"""/api/auth/stats: real counters that move with activity, behind a token."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from conftest import ClientFactory, ServiceFactory, bearer, new_user, signup

pytestmark = pytest.mark.asyncio


async def get_stats(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    response = await client.get("/api/auth/stats", headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.json()


async def test_stats_need_a_valid_token(client: httpx.AsyncClient) -> None:
    for headers in ({}, bearer("nope")):
        response = await client.get("/api/auth/stats", headers=headers)
        assert response.status_code == 401
        assert response.json()["detail"] == "Could not validate credentials"
        assert response.headers["www-authenticate"] == "Bearer"


async def test_stats_follow_activity(make_service: ServiceFactory, make_client: ClientFactory) -> None:
    user = new_user()  # fleet-wide counters are for administrators: this one is made by ADMIN_EMAILS
    service = await make_service(login_rate_per_account=2, admin_emails=user["email"])
    client = await make_client(service)
    user, token = await signup(client, user)
    before = await get_stats(client, token)
    assert before["signups"]["ok"] == 1
    assert before["users"]["total"] >= 1 and before["users"]["active_24h"] >= 1
    assert before["tokens"]["validations"] >= 1  # the stats call itself was validated
    assert before["rate_limit"]["backend"] == "memory"
    assert before["passwords"]["bcrypt_rounds"] == 4

    # A new user, a good login, two failures, a rate-limited attempt, a duplicate, a logout.
    _, other_token = await signup(client)
    ok = await client.post("/api/auth/login", json={"email": user["email"], "password": user["password"]})
    assert ok.status_code == 200
    client.cookies.clear()
    for _ in range(2):
        await client.post("/api/auth/login", json={"email": user["email"], "password": "wrong-password"})
    assert (
        await client.post("/api/auth/login", json={"email": user["email"], "password": user["password"]})
    ).status_code == 429
    assert (await client.post("/api/auth/signup", json={**new_user(), "email": user["email"]})).status_code == 409
    await client.get("/api/auth/me", headers=bearer(token))
    await client.get("/api/auth/me", headers=bearer("garbage"))
    await client.post("/api/auth/logout", headers=bearer(other_token))
    await client.get("/api/auth/me", headers=bearer(other_token))

    after = await get_stats(client, token)
    assert after["signups"]["ok"] == before["signups"]["ok"] + 1
    assert after["signups"]["conflicts"] == before["signups"]["conflicts"] + 1
    assert after["logins"]["ok"] == before["logins"]["ok"] + 1
    assert after["logins"]["failed"] == before["logins"]["failed"] + 2
    assert after["logins"]["rate_limited"] == before["logins"]["rate_limited"] + 1
    assert after["users"]["total"] == before["users"]["total"] + 1
    assert after["tokens"]["validations"] > before["tokens"]["validations"] + 3
    assert after["tokens"]["cache_hits"] > before["tokens"]["cache_hits"]
    assert after["tokens"]["cache_misses"] > before["tokens"]["cache_misses"]
    assert after["tokens"]["invalid"] == before["tokens"]["invalid"] + 1
    assert after["tokens"]["revoked_rejected"] >= before["tokens"]["revoked_rejected"] + 1
    assert after["tokens"]["issued"] == before["tokens"]["issued"] + 2
    assert after["revocations"]["logouts"] == before["revocations"]["logouts"] + 1
    assert after["revocations"]["revoked_here"] == before["revocations"]["revoked_here"] + 1
    assert after["passwords"]["verifications"] == before["passwords"]["verifications"] + 3
    assert after["uptime_s"] >= before["uptime_s"]
