"""The rendering worker: in-process, jobs in PostgreSQL.

Each core-api replica runs ARTIFACT_RENDER_WORKERS loops. A loop claims the oldest
`generating` row (`FOR UPDATE SKIP LOCKED`: replicas never take the same job), renders it in a
thread pool (the libraries are blocking; the event loop keeps serving), and stores the file
(`ready`) or the reason (`failed`, `error_message`). A render that takes longer than
ARTIFACT_RENDER_TIMEOUT_S is failed (its thread finishes on its own: the spec limits bound it).

Restarts: a job whose replica died keeps its claim until the lease (the render timeout plus
a margin) runs out; then any replica claims it again and renders it from its stored spec. After
MAX_ATTEMPTS claims without an ending it is failed, so no row stays `generating`.

A new job wakes this process's loops at once (`wake()`); with `listen`, the job's NOTIFY
wakes them wherever it was made (the artifact-renderer process, renderer.py, renders what
core-api's replicas queue); without, they find it within `poll_s`. ARTIFACT_RENDER_WORKERS=0
starts nothing: core-api then only queues (its image carries no rendering libraries). The
same worker deletes artifacts past their `expires_at` (ARTIFACT_TTL_DAYS).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticCustomError

from ..store.artifacts import JOBS_CHANNEL, ArtifactStore, Job
from .metrics import RENDER_SECONDS, RENDERS
from .render import render

log = logging.getLogger("harvis.artifacts")

LEASE_MARGIN_S = 30.0
EXPIRY_EVERY_S = 300.0
RELISTEN_S = 1.0  # after the listening connection was lost (a PostgreSQL restart)


class ArtifactWorker:
    def __init__(self, store: ArtifactStore, *, workers: int, render_timeout_s: float, poll_s: float = 1.0) -> None:
        self.store = store
        self.workers = workers
        self.render_timeout_s = render_timeout_s
        self.lease_s = render_timeout_s + LEASE_MARGIN_S
        self.poll_s = poll_s
        # Threads start on first use: with workers=0 (core-api only queueing) none ever does.
        self.executor = ThreadPoolExecutor(max_workers=max(workers, 1), thread_name_prefix="artifact-render")
        self._wake = asyncio.Event()
        self.listening = asyncio.Event()  # set while new jobs' NOTIFY reaches this worker
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, *, listen: bool = False) -> None:
        if not self.workers:
            return
        self._tasks = [asyncio.ensure_future(self._loop()) for _ in range(self.workers)]
        self._tasks.append(asyncio.ensure_future(self._expiry_loop()))
        if listen:
            self._tasks.append(asyncio.ensure_future(self._listen_loop()))

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        # A render still running is abandoned: its row keeps its claim and is taken again after the lease.
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def _loop(self) -> None:
        while True:
            try:
                worked = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("artifact worker step failed")
                worked = False
                await asyncio.sleep(self.poll_s)
            if not worked:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_s)
                self._wake.clear()

    async def _listen_loop(self) -> None:
        """Wake on every new job's NOTIFY, on one pooled connection held for it; after a lost
        connection, listen again (the loops' polling covers the gap)."""
        while True:
            try:
                async with self.store.pool.acquire() as conn:
                    await self._listen_on(conn)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("listening for artifact jobs failed; polling until it works again", exc_info=True)
            await asyncio.sleep(RELISTEN_S)

    async def _listen_on(self, conn: Any) -> None:
        """Until `conn` is lost (or this task is cancelled)."""
        lost = asyncio.Event()

        def on_lost(_: object) -> None:
            lost.set()

        conn.add_termination_listener(on_lost)
        await conn.add_listener(JOBS_CHANNEL, self._notified)
        try:
            self.listening.set()
            self.wake()  # whatever was queued while nobody listened
            await lost.wait()
        finally:
            self.listening.clear()
            conn.remove_termination_listener(on_lost)
            with contextlib.suppress(Exception):
                await conn.remove_listener(JOBS_CHANNEL, self._notified)

    def _notified(self, *_: object) -> None:
        self.wake()

    async def _expiry_loop(self) -> None:
        while True:
            try:
                while (n := await self.store.expire()) > 0:
                    log.info("expired artifacts deleted", extra={"count": n})
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("artifact expiry failed")
            await asyncio.sleep(EXPIRY_EVERY_S)

    async def run_once(self) -> bool:
        """Claim and render one job; False when there was none."""
        job = await self.store.claim(self.lease_s)
        if job is None:
            return False
        await self.process(job)
        return True

    async def process(self, job: Job) -> None:
        start = time.perf_counter()
        loop = asyncio.get_running_loop()
        try:
            rendered = await asyncio.wait_for(
                loop.run_in_executor(self.executor, render, job.type, job.title, job.spec), self.render_timeout_s
            )
        except TimeoutError:
            await self.store.fail(job, f"Rendering took longer than {self.render_timeout_s:g} s")
            RENDERS.labels(job.type, "timeout").inc()
            log.warning("artifact render timed out", extra={"artifact_id": str(job.id), "type": job.type})
            return
        except (ValidationError, PydanticCustomError) as exc:
            await self.store.fail(job, f"Invalid spec: {_first_error(exc)}")
            RENDERS.labels(job.type, "failed").inc()
            return
        except Exception as exc:
            log.exception("artifact render failed", extra={"artifact_id": str(job.id), "type": job.type})
            await self.store.fail(job, f"Rendering failed: {type(exc).__name__}: {str(exc)[:300]}")
            RENDERS.labels(job.type, "failed").inc()
            return
        status = await self.store.finish(job, rendered.data, rendered.mime_type)
        RENDERS.labels(job.type, status).inc()
        RENDER_SECONDS.labels(job.type).observe(time.perf_counter() - start)
        log.info(
            "artifact rendered",
            extra={
                "artifact_id": str(job.id),
                "type": job.type,
                "status": status,
                "bytes": len(rendered.data),
                "elapsed_s": round(time.perf_counter() - start, 3),
            },
        )


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first: dict[str, Any] = exc.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return str(exc)
