"""The service's state: the open browser sessions (in memory, one Chromium and one
profile directory on disk each), owned by one user, limited per user and in total,
closed when idle, declared crashed when their Chromium dies (never a hang).

Selenium blocks, so every browser call runs in a worker thread of this
manager's own pool, one call at a time per session (an asyncio lock), with a
hard deadline: a browser that stops answering is killed and reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from fastapi import HTTPException
from selenium.common.exceptions import WebDriverException

from harvis_common.replicas import mint_session_id
from harvis_common.ssrf import SSRFPolicy
from harvis_common.ssrf_proxy import GuardProxy

from .browser import ActionError, Browser, BrowserGone, LaunchConfig, pids_with
from .metrics import BROWSER_METRICS
from .settings import Settings

log = logging.getLogger("browser.sessions")
T = TypeVar("T")

REAP_INTERVAL_S = 1.0
START_TIMEOUT_S = 60.0
_CRASH_WORDS = (
    "tab crashed",
    "page crash",
    "chrome not reachable",
    "disconnected",
    "invalid session id",
    "no such window",
    "session deleted",
    "target window already closed",
    # A page stuck in a script blocks every later command: only a fresh browser helps.
    "timed out receiving message from renderer",
)


@dataclass
class Session:
    id: str
    user_id: int
    idle_timeout_s: int
    proxy: GuardProxy
    profile_dir: Path
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_used: float = field(default_factory=time.monotonic)
    last_used_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    state: str = "starting"  # starting | ready | crashed | closed
    crash_reason: str | None = None
    browser: Browser | None = None
    url: str = "about:blank"
    title: str = ""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def touch(self) -> None:
        self.last_used = time.monotonic()
        self.last_used_at = datetime.now(UTC)

    def idle_for(self) -> float:
        return time.monotonic() - self.last_used

    def expired(self) -> bool:
        return self.idle_for() > self.idle_timeout_s

    def public(self) -> dict[str, Any]:
        return {
            "session_id": self.id,
            "state": self.state,
            "url": self.url,
            "title": self.title,
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat(),
            "idle_timeout_s": self.idle_timeout_s,
            "expires_in_s": max(0, round(self.idle_timeout_s - self.idle_for(), 1)),
            "crash_reason": self.crash_reason,
        }


def _crash_like(exc: BaseException) -> bool:
    text = str(getattr(exc, "msg", "") or exc).lower()
    return any(w in text for w in _CRASH_WORDS)


class SessionManager:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.policy = SSRFPolicy.from_setting(settings.browser_ssrf_allowlist)
        self.sessions: dict[str, Session] = {}
        base = settings.browser_profile_dir or os.path.join(tempfile.gettempdir(), "harvis-browser")
        self.base_dir = Path(base)
        workers = settings.browser_max_sessions + 2
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="browser")
        # Start/stop have their own threads so hung actions can never block a kill.
        self.life_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="browser-life")
        self._reaper: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Future[None]] = set()
        self.started = 0
        self.crashes = 0

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        # Browsers and profiles left by a previous process of this service that died.
        for pid in pids_with(f"--user-data-dir={self.base_dir}/session-".encode()):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for leftover in self.base_dir.glob("session-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        self._reaper = asyncio.create_task(self._reap_forever())
        BROWSER_METRICS.attach(self.stats)

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        await asyncio.gather(*(self.close(s) for s in list(self.sessions.values())), return_exceptions=True)
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.life_pool.shutdown(wait=False, cancel_futures=True)

    def _live(self) -> list[Session]:
        return [s for s in self.sessions.values() if s.state in ("starting", "ready")]

    async def create(self, user_id: int, idle_timeout_s: int | None = None) -> Session:
        s = self.settings
        mine = [x for x in self._live() if x.user_id == user_id]
        if len(mine) >= s.browser_max_sessions_per_user:
            raise HTTPException(
                429,
                f"You already have {len(mine)} open browser sessions (the limit is "
                f"{s.browser_max_sessions_per_user}): reuse one (session_id) or close one with "
                f"DELETE /api/browser/session/{{id}}; yours: {', '.join(x.id for x in mine)}",
                headers={"Retry-After": "10"},
            )
        if len(self._live()) >= s.browser_max_sessions:
            raise HTTPException(
                429,
                f"All {s.browser_max_sessions} browser sessions of this server are in use; try again later",
                headers={"Retry-After": "30"},
            )
        timeout = min(idle_timeout_s or s.browser_idle_timeout_s, s.browser_idle_timeout_s)
        sid = mint_session_id(s.replica_ordinal)  # the gateway sends its requests to this replica
        session = Session(
            id=sid,
            user_id=user_id,
            idle_timeout_s=timeout,
            proxy=GuardProxy(self.policy, name=sid),
            profile_dir=self.base_dir / f"session-{sid}",
        )
        self.sessions[sid] = session  # reserves the slot while Chromium starts
        try:
            await self._launch(session)
        except BaseException:
            self.sessions.pop(sid, None)
            raise
        return session

    async def _launch(self, session: Session) -> None:
        s = self.settings
        session.state = "starting"
        session.crash_reason = None
        shutil.rmtree(session.profile_dir, ignore_errors=True)
        session.profile_dir.mkdir(mode=0o700, parents=True)
        port = await session.proxy.start()
        browser = Browser(
            LaunchConfig(
                chromium_path=s.chromium_path,
                chromedriver_path=s.chromedriver_path,
                profile_dir=session.profile_dir,
                proxy_port=port,
                window_size=s.browser_window_size,
                page_load_timeout_s=s.browser_page_load_timeout_s,
                command_timeout_s=float(s.browser_page_load_timeout_s + s.browser_max_wait_s + 30),
            )
        )
        session.browser = browser
        loop = asyncio.get_running_loop()
        t0 = time.monotonic()
        try:
            await asyncio.wait_for(loop.run_in_executor(self.life_pool, browser.start), START_TIMEOUT_S)
        except BaseException as exc:
            await loop.run_in_executor(self.life_pool, browser.close)
            await session.proxy.close()
            session.state = "closed"
            log.warning("browser start failed", extra={"session": session.id, "error": str(exc)[:500]})
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise HTTPException(503, f"Could not start a browser: {str(exc).splitlines()[0][:300]}") from exc
        session.state = "ready"
        session.url, session.title = "about:blank", ""
        session.touch()
        self.started += 1
        log.info(
            "browser session started",
            extra={
                "session": session.id,
                "user_id": session.user_id,
                "start_ms": round((time.monotonic() - t0) * 1000),
            },
        )

    async def relaunch(self, session: Session) -> None:
        """A crashed session gets a fresh browser under the same id (and limits)."""
        s = self.settings
        if len(self._live()) >= s.browser_max_sessions:
            raise HTTPException(429, "All browser sessions of this server are in use; try again later")
        async with session.lock:
            if session.state != "crashed":
                return
            session.proxy = GuardProxy(self.policy, name=session.id)
            await self._launch(session)

    def get(self, session_id: str, user_id: int) -> Session:
        session = self.sessions.get(session_id)
        if session is None or session.user_id != user_id or session.state == "closed":
            raise HTTPException(404, "Browser session not found")
        if session.expired() and not session.lock.locked():
            task = asyncio.ensure_future(self.close(session))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
            raise HTTPException(404, "Browser session not found (it expired after being idle)")
        return session

    def list(self, user_id: int) -> list[Session]:
        return sorted(
            (s for s in self.sessions.values() if s.user_id == user_id and s.state != "closed"),
            key=lambda s: s.created_at,
            reverse=True,
        )

    async def close(self, session: Session) -> None:
        if session.state == "closed":
            return
        session.state = "closed"
        self.sessions.pop(session.id, None)
        await self._teardown(session)
        log.info("browser session closed", extra={"session": session.id})

    async def _teardown(self, session: Session) -> None:
        browser, session.browser = session.browser, None
        proxy = session.proxy  # this browser's: a relaunch gives the session a new one
        loop = asyncio.get_running_loop()
        if browser is not None:
            browser.kill_nowait()
            try:
                await asyncio.wait_for(loop.run_in_executor(self.life_pool, browser.close), 20)
            except Exception:
                log.exception("browser close failed", extra={"session": session.id})
        shutil.rmtree(session.profile_dir, ignore_errors=True)
        await proxy.close()

    async def mark_crashed(self, session: Session, reason: str) -> None:
        if session.state != "ready":
            return
        session.state = "crashed"
        session.crash_reason = reason
        self.crashes += 1
        log.warning("browser session crashed", extra={"session": session.id, "reason": reason})
        await self._teardown(session)

    def _crashed_error(self, session: Session) -> HTTPException:
        return HTTPException(
            409,
            f"The browser of this session crashed ({session.crash_reason}); navigate with this session_id to "
            "start a fresh browser in it, or close it",
        )

    # ------------------------------------------------------------ running browser calls

    async def run(self, session: Session, fn: Callable[[Browser], T], hard_timeout: float) -> T:
        """Run `fn(browser)` in a worker thread; map every failure to a clear HTTP error."""
        async with session.lock:
            if session.state == "crashed":
                raise self._crashed_error(session)
            if session.state != "ready" or session.browser is None:
                raise HTTPException(404, "Browser session not found")
            browser = session.browser
            if not browser.alive():
                await self.mark_crashed(session, "the browser process exited")
                raise self._crashed_error(session)
            session.touch()
            loop = asyncio.get_running_loop()
            try:
                return await asyncio.wait_for(loop.run_in_executor(self.pool, fn, browser), hard_timeout)
            except ActionError as exc:
                raise HTTPException(exc.status, exc.message) from exc
            except TimeoutError as exc:
                await self.mark_crashed(session, f"the browser stopped answering for {hard_timeout:g} s and was killed")
                raise HTTPException(
                    504, f"The browser did not answer within {hard_timeout:g} s; it was stopped"
                ) from exc
            except (WebDriverException, BrowserGone, OSError, ValueError) as exc:
                if not browser.alive() or _crash_like(exc) or isinstance(exc, BrowserGone | OSError):
                    reason = _short(exc) or "the browser process exited"
                    if "receiving message from renderer" in reason:
                        reason = "the page stopped responding (a script never yields); the browser was stopped"
                    await self.mark_crashed(session, reason)
                    raise self._crashed_error(session) from exc
                raise HTTPException(502, f"The browser reported an error: {_short(exc)}") from exc
            finally:
                session.touch()

    # ------------------------------------------------------------ housekeeping

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(REAP_INTERVAL_S)
            try:
                await self.reap()
            except Exception:
                log.exception("session reaper failed")

    async def reap(self) -> None:
        for session in list(self.sessions.values()):
            if session.lock.locked() or session.state == "starting":
                continue
            if session.expired():
                log.info("browser session idle, closing", extra={"session": session.id})
                await self.close(session)
            elif session.state == "ready" and session.browser is not None and not session.browser.alive():
                # Under the session's lock (free: checked above, no await since), so a navigate
                # can't relaunch while this teardown still owns the profile dir and the proxy.
                async with session.lock:
                    await self.mark_crashed(session, "the browser process exited")

    def stats(self) -> dict[str, Any]:
        return {
            "open": len(self._live()),
            "max": self.settings.browser_max_sessions,
            "max_per_user": self.settings.browser_max_sessions_per_user,
            "started": self.started,
            "crashes": self.crashes,
        }


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "msg", None) or exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
