"""What every page step in a session goes through: the time budget of a browser call,
the SSRF check of a URL before it is opened and of where the tab landed afterwards,
and the screenshot the screenshot and screen-analyze routes share."""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException

from harvis_common.ssrf import SSRFBlocked, check_url, parse

from .browser import Browser
from .settings import Settings
from .store import Session, SessionManager


def wait_budget(settings: Settings, requested: float | None, default: float = 5.0) -> float:
    return min(requested if requested is not None else default, float(settings.browser_max_wait_s))


def hard_timeout(settings: Settings, wait: float) -> float:
    """When a browser call has surely hung (then the browser is killed): any wait the call
    may do, plus a page load (a click can start one), plus slack."""
    return wait + settings.browser_page_load_timeout_s + 5.0


async def vet(url: str, mgr: SessionManager) -> None:
    try:
        parse(url, mgr.policy)
    except SSRFBlocked as exc:
        raise HTTPException(400, f"URL not allowed: {exc}") from exc
    try:
        await check_url(url, mgr.policy)
    except SSRFBlocked as exc:
        raise HTTPException(403, f"Navigation blocked: {exc}") from exc


async def check_landing(mgr: SessionManager, session: Session, since: float, state: dict[str, Any]) -> list[str]:
    """Where the tab ended up must be allowed too (redirects, clicks, scripts); the
    proxy already refused the forbidden request itself. Returns blocked subresources."""
    url = state.get("url") or ""
    blocked = session.proxy.blocked_since(since)
    reason: str | None = None
    scheme = urlsplit(url).scheme.lower()
    if url == "about:blank":
        pass
    elif scheme in ("http", "https"):
        try:
            await check_url(url, mgr.policy)
        except SSRFBlocked as exc:
            reason = f"{url} ({exc})"
    elif scheme == "chrome-error" and blocked:
        reason = f"{blocked[-1].url} ({blocked[-1].reason})"
    elif scheme != "chrome-error":
        reason = f"{url} (scheme {scheme!r} is not allowed)"
    if reason is not None:
        await blank(mgr, session)
        raise HTTPException(403, f"Navigation blocked: the page went to {reason}")
    if scheme == "chrome-error":
        await blank(mgr, session)
        raise HTTPException(502, "The page could not be loaded (network error)")
    return [b.url for b in blocked][:20]


async def blank(mgr: SessionManager, session: Session) -> None:
    def go(b: Browser) -> None:
        b.d.get("about:blank")

    with contextlib.suppress(HTTPException):
        await mgr.run(session, go, 15)
    session.url, session.title = "about:blank", ""


def remember(session: Session, state: dict[str, Any]) -> None:
    session.url, session.title = state.get("url", session.url), state.get("title", session.title)


async def screenshot(
    mgr: SessionManager, session: Session, full_page: bool, selector: str | None, by: str | None
) -> bytes:
    settings = mgr.settings
    wait = wait_budget(settings, None)
    return await mgr.run(session, lambda b: b.screenshot(full_page, selector, by, wait), hard_timeout(settings, wait))
