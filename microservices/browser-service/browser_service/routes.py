"""HTTP API: /api/browser/* (sessions, navigate, interact, screenshot) and /api/screen-analyze."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from harvis_common.identity import current_identity
from harvis_common.internal_auth import Identity
from harvis_common.ssrf import SSRFBlocked, check_url, parse

from . import ocr
from .browser import Browser
from .sessions import Session, SessionManager
from .settings import Settings

log = logging.getLogger("browser.api")
router = APIRouter()

Caller = Annotated[Identity, Depends(current_identity)]
SelectorKind = Literal["css", "xpath"] | None


def manager(request: Request) -> SessionManager:
    return request.app.state.sessions


Manager = Annotated[SessionManager, Depends(manager)]


def _settings(mgr: SessionManager) -> Settings:
    return mgr.settings


# ---------------------------------------------------------------- models


class NavigateIn(BaseModel):
    url: str = Field(min_length=1, max_length=8192)
    session_id: str | None = Field(default=None, max_length=64)
    wait_until: Literal["load", "domcontentloaded"] = "load"
    wait_for_selector: str | None = Field(default=None, max_length=2000)
    wait_for_text: str | None = Field(default=None, max_length=2000)
    by: SelectorKind = None
    timeout_s: float | None = Field(default=None, gt=0)
    # Shorter idle timeout for a new session (bounded by BROWSER_IDLE_TIMEOUT_S).
    idle_timeout_s: int | None = Field(default=None, ge=1)


class InteractIn(BaseModel):
    session_id: str = Field(max_length=64)
    action: Literal["click", "type", "press", "scroll", "select", "wait", "extract", "back", "forward", "evaluate"]
    selector: str | None = Field(default=None, max_length=2000)
    by: SelectorKind = None
    text: str | None = Field(default=None, max_length=100_000)
    key: str | None = Field(default=None, max_length=40)
    clear: bool = True
    x: int = 0
    y: int = 0
    to: Literal["top", "bottom"] | None = None
    value: str | None = None
    label: str | None = None
    index: int | None = Field(default=None, ge=0)
    what: Literal["text", "links", "table", "html"] = "text"
    visible: bool = False
    timeout_s: float | None = Field(default=None, ge=0)
    script: str | None = Field(default=None, max_length=100_000)


class AnalyzeIn(BaseModel):
    image: str | None = None
    session_id: str | None = Field(default=None, max_length=64)
    full_page: bool = False
    # A vision model's description too (when SCREEN_DESCRIBE_MODEL is set); null: whenever configured.
    describe: bool | None = None
    language: str | None = Field(default=None, pattern=r"^[a-z_]{3,20}(\+[a-z_]{3,20}){0,3}$")


# ---------------------------------------------------------------- helpers


def _wait_budget(settings: Settings, requested: float | None, default: float = 5.0) -> float:
    return min(requested if requested is not None else default, float(settings.browser_max_wait_s))


def _hard_timeout(settings: Settings, wait: float) -> float:
    """When a browser call has surely hung (then the browser is killed): any wait the call
    may do, plus a page load (a click can start one), plus slack."""
    return wait + settings.browser_page_load_timeout_s + 5.0


async def _vet(url: str, mgr: SessionManager) -> None:
    try:
        parse(url, mgr.policy)
    except SSRFBlocked as exc:
        raise HTTPException(400, f"URL not allowed: {exc}") from exc
    try:
        await check_url(url, mgr.policy)
    except SSRFBlocked as exc:
        raise HTTPException(403, f"Navigation blocked: {exc}") from exc


async def _check_landing(mgr: SessionManager, session: Session, since: float, state: dict[str, Any]) -> list[str]:
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
        await _blank(mgr, session)
        raise HTTPException(403, f"Navigation blocked: the page went to {reason}")
    if scheme == "chrome-error":
        await _blank(mgr, session)
        raise HTTPException(502, "The page could not be loaded (network error)")
    return [b.url for b in blocked][:20]


async def _blank(mgr: SessionManager, session: Session) -> None:
    def go(b: Browser) -> None:
        b.d.get("about:blank")

    with contextlib.suppress(HTTPException):
        await mgr.run(session, go, 15)
    session.url, session.title = "about:blank", ""


def _remember(session: Session, state: dict[str, Any]) -> None:
    session.url, session.title = state.get("url", session.url), state.get("title", session.title)


# ---------------------------------------------------------------- sessions


@router.get("/api/browser/sessions")
async def list_sessions(identity: Caller, mgr: Manager) -> dict[str, Any]:
    return {"sessions": [s.public() for s in mgr.list(identity.user_id)], "limits": mgr.stats()}


class SessionIn(BaseModel):
    # Shorter idle timeout for this session (bounded by BROWSER_IDLE_TIMEOUT_S).
    idle_timeout_s: int | None = Field(default=None, ge=1)


@router.post("/api/browser/session")
async def create_session(identity: Caller, mgr: Manager, body: SessionIn | None = None) -> dict[str, Any]:
    session = await mgr.create(identity.user_id, body.idle_timeout_s if body else None)
    return session.public()


@router.get("/api/browser/session/{session_id}")
async def get_session(session_id: str, identity: Caller, mgr: Manager) -> dict[str, Any]:
    return mgr.get(session_id, identity.user_id).public()


@router.delete("/api/browser/session/{session_id}")
async def close_session(session_id: str, identity: Caller, mgr: Manager) -> dict[str, Any]:
    session = mgr.sessions.get(session_id)
    if session is None or session.user_id != identity.user_id or session.state == "closed":
        raise HTTPException(404, "Browser session not found")
    await mgr.close(session)
    return {"session_id": session_id, "closed": True}


# ---------------------------------------------------------------- navigate / interact


@router.post("/api/browser/navigate")
async def navigate(body: NavigateIn, identity: Caller, mgr: Manager) -> dict[str, Any]:
    settings = _settings(mgr)
    await _vet(body.url, mgr)
    recreated = False
    if body.session_id:
        session = mgr.get(body.session_id, identity.user_id)
        if session.state == "crashed":
            await mgr.relaunch(session)
            recreated = True
        if body.idle_timeout_s:
            session.idle_timeout_s = min(body.idle_timeout_s, settings.browser_idle_timeout_s)
    else:
        session = await mgr.create(identity.user_id, body.idle_timeout_s)
    # How long to wait for "load" (and wait_for_*) after DOMContentLoaded, which the page load
    # timeout already bounds.
    wait = _wait_budget(settings, body.timeout_s, 10.0)

    def go(b: Browser) -> dict[str, Any]:
        b.navigate(body.url, body.wait_until, wait)
        if body.wait_for_selector:
            b.find(body.wait_for_selector, body.by, wait, "visible")
        if body.wait_for_text:
            b.wait(None, None, body.wait_for_text, False, wait)
        return {**b.state(), "status": b.nav_status()}

    since = time.monotonic()
    state = await mgr.run(session, go, _hard_timeout(settings, wait))
    blocked = await _check_landing(mgr, session, since, state)
    _remember(session, state)
    return {
        "session_id": session.id,
        "url": state["url"],
        "title": state["title"],
        "status": state["status"],
        "blocked_requests": blocked,
        "recreated": recreated,
    }


@router.post("/api/browser/interact")
async def interact(body: InteractIn, identity: Caller, mgr: Manager) -> dict[str, Any]:
    settings = _settings(mgr)
    session = mgr.get(body.session_id, identity.user_id)
    wait = _wait_budget(settings, body.timeout_s)
    a = body.action
    if a in ("click", "type", "select") and not body.selector:
        raise HTTPException(422, f"action {a!r} needs a `selector`")
    if a == "type" and body.text is None:
        raise HTTPException(422, "action 'type' needs `text`")
    if a == "press" and not (body.key or body.text):
        raise HTTPException(422, "action 'press' needs `key` (e.g. 'Enter')")
    if a == "evaluate":
        if not settings.browser_allow_eval:
            raise HTTPException(403, "The evaluate action is disabled on this server (BROWSER_ALLOW_EVAL)")
        if not body.script:
            raise HTTPException(422, "action 'evaluate' needs `script`")

    def act(b: Browser) -> dict[str, Any]:
        result: Any = None
        if a == "click":
            result = b.click(body.selector, body.by, wait)
        elif a == "type":
            b.type(body.selector, body.by, body.text, body.clear, wait)
        elif a == "press":
            b.press(body.key or body.text or "", body.selector, body.by, wait)
        elif a == "scroll":
            result = b.scroll(body.selector, body.by, body.x, body.y, body.to, wait)
        elif a == "select":
            result = b.select(body.selector, body.by, body.value, body.label, body.index, wait)
        elif a == "wait":
            result = b.wait(body.selector, body.by, body.text, body.visible, wait)
        elif a == "extract":
            result = b.extract(body.what, body.selector, body.by, settings.browser_max_extract_chars, wait)
        elif a == "back":
            b.back()
        elif a == "forward":
            b.forward()
        elif a == "evaluate":
            result = b.evaluate(body.script or "")
        return {**b.state(), "result": result}

    since = time.monotonic()
    state = await mgr.run(session, act, _hard_timeout(settings, wait))
    await _check_landing(mgr, session, since, state)
    _remember(session, state)
    return {
        "session_id": session.id,
        "ok": True,
        "url": state["url"],
        "title": state["title"],
        "result": state["result"],
    }


# ---------------------------------------------------------------- screenshots and analysis


async def _shot(mgr: SessionManager, session: Session, full_page: bool, selector: str | None, by: str | None) -> bytes:
    settings = _settings(mgr)
    wait = _wait_budget(settings, None)
    return await mgr.run(session, lambda b: b.screenshot(full_page, selector, by, wait), _hard_timeout(settings, wait))


@router.get("/api/browser/screenshot")
async def screenshot(
    identity: Caller,
    mgr: Manager,
    session_id: Annotated[str, Query(max_length=64)],
    full_page: bool = False,
    selector: Annotated[str | None, Query(max_length=2000)] = None,
    by: Annotated[Literal["css", "xpath"] | None, Query()] = None,
) -> Response:
    session = mgr.get(session_id, identity.user_id)
    png = await _shot(mgr, session, full_page, selector, by)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


_ocr_slots = asyncio.Semaphore(2)


@router.post("/api/screen-analyze")
async def screen_analyze(body: AnalyzeIn, identity: Caller, mgr: Manager) -> dict[str, Any]:
    settings = _settings(mgr)
    if bool(body.image) == bool(body.session_id):
        raise HTTPException(422, "send either `image` (base64) or `session_id`")
    if body.image:
        try:
            data = ocr.decode_base64_image(body.image, settings.screen_analyze_max_bytes)
        except ocr.ImageError as exc:
            raise HTTPException(exc.status, exc.message) from exc
        source = "image"
    else:
        session = mgr.get(body.session_id or "", identity.user_id)
        data = await _shot(mgr, session, body.full_page, None, None)
        source = "session"
    t0 = time.monotonic()
    want_description = bool(settings.screen_describe_model) and body.describe is not False
    if body.describe and not settings.screen_describe_model:
        raise HTTPException(400, "No vision model is configured on this server (SCREEN_DESCRIBE_MODEL)")
    describing = asyncio.ensure_future(_describe(settings, data)) if want_description else None
    try:
        async with _ocr_slots:
            result = await asyncio.to_thread(ocr.analyze, data, body.language or settings.ocr_language, 60)
    except ocr.ImageError as exc:
        if describing is not None:
            describing.cancel()
        raise HTTPException(exc.status, exc.message) from exc
    description, description_error = (await describing) if describing is not None else (None, None)
    out = {**result, "description": description, "source": source}
    if description_error:
        out["description_error"] = description_error
    out["duration_ms"] = round((time.monotonic() - t0) * 1000)
    return out


DESCRIBE_PROMPT = (
    "Describe this screenshot for someone who cannot see it: what application or page it shows, "
    "its main content, and the controls a user could act on. Be concise."
)


async def _describe(settings: Settings, image: bytes) -> tuple[str | None, str | None]:
    """(description, None) or (None, reason): a failing model never fails the OCR."""
    from harvis_common.llm import LLMError, create_llm_client

    timeout = settings.screen_describe_timeout_s
    try:
        client = create_llm_client(
            settings.screen_describe_provider,
            settings.screen_describe_url,
            read_timeout_s=timeout,
            request_timeout_s=timeout,
        )
    except ValueError as exc:
        return None, str(exc)
    message = {"role": "user", "content": DESCRIBE_PROMPT, "images": [base64.b64encode(image).decode()]}
    try:
        result = await asyncio.wait_for(client.chat([message], settings.screen_describe_model), timeout)
        return result.content.strip() or None, None
    except LLMError as exc:
        return None, str(exc)
    except TimeoutError:
        return None, f"the vision model did not answer within {timeout:g} s"
    finally:
        await client.close()
