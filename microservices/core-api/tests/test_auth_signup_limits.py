"""Signup limited per client address, and the password-hashing pool's bounded queue
(issue 14: 40 signups in a row from one client were all 200, and every one queued
bcrypt work without end, cheap to stall every login)."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
from conftest import ClientFactory, ServiceFactory, new_user, signup

from core_api.auth.passwords import HasherOverloaded, PasswordHasher
from core_api.auth.service import AuthService

pytestmark = pytest.mark.asyncio


async def post_signup(client: httpx.AsyncClient, ip: str, user: dict[str, str] | None = None) -> httpx.Response:
    return await client.post("/api/auth/signup", json=user or new_user(), headers={"X-Real-IP": ip})


def assert_too_many_signups(r: httpx.Response, window_s: int) -> None:
    assert r.status_code == 429, r.text
    assert 1 <= int(r.headers["retry-after"]) <= window_s
    body = r.json()
    assert "signup" in body["detail"].lower() and body["message"]
    assert "set-cookie" not in r.headers


@pytest.mark.parametrize("use_redis", [False, True], ids=["memory", "redis"])
async def test_signup_is_limited_per_address(
    make_service: ServiceFactory, make_client: ClientFactory, redis_prefix: str, use_redis: bool
) -> None:
    service = await make_service(redis_prefix if use_redis else None, signup_rate_per_ip=3, signup_rate_window_s=120)
    client = await make_client(service)
    for _ in range(3):
        assert (await post_signup(client, "203.0.113.50")).status_code == 200
    hashes = service.passwords.hashes
    assert_too_many_signups(await post_signup(client, "203.0.113.50"), 120)
    assert service.passwords.hashes == hashes  # refused before any bcrypt work
    # Another address is unaffected.
    assert (await post_signup(client, "203.0.113.51")).status_code == 200


@pytest.mark.parametrize("use_redis", [False, True], ids=["memory", "redis"])
async def test_parallel_signups_from_one_address(
    make_service: ServiceFactory, make_client: ClientFactory, redis_prefix: str, use_redis: bool
) -> None:
    service = await make_service(redis_prefix if use_redis else None, signup_rate_per_ip=4, signup_rate_window_s=60)
    client = await make_client(service)
    responses = await asyncio.gather(*(post_signup(client, "203.0.113.60") for _ in range(20)))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 4, 429: 16}, statuses
    for r in responses:
        if r.status_code == 429:
            assert_too_many_signups(r, 60)


async def test_login_is_not_limited_by_signups(make_service: ServiceFactory, make_client: ClientFactory) -> None:
    service = await make_service(signup_rate_per_ip=1)
    client = await make_client(service)
    first = new_user()
    assert (await post_signup(client, "203.0.113.70", first)).status_code == 200
    assert (await post_signup(client, "203.0.113.70")).status_code == 429
    r = await client.post(
        "/api/auth/login",
        json={"email": first["email"], "password": first["password"]},
        headers={"X-Real-IP": "203.0.113.70"},
    )
    assert r.status_code == 200


# ---------------------------------------------------------------- the hashing pool's queue


class Gate:
    """Holds every bcrypt call in the pool's threads until opened, so the queue fills up."""

    def __init__(self) -> None:
        self.opened = threading.Event()

    def hold(self, hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch) -> None:
        real_check, real_hash = hasher._check, hasher._hash

        def check(password: str, stored: bytes) -> bool:
            self.opened.wait(10)
            return real_check(password, stored)

        def hash_(password: str) -> bytes:
            self.opened.wait(10)
            return real_hash(password)

        monkeypatch.setattr(hasher, "_check", check)
        monkeypatch.setattr(hasher, "_hash", hash_)


async def test_hasher_sheds_load_past_its_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    hasher = PasswordHasher(4, workers=2, max_queue=3)
    await hasher.warm_up()
    gate = Gate()
    gate.hold(hasher, monkeypatch)
    accepted = [asyncio.ensure_future(hasher.verify("guess", None)) for _ in range(5)]  # 2 running + 3 waiting
    await asyncio.sleep(0.05)
    with pytest.raises(HasherOverloaded) as overloaded:
        await hasher.verify("one more", None)
    assert overloaded.value.retry_after_s >= 1
    with pytest.raises(HasherOverloaded):
        await hasher.hash("one more")
    gate.opened.set()
    assert await asyncio.gather(*accepted) == [False] * 5
    assert hasher.rejected == 2
    assert await hasher.verify("room again", None) is False  # the queue drained
    hasher.close()


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def check_overload(
    service: AuthService, client: httpx.AsyncClient, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate()
    gate.hold(service.passwords, monkeypatch)
    capacity = service.passwords.workers + service.passwords.max_queue
    total = capacity + 6

    def body(i: int) -> dict[str, str]:
        if path.endswith("login"):
            return {"email": f"nobody{i}@example.com", "password": "Some-guess-1"}
        return new_user()

    tasks = [
        asyncio.ensure_future(client.post(path, json=body(i), headers={"X-Real-IP": f"192.0.2.{i + 1}"}))
        for i in range(total)
    ]
    # The requests past the pool's capacity are answered at once, while the rest still wait.
    await wait_until(lambda: sum(t.done() for t in tasks) == total - capacity)
    gate.opened.set()
    responses = await asyncio.gather(*tasks)
    shed = [r for r in responses if r.status_code == 503]
    assert len(shed) == total - capacity, Counter(r.status_code for r in responses)
    for r in shed:
        assert int(r.headers["retry-after"]) >= 1
        body_ = r.json()
        assert body_["detail"] and body_["message"] and "busy" in body_["message"].lower()
    served = 401 if path.endswith("login") else 200
    assert sum(r.status_code == served for r in responses) == capacity


async def test_login_burst_is_shed_with_503(
    make_service: ServiceFactory, make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = await make_service(bcrypt_queue_max=2, login_rate_per_ip=1000)
    await check_overload(service, await make_client(service), "/api/auth/login", monkeypatch)


async def test_signup_burst_is_shed_with_503(
    make_service: ServiceFactory, make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = await make_service(bcrypt_queue_max=2)
    await check_overload(service, await make_client(service), "/api/auth/signup", monkeypatch)


async def test_shed_login_does_not_count_against_the_account(
    make_service: ServiceFactory, make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A login refused for load was never checked: it must not use up the user's attempts."""
    service = await make_service(bcrypt_queue_max=0, login_rate_per_account=2)
    client = await make_client(service)
    user, _ = await signup(client)
    gate = Gate()
    gate.hold(service.passwords, monkeypatch)
    blockers = [
        asyncio.ensure_future(
            client.post("/api/auth/login", json={"email": f"x{i}@example.com", "password": "Some-guess-1"})
        )
        for i in range(service.passwords.workers)
    ]
    await wait_until(lambda: service.passwords.running == service.passwords.workers)
    for _ in range(5):
        r = await client.post("/api/auth/login", json={"email": user["email"], "password": "Wrong-guess-1"})
        assert r.status_code == 503
    gate.opened.set()
    await asyncio.gather(*blockers)
    r = await client.post("/api/auth/login", json={"email": user["email"], "password": user["password"]})
    assert r.status_code == 200, r.text
