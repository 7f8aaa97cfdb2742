"""Who may run how many sandboxes: the server's slots (executions plus terminals), each user's
caps, and the register of every sandbox running, so deleting a session can stop its sandboxes
before its uid goes back to the pool.

Everything here runs on the event loop: a check and the registration it allows happen with no
`await` in between, so parallel requests can never together pass a cap. The counts are per
process (one replica); the session cap and the uid pool live in the database.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

Kind = Literal["execution", "terminal"]


class Refused(Exception):
    """Refused for capacity: 429 when it is the caller's own cap, 503 when the server is full;
    the client may retry after `retry_after_s`."""

    def __init__(self, status: int, message: str, retry_after_s: int = 5) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after_s = retry_after_s


class Slots:
    """A counting semaphore that can be taken without waiting, or waited for a bounded time
    (first come, first served: a freed slot goes straight to the longest waiter)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def try_take(self) -> bool:
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return True
        return False

    async def take(self, timeout_s: float) -> bool:
        """True once a slot is ours; False when none freed within `timeout_s`."""
        if self.try_take():
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait([waiter], timeout=timeout_s)
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.give()  # handed to us just as we were cancelled: pass it on
            else:
                self._forget(waiter)
            raise
        if waiter.done():
            return True
        self._forget(waiter)
        return False

    def give(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1

    def _forget(self, waiter: asyncio.Future[None]) -> None:
        waiter.cancel()
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)


@dataclass(eq=False)
class Run:
    """One sandbox of a session, from admission to release (`with capacity.admit(...) as run`)."""

    capacity: Capacity
    user_id: int
    session_id: str
    kind: Kind
    stopped: bool = False  # the session is being deleted
    done: asyncio.Event = field(default_factory=asyncio.Event)
    _has_slot: bool = False
    _on_stop: Callable[[], object] | None = None

    async def take_slot(self, wait_s: float) -> None:
        if not await self.capacity.slots.take(wait_s):
            raise Refused(
                503,
                f"All {self.capacity.slots.total} sandboxes of this server are busy; try again in a few seconds",
            )
        self._has_slot = True

    def take_slot_now(self) -> bool:
        self._has_slot = self.capacity.slots.try_take()
        return self._has_slot

    def on_stop(self, stop: Callable[[], object]) -> None:
        """What stops this sandbox when its session is deleted (at once if that happened already)."""
        self._on_stop = stop
        if self.stopped:
            stop()

    def stop(self) -> None:
        self.stopped = True
        if self._on_stop is not None:
            self._on_stop()

    def release(self) -> None:
        if self.done.is_set():
            return
        self.capacity.runs.discard(self)
        if self._has_slot:
            self._has_slot = False
            self.capacity.slots.give()
        self.done.set()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


class Capacity:
    def __init__(self, slots: int, per_user: dict[Kind, int]) -> None:
        self.slots = Slots(slots)
        self.per_user = per_user
        self.runs: set[Run] = set()

    def count(self, user_id: int, kind: Kind) -> int:
        return sum(1 for r in self.runs if r.user_id == user_id and r.kind == kind)

    def admit(self, user_id: int, session_id: str, kind: Kind) -> Run:
        """Register a sandbox of the user's (not yet a slot), or Refused(429) over their cap."""
        cap, have = self.per_user[kind], self.count(user_id, kind)
        if have >= cap:
            if kind == "terminal":
                message = f"Terminal limit reached: you have {have} terminals open (at most {cap}); close one first"
            else:
                message = f"You already have {have} executions running (at most {cap}); wait for one to finish"
            raise Refused(429, message)
        run = Run(self, user_id, session_id, kind)
        self.runs.add(run)
        return run

    async def stop_session(self, session_id: str, timeout_s: float = 15) -> bool:
        """Stop every sandbox of the session and wait until they are released; False if some
        did not finish within `timeout_s`."""
        runs = [r for r in self.runs if r.session_id == session_id]
        for run in runs:
            run.stop()
        if not runs:
            return True
        waits = [asyncio.create_task(r.done.wait()) for r in runs]
        _, pending = await asyncio.wait(waits, timeout=timeout_s)
        for task in pending:
            task.cancel()
        return not pending
