"""POST /api/chat and /api/vision-chat: SSE per the contract.

Order of events: headers and `starting` at once (before the database or the
model is touched: the front end's bridge re-POSTs after 30 s without headers);
the user's message is saved (creating the session) before the model is
called, so the session is listed by the time `complete` is sent; `streaming`
events carry the answer's pieces, `: heartbeat` comments keep the line alive
while the model loads; the stream ends with exactly one `complete` or `error`.

A client that disconnects mid-answer cancels the model call (the backend
connection is closed, so it stops generating). History stays consistent: the
user's message is already saved, and the partial answer, if any, is saved as
an assistant message with `metadata.interrupted = true`. A session id that is
missing or someone else's starts a new session (its id is in `complete`).

The backend is the user's own when they stored an API key this server can use
(`provider_keys.py`: their key, maybe their URL), else the server's; a problem with their
key or URL is the turn's `error` event naming it.

Each turn counts against the user's `CHAT_TURNS_PER_HOUR` (`quotas.py`) once the
request is valid and before the stream starts: over it, a JSON 429 + `Retry-After`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, field_validator

from harvis_common.diagnostics import sse_event
from harvis_common.llm import LLMError
from harvis_common.quotas import QUOTA_RESPONSES, charge

from ..auth.context import AuthUser
from ..auth.dependencies import current_user
from ..pg_input import PgText
from .backend import LLMBackend
from .provider_keys import backend_for
from .quotas import CHAT_TURNS
from .sse import HEARTBEAT, SSEResponse
from .store import ChatStore, NewMessage, parse_session_id, title_from

log = logging.getLogger("harvis.chat")

router = APIRouter(tags=["chat"])

MAX_MESSAGE_CHARS = 100_000
MAX_IMAGES = 8
MAX_IMAGE_B64_CHARS = 20 * 1024 * 1024


class HistoryItem(BaseModel):
    # Lenient: the front end's history may carry other roles or null content; only
    # user/assistant turns are sent to the model.
    role: str = Field(max_length=32)
    content: str | None = Field(default="", max_length=MAX_MESSAGE_CHARS)


class ChatRequest(BaseModel):
    message: PgText = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    history: list[HistoryItem] = Field(default_factory=list, max_length=500)
    model: str | None = Field(default=None, max_length=200)
    session_id: str | None = Field(default=None, max_length=64)
    attachments: list[Any] | None = None  # accepted, not used
    text_only: bool | None = None
    low_vram: bool | None = None
    tts_engine: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("message must not be empty")
        return value


class VisionChatRequest(ChatRequest):
    images: list[str] = Field(min_length=1, max_length=MAX_IMAGES)
    message: PgText = Field(default="Describe this image.", max_length=MAX_MESSAGE_CHARS)

    @field_validator("images")
    @classmethod
    def _base64(cls, images: list[str]) -> list[str]:
        out = []
        for i, image in enumerate(images):
            raw = image.split(",", 1)[1] if image.startswith("data:") and "," in image else image
            raw = "".join(raw.split())
            if not raw or len(raw) > MAX_IMAGE_B64_CHARS:
                raise ValueError(f"image {i}: empty or larger than 15 MB")
            try:
                base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ValueError(f"image {i}: not valid base64") from exc
            out.append(raw)
        return out


BackendFor = Callable[[int], Awaitable[tuple[LLMBackend, bool]]]


def chat_state(request: Request) -> tuple[ChatStore, BackendFor, set[asyncio.Task[Any]]]:
    """The store, how to find a user's backend (their own key's, or the server's), and the
    background tasks."""
    state = request.app.state
    return state.chat_store, functools.partial(backend_for, state), state.background_tasks


User = Annotated[AuthUser, Depends(current_user)]


@router.post("/api/chat", responses=QUOTA_RESPONSES)
async def chat(body: ChatRequest, user: User, request: Request) -> SSEResponse:
    # The turn is counted before the stream starts, so over the quota is a JSON 429, not an SSE error.
    await charge(request.app.state.chat_quotas, user.id, CHAT_TURNS)
    store, backends, tasks = chat_state(request)
    settings = request.app.state.chat_settings
    return SSEResponse(
        chat_events(store, backends, tasks, settings, user, body, images=None, preferred=settings.default_model)
    )


@router.post("/api/vision-chat", responses=QUOTA_RESPONSES)
async def vision_chat(body: VisionChatRequest, user: User, request: Request) -> SSEResponse:
    await charge(request.app.state.chat_quotas, user.id, CHAT_TURNS)  # one quota with /api/chat
    store, backends, tasks = chat_state(request)
    settings = request.app.state.chat_settings
    return SSEResponse(
        chat_events(store, backends, tasks, settings, user, body, images=body.images, preferred=settings.vision_model)
    )


def _context(settings: Any, history: list[dict[str, str]]) -> list[dict[str, Any]]:
    limit = settings.chat_history_limit
    recent = history[-limit:] if limit else []
    system = [{"role": "system", "content": settings.chat_system_prompt}] if settings.chat_system_prompt else []
    return system + [{"role": h["role"], "content": h["content"]} for h in recent]


async def chat_events(
    store: ChatStore,
    backends: BackendFor,
    tasks: set[asyncio.Task[Any]],
    settings: Any,
    user: AuthUser,
    body: ChatRequest,
    *,
    images: list[str] | None,
    preferred: str,
) -> AsyncIterator[bytes]:
    yield sse_event({"status": "starting", "message": "Processing your message"})

    session_id: str | None = None
    answer: list[str] = []
    reasoning: list[str] = []
    model = body.model or ""
    finished = False
    pending: asyncio.Future[Any] | None = None
    stream: Any = None
    llm: LLMBackend | None = None
    owned = False  # a client made for this user's own key: closed when the turn ends
    start = time.perf_counter()
    try:
        llm, owned = await backends(user.id)
        input_type = "screen" if images else "text"
        meta: dict[str, Any] = {"images": len(images)} if images else {}
        try:
            resolved = await llm.resolve(body.model, preferred)
            model = resolved.model
        except LLMError as exc:
            resolved = None
            model_error: LLMError | None = exc
        else:
            model_error = None
        saved = await store.add_messages(
            user.id,
            body.session_id,
            [NewMessage("user", body.message, input_type=input_type, metadata=meta, model_used=model or None)],
            create_title=title_from(body.message),
            model_used=model or None,
        )
        assert saved is not None
        session, _ = saved
        session_id = session["id"]
        if model_error is not None:
            yield sse_event({"status": "error", "error": model_error.message, "session_id": session_id})
            finished = True
            return

        history = [
            {"role": h.role, "content": h.content or ""} for h in body.history if h.role in ("user", "assistant")
        ]
        if not history and parse_session_id(body.session_id) == parse_session_id(session_id):
            prior = await store.recent_messages(user.id, session_id, settings.chat_history_limit + 1)
            history = [{"role": m["role"], "content": m["content"]} for m in prior[:-1]]
        user_msg: dict[str, Any] = {"role": "user", "content": body.message}
        if images:
            user_msg["images"] = images
        messages = [*_context(settings, history), user_msg]

        assert resolved is not None
        if resolved.fallback and body.model:
            log.info("unknown model, using default", extra={"requested": body.model, "model": model})
        stream = llm.client.chat_stream(
            messages, model, temperature=body.temperature, max_tokens=settings.chat_max_tokens or None
        ).__aiter__()
        last: Any = None
        while True:
            if pending is None:
                pending = asyncio.ensure_future(stream.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=settings.sse_heartbeat_s)
            if not done:
                yield HEARTBEAT
                continue
            try:
                chunk = pending.result()
            except StopAsyncIteration:
                pending = None
                break
            pending = None
            last = chunk
            if chunk.reasoning:
                reasoning.append(chunk.reasoning)
            if chunk.content:
                answer.append(chunk.content)
                yield sse_event({"status": "streaming", "content": chunk.content})

        final_answer = "".join(answer)
        final_reasoning = "".join(reasoning)
        elapsed = time.perf_counter() - start
        metadata: dict[str, Any] = {
            "elapsed_s": round(elapsed, 3),
            "completion_tokens": getattr(last, "completion_tokens", None),
            "prompt_tokens": getattr(last, "prompt_tokens", None),
            "done_reason": getattr(last, "done_reason", None),
        }
        if resolved.fallback and body.model:
            metadata["requested_model"] = body.model
        saved = await store.add_messages(
            user.id,
            session_id,
            [NewMessage("assistant", final_answer, final_reasoning or None, model, input_type, metadata)],
            model_used=model,
        )
        assert saved is not None
        _, (assistant,) = saved
        history_out = [*history, {"role": "user", "content": body.message}]
        history_out.append({"role": "assistant", "content": final_answer})
        event: dict[str, Any] = {
            "status": "complete",
            "history": history_out,
            "session_id": session_id,
            "message_id": assistant["id"],
            "final_answer": final_answer,
            "model": model,
        }
        if final_reasoning:
            event["reasoning"] = final_reasoning
        finished = True
        yield sse_event(event)
    except LLMError as exc:
        log.warning("chat failed", extra={"error": exc.message, "kind": exc.kind, "model": model})
        finished = True
        if answer:
            _save_later(tasks, store, user.id, session_id, answer, reasoning, model, {"error": exc.message})
        yield sse_event({"status": "error", "error": exc.message, "session_id": session_id})
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("chat failed unexpectedly")
        finished = True
        yield sse_event({"status": "error", "error": "Something went wrong on our side", "session_id": session_id})
    finally:
        if pending is not None and not pending.done():
            pending.cancel()  # closes the backend connection: generation stops
        closers: list[Callable[[], Awaitable[Any]]] = []
        if stream is not None and (pending is None or pending.done()):
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                closers.append(aclose)
        if owned and llm is not None:
            closers.append(llm.close)  # after the stream: its connection lives in this client
        if closers:
            tasks.add(t := asyncio.ensure_future(_close_all(closers)))
            t.add_done_callback(tasks.discard)
        if not finished and session_id is not None and answer:
            _save_later(tasks, store, user.id, session_id, answer, reasoning, model, {"interrupted": True})


async def _close_all(closers: list[Callable[[], Awaitable[Any]]]) -> None:
    for close in closers:
        try:
            await close()
        except Exception:
            log.exception("could not close the model stream")


def _save_later(
    tasks: set[asyncio.Task[Any]],
    store: ChatStore,
    user_id: int,
    session_id: str | None,
    answer: list[str],
    reasoning: list[str],
    model: str,
    metadata: dict[str, Any],
) -> None:
    """Save a partial answer from a `finally` that may be running under cancellation."""
    if session_id is None:
        return

    async def save() -> None:
        try:
            await store.add_messages(
                user_id,
                session_id,
                [NewMessage("assistant", "".join(answer), "".join(reasoning) or None, model, "text", metadata)],
                model_used=model or None,
                create_if_missing=False,
            )
        except Exception:
            log.exception("could not save a partial answer")

    task = asyncio.ensure_future(save())
    tasks.add(task)
    task.add_done_callback(tasks.discard)
