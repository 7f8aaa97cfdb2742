"""POST /api/web-search, /api/research/sources, /api/research-chat (SSE), /api/fact-check,
/api/comparative-research.

Each counts against the caller's research turns (`quotas.py`) once its input is valid and
before any search: over the quota, a JSON 429 + Retry-After (research chat: before its
stream starts)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, StringConstraints, field_validator

from harvis_common.core_client import CoreClient, CoreClientError
from harvis_common.diagnostics import SSE_HEADERS, sse_event
from harvis_common.identity import current_identity
from harvis_common.internal_auth import HEADER, Identity
from harvis_common.llm import LLMError
from harvis_common.quotas import QUOTA_RESPONSES

from .quotas import charge_turns
from .research import Research, Researcher, no_results_answer

log = logging.getLogger("research.routes")

router = APIRouter(tags=["research"])

Caller = Annotated[Identity, Depends(current_identity)]
MAX_QUERY = 2000
# A query, message or claim: surrounding blanks dropped, and then not empty.
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_QUERY)]


def _researcher(request: Request) -> Researcher:
    return request.app.state.researcher


def _history(request: Request) -> CoreClient:
    return request.app.state.history


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _public_sources(research: Research) -> list[dict[str, Any]]:
    return [dict(s) for s in research.sources]


def _llm_error(exc: LLMError) -> HTTPException:
    return HTTPException(exc.status, exc.message)


# ---------------------------------------------------------------- /api/web-search


class WebSearchRequest(BaseModel):
    query: Text
    max_results: int = Field(default=5, ge=1, le=20)
    extract_content: bool = False


@router.post("/api/web-search", responses=QUOTA_RESPONSES)
async def web_search(body: WebSearchRequest, identity: Caller, request: Request) -> dict[str, Any]:
    await charge_turns(request, identity)
    researcher = _researcher(request)
    results, errors = await researcher.search(body.query, body.max_results)
    out: dict[str, Any] = {
        "query": body.query,
        "search_results": [r.as_dict() for r in results],
        "extracted_content": [],
    }
    if body.extract_content and results:
        pages = await researcher.fetcher.fetch_many([r.url for r in results])
        for r, page in zip(results, pages, strict=True):
            if page.ok:
                out["extracted_content"].append(
                    {
                        "url": r.url,
                        "final_url": page.final_url,
                        "title": page.title or r.title,
                        "content": page.content,
                        "author": page.author,
                        "date": page.date,
                        "sitename": page.sitename,
                        "description": page.description,
                        "word_count": len(page.content.split()),
                    }
                )
            else:
                errors.append(f"{r.url}: {page.error}")
    out["errors"] = errors
    return out


# ---------------------------------------------------------------- /api/research/sources


class SourcesRequest(BaseModel):
    query: Text
    max_sources: int | None = Field(default=None, ge=1, le=20)


@router.post("/api/research/sources", responses=QUOTA_RESPONSES)
async def research_sources(body: SourcesRequest, identity: Caller, request: Request) -> dict[str, Any]:
    """The research step alone — search, read, rank — for a caller that writes its own answer
    (voice's mic-chat in research mode): numbered sources and the excerpts under their numbers,
    ready to cite as [n]. A turn of the user's, whoever calls for them."""
    await charge_turns(request, identity)
    settings = request.app.state.settings
    research = await _researcher(request).research(body.query, body.max_sources or settings.research_max_sources)
    return {
        "query": body.query,
        "sources": _public_sources(research),
        "context": research.context(),
        "errors": research.errors,
        "elapsed_s": research.elapsed_s,
    }


# ---------------------------------------------------------------- /api/research-chat


class HistoryItem(BaseModel):
    role: str = Field(max_length=32)
    content: str | None = Field(default="", max_length=100_000)


class ResearchChatRequest(BaseModel):
    message: Text
    history: list[HistoryItem] = Field(default_factory=list, max_length=500)
    model: str | None = Field(default=None, max_length=200)
    session_id: str | None = Field(default=None, max_length=64)
    enableWebSearch: bool = True
    temperature: float | None = Field(default=None, ge=0, le=2)
    # Accepted like /api/chat's, not used here.
    attachments: list[Any] | None = None
    text_only: bool | None = None
    low_vram: bool | None = None
    tts_engine: str | None = Field(default=None, max_length=100)


async def _research_events(body: ResearchChatRequest, request: Request, token: str) -> AsyncIterator[bytes]:
    researcher = _researcher(request)
    settings = request.app.state.settings
    question = body.message
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    yield sse_event({"status": "starting", "message": "Starting research"})
    try:
        model = await researcher.pick_model(body.model)
    except LLMError as exc:
        yield sse_event({"status": "error", "error": exc.message})
        return

    research = Research(query=question)
    if body.enableWebSearch:
        yield sse_event({"status": "searching", "query": question, "message": f"Searching the web for: {question}"})
        task = asyncio.create_task(researcher.research(question, settings.research_max_sources, queue.put))
        try:
            while not task.done() or not queue.empty():
                getter = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    yield sse_event(getter.result())
                else:
                    getter.cancel()
            research = task.result()
        except BaseException:  # an error, or the client went away (cancellation): stop the research too
            task.cancel()
            raise
        if not research.sources:
            answer = no_results_answer(question)
            yield sse_event({"status": "streaming", "content": answer})
            async for ev in _finish(body, request, token, question, answer, "", model, research):
                yield ev
            return

    messages = researcher.messages(
        question, research, [h.model_dump() for h in body.history]
    ) if research.sources else [  # no web search asked for: the model alone
        {"role": "system", "content": "You are Harvis, a helpful AI assistant."},
        *[{"role": h.role, "content": h.content or ""} for h in body.history if h.role in ("user", "assistant")],
        {"role": "user", "content": question},
    ]  # fmt: skip
    answer, reasoning = [], []
    try:
        async for chunk in researcher.llm.chat_stream(
            messages, model, temperature=body.temperature, max_tokens=settings.chat_max_tokens or None
        ):
            if chunk.reasoning:
                reasoning.append(chunk.reasoning)
            if chunk.content:
                answer.append(chunk.content)
                yield sse_event({"status": "streaming", "content": chunk.content})
    except LLMError as exc:
        yield sse_event({"status": "error", "error": exc.message})
        return
    async for ev in _finish(
        body, request, token, question, "".join(answer).strip(), "".join(reasoning).strip(), model, research
    ):
        yield ev


async def _finish(
    body: ResearchChatRequest,
    request: Request,
    token: str,
    question: str,
    answer: str,
    reasoning: str,
    model: str,
    research: Research,
) -> AsyncIterator[bytes]:
    sources = _public_sources(research)
    session_id = body.session_id
    try:
        saved = await _history(request).save_exchange(
            token,
            session_id=body.session_id,
            user_message={"content": question, "model_used": model},
            assistant_message={
                "content": answer,
                "reasoning": reasoning or None,
                "model_used": model,
                "metadata": {"research": True, "sources": [{"title": s["title"], "url": s["url"]} for s in sources]},
            },
        )
        session_id = saved["session_id"]
    except CoreClientError as exc:
        log.warning("research chat not saved to history: %s", exc)
    history = [{"role": h.role, "content": h.content or ""} for h in body.history]
    history += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    event: dict[str, Any] = {
        "status": "complete",
        "response": answer,
        "final_answer": answer,
        "history": history,
        "sources": sources,
        "sources_found": len(sources),
        "session_id": session_id,
        "model": model,
        "search_query": question,
    }
    if reasoning:
        event["reasoning"] = reasoning
    yield sse_event(event)


@router.post("/api/research-chat", responses=QUOTA_RESPONSES)
async def research_chat(body: ResearchChatRequest, identity: Caller, request: Request) -> StreamingResponse:
    await charge_turns(request, identity)  # before the stream: over the quota is a JSON 429
    token = request.headers.get(HEADER, "")

    async def events() -> AsyncIterator[bytes]:
        try:
            async for ev in _research_events(body, request, token):
                yield ev
        except asyncio.CancelledError:
            raise
        except Exception:  # the stream is open: the failure must be an event, not a broken body
            log.exception("research chat failed")
            yield sse_event({"status": "error", "error": "Research failed on our side"})

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)


# ---------------------------------------------------------------- /api/fact-check

VERDICTS = ("supported", "refuted", "mixed", "unverifiable")
_VERDICT = re.compile(r"^\s*VERDICT:\s*(supported|refuted|mixed|unverifiable)\b", re.I | re.M)
_CONFIDENCE = re.compile(r"^\s*CONFIDENCE:\s*([01](?:\.\d+)?)\b", re.I | re.M)
_ANALYSIS = re.compile(r"^\s*ANALYSIS:\s*", re.I | re.M)

FACT_SYSTEM = (
    "You are a careful fact-checker. Judge the claim only from the numbered web sources given. "
    "Reply in exactly this form:\n"
    "VERDICT: <supported | refuted | mixed | unverifiable>\n"
    "CONFIDENCE: <a number from 0 to 1>\n"
    "ANALYSIS: <a short analysis citing the evidence as [n]>"
)


class FactCheckRequest(BaseModel):
    claim: Text
    model: str | None = Field(default=None, max_length=200)


def parse_verdict(text: str, has_sources: bool) -> tuple[str, float, str]:
    """(verdict, confidence, analysis) from the model's reply; unparseable → unverifiable."""
    m = _VERDICT.search(text)
    verdict = m.group(1).lower() if m else "unverifiable"
    c = _CONFIDENCE.search(text)
    confidence = float(c.group(1)) if c else (0.5 if m else 0.2)
    confidence = max(0.0, min(1.0, confidence))
    a = _ANALYSIS.search(text)
    analysis = text[a.end() :].strip() if a else text.strip()
    if not has_sources:
        verdict, confidence = "unverifiable", 0.0
    return verdict, round(confidence, 2), analysis


@router.post("/api/fact-check", responses=QUOTA_RESPONSES)
async def fact_check(body: FactCheckRequest, identity: Caller, request: Request) -> dict[str, Any]:
    await charge_turns(request, identity)
    researcher = _researcher(request)
    settings = request.app.state.settings
    try:
        model = await researcher.pick_model(body.model)
    except LLMError as exc:
        raise _llm_error(exc) from exc
    research = await researcher.research(body.claim, settings.research_max_sources)
    if not research.sources:
        return {
            "claim": body.claim,
            "verdict": "unverifiable",
            "confidence": 0.0,
            "analysis": no_results_answer(body.claim),
            "sources": [],
            "model_used": model,
            "timestamp": _now(),
        }
    messages = [
        {"role": "system", "content": FACT_SYSTEM},
        {"role": "user", "content": f"Claim: {body.claim}\n\nWeb sources:\n{research.context()}"},
    ]
    try:
        result = await researcher.llm.chat(
            messages, model, temperature=0.1, max_tokens=settings.chat_max_tokens or None
        )
    except LLMError as exc:
        raise _llm_error(exc) from exc
    verdict, confidence, analysis = parse_verdict(result.content, bool(research.sources))
    return {
        "claim": body.claim,
        "verdict": verdict,
        "confidence": confidence,
        "analysis": analysis,
        "sources": _public_sources(research),
        "model_used": result.model or model,
        "timestamp": _now(),
    }


# ---------------------------------------------------------------- /api/comparative-research

COMPARE_SYSTEM = (
    "You are a research analyst. Compare the topics using only the numbered web sources given: "
    "similarities, differences and a short conclusion. Cite facts as [n]. Where the sources say "
    "nothing about a topic, say so instead of guessing."
)


class CompareRequest(BaseModel):
    topics: list[Annotated[str, Field(min_length=1, max_length=500)]] = Field(min_length=2, max_length=5)
    model: str | None = Field(default=None, max_length=200)

    @field_validator("topics")
    @classmethod
    def _topics(cls, v: list[str]) -> list[str]:
        topics = [t.strip() for t in v if t.strip()]
        if len(set(t.lower() for t in topics)) < 2:
            raise ValueError("give at least two different topics")
        return topics


@router.post("/api/comparative-research", responses=QUOTA_RESPONSES)
async def comparative_research(body: CompareRequest, identity: Caller, request: Request) -> dict[str, Any]:
    await charge_turns(request, identity, len(body.topics))  # each topic is researched on its own
    researcher = _researcher(request)
    settings = request.app.state.settings
    try:
        model = await researcher.pick_model(body.model)
    except LLMError as exc:
        raise _llm_error(exc) from exc
    per_topic = max(2, settings.research_max_sources // 2 + 1)
    researches = await asyncio.gather(*(researcher.research(t, per_topic) for t in body.topics))
    # One numbering across topics, so the comparison's [n] map to `sources`.
    sources: list[dict[str, Any]] = []
    blocks: list[str] = []
    individual: dict[str, Any] = {}
    for topic, research in zip(body.topics, researches, strict=True):
        renumber: dict[int, int] = {}
        topic_sources = []
        for s in research.sources:
            key = s["url"]
            existing = next((x for x in sources if x["url"] == key), None)
            if existing is None:
                existing = {**s, "index": len(sources) + 1, "topics": [topic]}
                sources.append(existing)
            elif topic not in existing["topics"]:
                existing["topics"].append(topic)
            renumber[s["index"]] = existing["index"]
            topic_sources.append(existing["index"])
        excerpts = []
        for c in research.chunks:
            n = renumber.get(c.source)
            if n is not None:
                excerpts.append(f"[{n}] {c.text}")
        individual[topic] = {
            "query": topic,
            "sources": [next(x for x in sources if x["index"] == n) | {} for n in topic_sources],
            "sources_found": len(topic_sources),
            "key_excerpts": [e[:600] for e in excerpts[:3]],
            "errors": research.errors,
        }
        blocks.append(f"## {topic}\n" + ("\n\n".join(excerpts) if excerpts else "(no sources found)"))
    if not sources:
        analysis = "I found no web sources for any of these topics, so I cannot compare them."
    else:
        messages = [
            {"role": "system", "content": COMPARE_SYSTEM},
            {"role": "user", "content": f"Topics: {', '.join(body.topics)}\n\nWeb sources:\n" + "\n\n".join(blocks)},
        ]
        try:
            result = await researcher.llm.chat(
                messages, model, temperature=0.3, max_tokens=settings.chat_max_tokens or None
            )
        except LLMError as exc:
            raise _llm_error(exc) from exc
        analysis = result.content.strip()
    return {
        "topics": body.topics,
        "individual_research": individual,
        "comparative_analysis": analysis,
        "sources": sources,
        "model_used": model,
        "timestamp": _now(),
    }
