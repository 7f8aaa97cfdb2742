"""Login rate limits per account and per IP, in process and in Redis; client IPs."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from conftest import ClientFactory, ServiceFactory, new_user, signup
from redis.asyncio import Redis

from core_api.auth.client_ip import client_ip, parse_networks
from core_api.auth.rate_limit import LoginRateLimiter, MemoryCounters, RedisCounters
from core_api.auth.service import AuthService
from core_api.settings import Settings

pytestmark = pytest.mark.asyncio

TOO_MANY = {"detail": "Too many login attempts, try again later", "message": "Too many login attempts, try again later"}


async def login(client: httpx.AsyncClient, email: str, password: str, ip: str | None = None) -> httpx.Response:
    headers = {"X-Real-IP": ip} if ip else {}
    return await client.post("/api/auth/login", json={"email": email, "password": password}, headers=headers)


async def assert_limited(response: httpx.Response, window_s: int) -> None:
    assert response.status_code == 429, response.text
    assert response.json() == TOO_MANY
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= window_s
    assert "set-cookie" not in response.headers


async def check_account_limit(client: httpx.AsyncClient, service: AuthService) -> None:
    """Shared by both backends: 3 failures per account, then 429 even for the right password."""
    user, _ = await signup(client)
    for i in range(3):
        failed = await login(client, user["email"], "wrong-password", ip=f"198.51.100.{i + 1}")
        assert failed.status_code == 401
    verifications = service.passwords.verifications
    await assert_limited(await login(client, user["email"], user["password"], ip="198.51.100.99"), 60)
    assert service.passwords.verifications == verifications  # refused before any password check
    # Another account from the same IPs is unaffected.
    other, _ = await signup(client)
    assert (await login(client, other["email"], other["password"], ip="198.51.100.1")).status_code == 200


async def test_account_limit_in_process(make_service: ServiceFactory, make_client: ClientFactory) -> None:
    service = await make_service(login_rate_per_account=3)
    assert service.limiter.backend == "memory"
    await check_account_limit(await make_client(service), service)
    assert service.counters.logins_rate_limited == 1


async def test_account_limit_in_redis(
    make_service: ServiceFactory, make_client: ClientFactory, redis: Redis, redis_prefix: str
) -> None:
    service = await make_service(redis_prefix, login_rate_per_account=3)
    assert service.limiter.backend == "redis"
    await check_account_limit(await make_client(service), service)
    keys = [k async for k in redis.scan_iter(match=redis_prefix + "login:*")]
    assert keys, "the counters live in Redis"
    for key in keys:
        assert 0 < await redis.ttl(key) <= 60  # every counter expires with its window


async def test_redis_counters_are_shared_by_replicas(
    make_service: ServiceFactory, make_client: ClientFactory, redis_prefix: str
) -> None:
    one = await make_service(redis_prefix, login_rate_per_account=2)
    two = await make_service(redis_prefix, login_rate_per_account=2)
    client_one, client_two = await make_client(one), await make_client(two)
    user, _ = await signup(client_one)
    assert (await login(client_one, user["email"], "wrong-password")).status_code == 401
    assert (await login(client_two, user["email"], "wrong-password")).status_code == 401
    await assert_limited(await login(client_one, user["email"], user["password"]), 60)
    await assert_limited(await login(client_two, user["email"], user["password"]), 60)


@pytest.mark.parametrize("use_redis", [False, True], ids=["memory", "redis"])
async def test_ip_limit(
    make_service: ServiceFactory, make_client: ClientFactory, redis_prefix: str, use_redis: bool
) -> None:
    service = await make_service(redis_prefix if use_redis else None, login_rate_per_ip=4, login_rate_per_account=100)
    client = await make_client(service)
    user, _ = await signup(client)
    for i in range(4):  # password spraying: a different account each time
        assert (await login(client, f"nobody{i}@example.com", "guess-guess", ip="203.0.113.7")).status_code == 401
    await assert_limited(await login(client, user["email"], user["password"], ip="203.0.113.7"), 60)
    # Other clients are not affected.
    assert (await login(client, user["email"], user["password"], ip="203.0.113.8")).status_code == 200


async def test_success_resets_the_account_counter(make_service: ServiceFactory, make_client: ClientFactory) -> None:
    service = await make_service(login_rate_per_account=3)
    client = await make_client(service)
    user, _ = await signup(client)
    for _ in range(2):
        assert (await login(client, user["email"], "wrong-password")).status_code == 401
    assert (await login(client, user["email"], user["password"])).status_code == 200
    for _ in range(2):  # the count starts again from zero
        assert (await login(client, user["email"], "wrong-password")).status_code == 401
    assert (await login(client, user["email"], user["password"])).status_code == 200


async def test_window_closes(make_service: ServiceFactory, make_client: ClientFactory) -> None:
    service = await make_service(login_rate_per_account=1, login_rate_window_s=1)
    client = await make_client(service)
    user, _ = await signup(client)
    assert (await login(client, user["email"], "wrong-password")).status_code == 401
    limited = await login(client, user["email"], user["password"])
    assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
    await asyncio.sleep(1.1)
    assert (await login(client, user["email"], user["password"])).status_code == 200


async def test_ip_header_only_trusted_from_our_proxy(make_service: ServiceFactory, make_client: ClientFactory) -> None:
    service = await make_service(login_rate_per_ip=2, login_rate_per_account=100)
    direct = await make_client(service, peer="192.0.2.10")  # not loopback: a client reaching us directly
    user, _ = await signup(direct)
    # Rotating X-Real-IP does not help a direct client: its own address is counted.
    for i in range(2):
        assert (await login(direct, f"nobody{i}@example.com", "guess-guess", ip=f"10.9.8.{i}")).status_code == 401
    await assert_limited(await login(direct, user["email"], user["password"], ip="10.9.8.200"), 60)


async def test_trusted_proxies_from_the_environment(
    make_service: ServiceFactory, make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # compose sets TRUSTED_PROXY_CIDRS: nginx reaches core-api from a docker network address.
    monkeypatch.setenv("TRUSTED_PROXY_CIDRS", "192.0.2.0/24")
    service = await make_service(login_rate_per_ip=1, login_rate_per_account=100)
    via_proxy = await make_client(service, peer="192.0.2.10")
    assert (await login(via_proxy, "nobody@example.com", "guess-guess", ip="203.0.113.20")).status_code == 401
    await assert_limited(await login(via_proxy, "nobody@example.com", "guess-guess", ip="203.0.113.20"), 60)
    assert (await login(via_proxy, "nobody@example.com", "guess-guess", ip="203.0.113.21")).status_code == 401


async def test_redis_outage_falls_back_to_process_counters(
    make_service: ServiceFactory, make_client: ClientFactory
) -> None:
    service = await make_service(login_rate_per_account=2)
    # As if Redis went away after start: nothing listens on port 1.
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    service.limiter.counters._redis = RedisCounters(dead)
    client = await make_client(service)
    user, _ = await signup(client)
    for _ in range(2):
        assert (await login(client, user["email"], "wrong-password")).status_code == 401
    await assert_limited(await login(client, user["email"], user["password"]), 60)
    assert service.limiter.redis_errors >= 3
    await dead.aclose()


async def test_limiter_keys_hide_emails() -> None:
    limiter = LoginRateLimiter(per_ip=1, per_account=1, window_s=5, key_prefix="p:")
    key = limiter.account_key("Ada@Example.com ")
    assert key == limiter.account_key("ada@example.com")
    assert "ada" not in key and key.startswith("p:login:acct:")


async def test_memory_counters_sweep_closed_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    counters = MemoryCounters()
    monkeypatch.setattr(MemoryCounters, "MAX_KEYS", 10)
    await counters.hit([f"k{i}" for i in range(20)], window_s=0)  # windows already closed
    await counters.hit(["fresh"], window_s=60)
    assert len(counters._data) <= 11
    assert await counters.hit(["fresh", "k1"], window_s=60) == [
        (2, pytest.approx(60, abs=1)),
        (1, pytest.approx(60, abs=1)),  # k1's window had closed: a new one opened
    ]


@pytest.mark.parametrize("use_redis", [False, True], ids=["memory", "redis"])
async def test_undo_never_goes_below_zero_nor_revives_a_key(redis: Redis, redis_prefix: str, use_redis: bool) -> None:
    counters = RedisCounters(redis) if use_redis else MemoryCounters()
    key = f"{redis_prefix}undo"
    await counters.undo([key])  # nothing there: stays nothing
    assert await counters.hit([key], window_s=60) == [(1, pytest.approx(60, abs=1))]
    await counters.undo([key])
    await counters.undo([key])
    assert await counters.hit([key], window_s=60) == [(1, pytest.approx(60, abs=1))]
    if use_redis:
        assert 0 < await redis.ttl(key) <= 60  # never a key without an expiry


@pytest.mark.parametrize(
    ("peer", "header", "expected"),
    [
        ("127.0.0.1", "203.0.113.5", "203.0.113.5"),  # via our nginx
        ("::1", "2001:db8::1", "2001:db8::1"),
        ("::ffff:127.0.0.1", "203.0.113.5", "203.0.113.5"),  # IPv4 peer on a dual-stack socket
        ("127.0.0.1", None, "127.0.0.1"),
        ("127.0.0.1", "not-an-ip", "127.0.0.1"),
        ("127.0.0.1", "203.0.113.5, 10.0.0.1", "127.0.0.1"),  # a list is not what nginx sends
        ("198.51.100.4", "203.0.113.5", "198.51.100.4"),  # direct client: header ignored
        ("10.0.0.3", "203.0.113.5", "10.0.0.3"),  # private but not configured as trusted
        (None, "203.0.113.5", "unknown"),
    ],
)
async def test_client_ip(peer: str | None, header: str | None, expected: str) -> None:
    assert client_ip(peer, header, parse_networks(Settings.model_fields["trusted_proxy_cidrs"].default)) == expected


async def test_client_ip_with_configured_proxy_network() -> None:
    trusted = parse_networks("127.0.0.0/8, 172.18.0.0/16")
    assert client_ip("172.18.0.5", "203.0.113.5", trusted) == "203.0.113.5"
    assert client_ip("172.19.0.5", "203.0.113.5", trusted) == "172.19.0.5"


async def test_signup_is_not_rate_limited_by_failed_logins(
    make_service: ServiceFactory, make_client: ClientFactory
) -> None:
    service = await make_service(login_rate_per_ip=1)
    client = await make_client(service)
    assert (await login(client, "nobody@example.com", "guess-guess")).status_code == 401
    assert (await client.post("/api/auth/signup", json=new_user())).status_code == 200
