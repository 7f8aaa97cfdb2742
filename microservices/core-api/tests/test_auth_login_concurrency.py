"""Login limits under concurrency: a burst of parallel guesses gets no more password checks
than the limit allows (issue 14: 30 parallel wrong passwords were all evaluated, 30 × 401)."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest
from conftest import ClientFactory, ServiceFactory, signup

from core_api.auth.service import AuthService

pytestmark = pytest.mark.asyncio

BURST = 30


async def burst(client: httpx.AsyncClient, emails: list[str], ip: str) -> list[httpx.Response]:
    """Every login at once: all are in flight before any has been answered."""
    return await asyncio.gather(
        *(
            client.post(
                "/api/auth/login",
                json={"email": email, "password": f"Wrong-guess-{i}"},
                headers={"X-Real-IP": ip},
            )
            for i, email in enumerate(emails)
        )
    )


def assert_refused_properly(responses: list[httpx.Response], window_s: int) -> None:
    for r in responses:
        if r.status_code == 429:
            assert 1 <= int(r.headers["retry-after"]) <= window_s
            assert r.json()["message"] and r.json()["detail"]


async def check_account_burst(service: AuthService, client: httpx.AsyncClient) -> None:
    user, _ = await signup(client)
    checks_before = service.passwords.verifications
    responses = await burst(client, [user["email"]] * BURST, ip="198.51.100.30")
    statuses = Counter(r.status_code for r in responses)
    evaluated = service.passwords.verifications - checks_before
    # At most LOGIN_RATE_PER_ACCOUNT guesses reached bcrypt; every other one was refused before it.
    assert evaluated <= service.settings.login_rate_per_account, (evaluated, statuses)
    assert statuses[401] == evaluated and statuses[429] == BURST - evaluated, statuses
    assert_refused_properly(responses, service.settings.login_rate_window_s)
    # The limit still holds afterwards, for the right password too.
    late = await client.post("/api/auth/login", json={"email": user["email"], "password": user["password"]})
    assert late.status_code == 429


async def test_parallel_guesses_in_process(make_service: ServiceFactory, make_client: ClientFactory) -> None:
    service = await make_service(login_rate_per_account=5, login_rate_per_ip=1000)
    assert service.limiter.backend == "memory"
    await check_account_burst(service, await make_client(service))


async def test_parallel_guesses_in_redis(
    make_service: ServiceFactory, make_client: ClientFactory, redis_prefix: str
) -> None:
    service = await make_service(redis_prefix, login_rate_per_account=5, login_rate_per_ip=1000)
    assert service.limiter.backend == "redis"
    await check_account_burst(service, await make_client(service))


async def test_parallel_guesses_across_replicas_in_redis(
    make_service: ServiceFactory, make_client: ClientFactory, redis_prefix: str
) -> None:
    """Two replicas sharing Redis: the limit is one budget, not one per replica."""
    one = await make_service(redis_prefix, login_rate_per_account=5, login_rate_per_ip=1000)
    two = await make_service(redis_prefix, login_rate_per_account=5, login_rate_per_ip=1000)
    c1, c2 = await make_client(one), await make_client(two)
    user, _ = await signup(c1)
    before = one.passwords.verifications + two.passwords.verifications
    half = [user["email"]] * (BURST // 2)
    responses = [*(await asyncio.gather(burst(c1, half, "198.51.100.31"), burst(c2, half, "198.51.100.32")))]
    flat = [r for group in responses for r in group]
    evaluated = one.passwords.verifications + two.passwords.verifications - before
    assert evaluated <= 5, evaluated
    assert sum(r.status_code == 429 for r in flat) == BURST - evaluated


@pytest.mark.parametrize("use_redis", [False, True], ids=["memory", "redis"])
async def test_parallel_spraying_from_one_address(
    make_service: ServiceFactory, make_client: ClientFactory, redis_prefix: str, use_redis: bool
) -> None:
    """One client guessing a different account each time: the per-address limit holds in a burst."""
    service = await make_service(redis_prefix if use_redis else None, login_rate_per_ip=7, login_rate_per_account=100)
    client = await make_client(service)
    before = service.passwords.verifications
    responses = await burst(client, [f"sprayed{i}@example.com" for i in range(BURST)], ip="203.0.113.77")
    evaluated = service.passwords.verifications - before
    assert evaluated <= 7, evaluated
    assert sum(r.status_code == 429 for r in responses) == BURST - evaluated
    assert_refused_properly(responses, service.settings.login_rate_window_s)


async def test_successful_logins_do_not_use_up_the_address_budget(
    make_service: ServiceFactory, make_client: ClientFactory
) -> None:
    """Attempts are counted before the check, but a good password gives its attempt back:
    many people behind one address (an office, a school) can all log in."""
    service = await make_service(login_rate_per_ip=3, login_rate_per_account=100)
    client = await make_client(service)
    user, _ = await signup(client)
    for _ in range(10):
        ok = await client.post(
            "/api/auth/login",
            json={"email": user["email"], "password": user["password"]},
            headers={"X-Real-IP": "203.0.113.90"},
        )
        assert ok.status_code == 200, ok.text
