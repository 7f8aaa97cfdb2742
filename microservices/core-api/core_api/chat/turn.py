"""One chat turn as Server-Sent Events: what POST /api/chat and /api/vision-chat stream
(api/routes/chat.py), per the contract.

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

An answer holding an `artifact` block (artifacts/convention.py; the system prompt asks for one
when the user wants a file) makes that artifact: its row is created (`generating`) before the
answer is saved, `complete` carries `artifact` ({id, type, title, status, download_url,
preview_url, both spellings}) and the assistant message keeps it in `metadata.artifact`; the
worker renders it. A block that can't be made is `artifact_error` in both instead.

With `use_knowledge_base` (the request's, else the user's preference), the user's knowledge base
is searched as that user (chat/knowledge.py: research-service's /api/rag/search); its relevant
excerpts, numbered one per document, follow the system prompt, and `complete` lists them in
`sources` ([{index, document, source, location, locations, ...}]) with `knowledge_base: {used,
hits, error}`; the assistant message keeps both in its metadata. A knowledge base that is down
or slow means no excerpts, never a failed turn.

The backend is the user's own when they stored an API key this server can use
(`provider_keys.py`: their key, maybe their URL), else the server's; a problem with their
key or URL is the turn's `error` event naming it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from harvis_common.diagnostics import sse_event
from harvis_common.llm import LLMError

from ..artifacts.convention import find_block, system_prompt
from ..artifacts.service import Artifacts
from ..auth.context import AuthUser
from ..store.artifacts import QuotaExceeded, summary
from ..store.chat import ChatStore, NewMessage, parse_session_id, title_from
from .backend import LLMBackend
from .knowledge import Grounding
from .metrics import TIME_TO_FIRST_TOKEN, TOKENS, TURNS, model_label
from .sse import HEARTBEAT

if TYPE_CHECKING:
    from ..api.schemas import ChatRequest

log = logging.getLogger("harvis.chat")

# How to find a user's backend: (their own key's or the server's, whether it is theirs).
BackendFor = Callable[[int], Awaitable[tuple[LLMBackend, bool]]]
# The turn's knowledge-base search for the question: the excerpts, or None when it is off.
KnowledgeSearch = Callable[[str], Awaitable[Grounding | None]]


def _context(
    settings: Any, history: list[dict[str, str]], artifacts: bool, grounding: Grounding | None = None
) -> list[dict[str, Any]]:
    limit = settings.chat_history_limit
    recent = history[-limit:] if limit else []
    prompt = system_prompt(settings.chat_system_prompt) if artifacts else settings.chat_system_prompt
    if grounding is not None and grounding.used:
        prompt = f"{prompt}\n\n{grounding.context()}" if prompt else grounding.context()
    system = [{"role": "system", "content": prompt}] if prompt else []
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
    artifacts: Artifacts | None = None,
    knowledge: KnowledgeSearch | None = None,
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
    grounded: dict[str, Any] = {}  # the knowledge base's sources and report, for every saved answer
    search: asyncio.Future[Grounding | None] | None = None
    start = time.perf_counter()
    outcome, first_piece = "interrupted", True  # for the metrics
    try:
        if knowledge is not None:  # meanwhile the backend is found and the user's message saved
            search = asyncio.ensure_future(knowledge(body.message))
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
            outcome = "error"
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
        grounding: Grounding | None = None
        if search is not None:
            while not search.done():  # bounded by CHAT_KB_TIMEOUT_S; the line kept alive meanwhile
                done, _ = await asyncio.wait({search}, timeout=settings.sse_heartbeat_s)
                if not done:
                    yield HEARTBEAT
            try:
                grounding = search.result()
            except Exception:  # the preference could not be read: the turn goes on without grounding
                log.exception("knowledge-base grounding failed")
        if grounding is not None:
            grounded = {"sources": grounding.sources, "knowledge_base": grounding.report()}
        messages = [*_context(settings, history, artifacts is not None, grounding), user_msg]

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
            if first_piece and (chunk.content or chunk.reasoning):
                first_piece = False
                TIME_TO_FIRST_TOKEN.labels(model_label(model)).observe(time.perf_counter() - start)
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
        metadata.update(grounded)
        artifact = await _make_artifact(artifacts, user.id, session_id, final_answer, metadata)
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
        event.update(grounded)
        if artifact is not None:
            event["artifact"] = artifact
            assert artifacts is not None
            await artifacts.store.link_message(user.id, artifact["id"], assistant["id"])
        elif "artifact_error" in metadata:
            event["artifact_error"] = metadata["artifact_error"]
        for kind in ("prompt", "completion"):
            TOKENS.labels(model_label(model), kind).inc(metadata[f"{kind}_tokens"] or 0)
        outcome = "complete"
        finished = True
        yield sse_event(event)
    except LLMError as exc:
        log.warning("chat failed", extra={"error": exc.message, "kind": exc.kind, "model": model})
        outcome = "error"
        finished = True
        if answer:
            _save_later(tasks, store, user.id, session_id, answer, reasoning, model, {"error": exc.message, **grounded})
        yield sse_event({"status": "error", "error": exc.message, "session_id": session_id})
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("chat failed unexpectedly")
        outcome = "error"
        finished = True
        yield sse_event({"status": "error", "error": "Something went wrong on our side", "session_id": session_id})
    finally:
        TURNS.labels(model_label(model), outcome).inc()
        if pending is not None and not pending.done():
            pending.cancel()  # closes the backend connection: generation stops
        if search is not None:
            if not search.done():
                search.cancel()
            elif not search.cancelled():
                search.exception()  # retrieved (a turn that ended before it was used): no warning
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
            _save_later(tasks, store, user.id, session_id, answer, reasoning, model, {"interrupted": True, **grounded})


async def _make_artifact(
    artifacts: Artifacts | None, user_id: int, session_id: str, answer: str, metadata: dict[str, Any]
) -> dict[str, Any] | None:
    """The artifact the answer's block asks for, created (`generating`) and put in `metadata`;
    or None, with `metadata.artifact_error` when the block can't be made."""
    if artifacts is None:
        return None
    request, problem = find_block(answer)
    if request is not None:
        try:
            artifact = summary(await artifacts.create(user_id, request, session_id))
        except QuotaExceeded:
            problem = "Artifact storage quota exceeded: delete some artifacts first"
        else:
            metadata["artifact"] = artifact
            return artifact
    if problem:
        metadata["artifact_error"] = problem
    return None


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
