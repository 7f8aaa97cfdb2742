"""Password hashing and policy, below the HTTP layer."""

from __future__ import annotations

import asyncio
import threading

import bcrypt
import pytest

from core_api.auth import passwords
from core_api.auth.passwords import PasswordHasher, common_passwords, password_problem, prehash

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def hasher():
    h = PasswordHasher(rounds=4)
    yield h
    h.close()


async def test_prehash_fits_bcrypt_and_keeps_every_byte() -> None:
    long_a, long_b = "a" * 100 + "1", "a" * 100 + "2"
    for pw in ("short", long_a, "🔐" * 50, "密码" * 40):
        digest = prehash(pw)
        assert len(digest) == 44 and b"\0" not in digest and digest.isascii()
    assert prehash(long_a) != prehash(long_b)


async def test_hash_and_verify(hasher: PasswordHasher) -> None:
    for pw in ("x" * 100, "🔐🦄密码パスワード😀🎉", "ordinary-password-1"):
        stored = await hasher.hash(pw)
        assert stored.startswith("$2b$04$")
        assert await hasher.verify(pw, stored)
        assert not await hasher.verify(pw + "x", stored)
    base = "p" * 72
    stored = await hasher.hash(base + "A")
    assert not await hasher.verify(base + "B", stored)
    assert not await hasher.verify(base, stored)


async def test_unicode_forms_are_one_password(hasher: PasswordHasher) -> None:
    composed, decomposed = "caf\u00e9-au-lait-42", "cafe\u0301-au-lait-42"
    assert composed != decomposed
    assert await hasher.verify(decomposed, await hasher.hash(composed))


async def test_never_raw_bcrypt_of_the_password(hasher: PasswordHasher) -> None:
    stored = await hasher.hash("ordinary-password-1")
    assert not bcrypt.checkpw(b"ordinary-password-1", stored.encode())


async def test_malformed_stored_hash_is_a_failed_check(hasher: PasswordHasher) -> None:
    assert await hasher.verify("anything", "not-a-bcrypt-hash") is False


async def test_bcrypt_runs_off_the_event_loop(hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch) -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []
    real = bcrypt.hashpw

    def spy(pw: bytes, salt: bytes) -> bytes:
        seen.append(threading.get_ident())
        return real(pw, salt)

    monkeypatch.setattr(passwords.bcrypt, "hashpw", spy)
    await asyncio.gather(*(hasher.hash(f"password-number-{i}") for i in range(4)))
    assert seen and loop_thread not in seen


async def test_dummy_hash_matches_the_cost(hasher: PasswordHasher) -> None:
    assert await hasher.verify("whatever", None) is False
    assert hasher.dummy_hash is not None and hasher.dummy_hash.startswith(b"$2b$04$")


async def test_needs_rehash_when_cost_rises() -> None:
    cheap, dear = PasswordHasher(rounds=4), PasswordHasher(rounds=5)
    try:
        stored = await cheap.hash("ordinary-password-1")
        assert not cheap.needs_rehash(stored)
        assert dear.needs_rehash(stored)
        assert not dear.needs_rehash("garbage")
    finally:
        cheap.close()
        dear.close()


async def test_rounds_are_bounded() -> None:
    with pytest.raises(ValueError):
        PasswordHasher(rounds=3)


async def test_common_list_is_shipped() -> None:
    common = common_passwords()
    assert len(common) > 3000
    assert {"password", "12345678", "qwerty123", "iloveyou"} <= common
    assert all(p == p.casefold() for p in common)


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("short", "at least 8"),
        ("x" * 129, "at most 128"),
        ("PassWord123", "too common"),
        ("P@ssw0rd2024!", "too common"),
        ("Monkey123!", "too common"),
        ("aaaaaaaaaaaa", "too simple"),
        ("abababababab", "too simple"),
        ("          ", "only spaces"),
    ],
)
async def test_policy_refuses(password: str, problem: str) -> None:
    assert problem in (password_problem(password) or "").lower()


@pytest.mark.parametrize(
    "password",
    ["correct horse battery staple", "x" * 64 + "yz", "Zq9-" * 32, "пароль-очень-надёжный", "🔐🦄密码パスワード😀🎉"],
)
async def test_policy_accepts(password: str) -> None:
    assert password_problem(password) is None


async def test_policy_refuses_the_identity() -> None:
    assert password_problem("Ada.Lovelace", username="ada.lovelace", email="x@example.com")
    assert password_problem("ada.lovelace@example.com", username="someone", email="ada.lovelace@example.com")
    assert password_problem("ada.lovelace", username="someone", email="ada.lovelace@example.com")
    assert password_problem("ada.lovelace-1815", username="ada.lovelace", email="ada.lovelace@example.com") is None
