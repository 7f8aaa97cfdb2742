"""Password hashing (bcrypt over a pre-hash) and the password policy (ASVS V2.1).

bcrypt reads only the first 72 bytes of its input, and bcrypt 5 raises rather
than truncate. So bcrypt never sees the password itself: it sees the base64 of
an HMAC-SHA256 of the NFKC-normalised UTF-8 password (44 ASCII bytes, no NUL),
which keeps every byte of a long or multibyte password significant. The HMAC
key is a fixed, public domain separator, not a secret: it only stops a leaked
plain SHA-256 of a password elsewhere from being tried directly against ours.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import math
import os
import re
import time
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from importlib import resources
from typing import TypeVar

import bcrypt

T = TypeVar("T")

DEFAULT_BCRYPT_ROUNDS = 12
MIN_LENGTH = 8
MAX_LENGTH = 128  # ASVS: allow at least 64
_PREHASH_KEY = b"harvis/bcrypt-prehash/v1"
_SYMBOLS = "!@#$%^&*?._-"
_TAIL = re.compile(r"[0-9!@#$%^&*?._-]+$")  # the digits and symbols people append
MAX_TAIL = 6
# Leetspeak folded back to letters, so "P@ssw0rd" counts as "password".
_UNLEET = str.maketrans({"@": "a", "4": "a", "3": "e", "1": "i", "!": "i", "0": "o", "$": "s", "5": "s", "7": "t"})


def normalise(password: str) -> str:
    """NFKC, as NIST 800-63B suggests: the same password typed on another
    keyboard or OS (composed vs decomposed accents) is the same password."""
    return unicodedata.normalize("NFKC", password)


def prehash(password: str) -> bytes:
    digest = hmac.new(_PREHASH_KEY, normalise(password).encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest)


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    # Shipped list (about 6,000 entries, lowercase); see the file's header.
    text = resources.files("core_api.auth").joinpath("common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(line.strip().casefold() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def _common_forms(folded: str) -> set[str]:
    """The password as typed, and the word under it when only a short tail of
    digits or symbols was added: "P@ssw0rd2024!" is "password" with leetspeak
    and a year, which a guesser tries early."""
    forms = {folded, folded.rstrip(_SYMBOLS)}
    core = _TAIL.sub("", folded)
    if core and len(folded) - len(core) <= MAX_TAIL:
        forms |= {core, core.translate(_UNLEET)}
    return forms


def password_problem(password: str, *, username: str = "", email: str = "") -> str | None:
    """Why the password is refused, or None when it is acceptable."""
    pw = normalise(password)
    if len(pw) < MIN_LENGTH:
        return f"Password must be at least {MIN_LENGTH} characters"
    if len(pw) > MAX_LENGTH:
        return f"Password must be at most {MAX_LENGTH} characters"
    if not pw.strip():
        return "Password must not be only spaces"
    if len(set(pw)) < 3:  # "aaaaaaaaaaaa", "abababababab": a blocklist rule, not a composition rule
        return "Password is too simple"
    folded = pw.casefold()
    if not common_passwords().isdisjoint(_common_forms(folded)):
        return "Password is too common"
    identity = {v.casefold() for v in (username, email, email.partition("@")[0]) if v}
    if folded in identity:
        return "Password must not be the same as your username or email"
    return None


class HasherOverloaded(Exception):
    """More bcrypt work is waiting than the queue allows: shed this request."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"password hashing is busy, retry after {retry_after_s}s")
        self.retry_after_s = retry_after_s


class PasswordHasher:
    """bcrypt in a small dedicated thread pool: it never blocks the event loop, and
    a burst of logins queues here instead of taking every core.

    The queue is bounded: with every thread busy and `max_queue` jobs already
    waiting, the next one is refused at once (HasherOverloaded, the routes' 503 +
    Retry-After) instead of waiting behind an unbounded line that would make
    every login slow (issue 14: signups could stall every login)."""

    def __init__(self, rounds: int = DEFAULT_BCRYPT_ROUNDS, workers: int | None = None, max_queue: int = 32) -> None:
        if not 4 <= rounds <= 31:
            raise ValueError("bcrypt rounds must be between 4 and 31")
        if max_queue < 0:
            raise ValueError("max_queue must be >= 0")
        self.rounds = rounds
        self.workers = workers or min(4, os.cpu_count() or 1)
        self.max_queue = max_queue
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="bcrypt")
        self._dummy_hash: bytes | None = None
        self._in_pool = 0  # submitted and not finished: running + waiting
        self._avg_s = 0.25  # a moving average of one job's time, for Retry-After
        self._last_run_s = 0.25
        self.hashes = 0
        self.verifications = 0
        self.rejected = 0

    @property
    def running(self) -> int:
        return min(self._in_pool, self.workers)

    @property
    def waiting(self) -> int:
        return max(0, self._in_pool - self.workers)

    def _hash(self, password: str) -> bytes:
        return bcrypt.hashpw(prehash(password), bcrypt.gensalt(self.rounds))

    @staticmethod
    def _check(password: str, stored: bytes) -> bool:
        try:
            return bcrypt.checkpw(prehash(password), stored)
        except ValueError:  # a malformed stored hash is a failed check, not a crash
            return False

    def retry_after_s(self) -> int:
        """About when the queue will have room again, in whole seconds (1-30)."""
        return max(1, min(30, math.ceil((self.waiting + 1) * self._avg_s / self.workers)))

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        if self._in_pool >= self.workers + self.max_queue:
            self.rejected += 1
            raise HasherOverloaded(self.retry_after_s())
        loop = asyncio.get_running_loop()
        self._in_pool += 1

        def timed() -> T:
            start = time.perf_counter()
            try:
                return fn(*args)
            finally:
                self._last_run_s = time.perf_counter() - start

        def finished(_: object) -> None:
            # Counted out when the thread is really done (or the job was cancelled before it
            # started), not when the awaiting request gives up: a disconnected client's hash
            # still occupies its thread.
            with contextlib.suppress(RuntimeError):  # the loop is gone: nothing left to count for
                loop.call_soon_threadsafe(self._job_done)

        job = self._pool.submit(timed)
        job.add_done_callback(finished)
        return await asyncio.wrap_future(job)

    def _job_done(self) -> None:
        self._in_pool -= 1
        self._avg_s = 0.8 * self._avg_s + 0.2 * self._last_run_s

    async def hash(self, password: str) -> str:
        self.hashes += 1
        return (await self._run(self._hash, password)).decode("ascii")

    async def verify(self, password: str, stored: str | None) -> bool:
        """Check a password; with `stored=None` (unknown user) check against a
        dummy hash of the same cost, so the answer takes the same time."""
        self.verifications += 1
        if stored is None:
            if self._dummy_hash is None:
                self._dummy_hash = await self._run(self._hash, os.urandom(16).hex())
            await self._run(self._check, password, self._dummy_hash)
            return False
        return bool(await self._run(self._check, password, stored.encode("ascii")))

    def needs_rehash(self, stored: str) -> bool:
        """True when the hash was made with fewer rounds than configured now."""
        parts = stored.split("$")  # "$2b$12$<salt+hash>"
        try:
            return int(parts[2]) < self.rounds
        except (IndexError, ValueError):
            return False

    async def warm_up(self) -> None:
        """Make the dummy hash ahead of the first unknown-user login."""
        if self._dummy_hash is None:
            self._dummy_hash = await self._run(self._hash, os.urandom(16).hex())

    @property
    def dummy_hash(self) -> bytes | None:
        return self._dummy_hash

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
