"""Research chat: one turn as a stream of events — the research's progress as it happens,
the answer as the model writes it (from the numbered sources, or from the model alone when
web search is off and the knowledge base has nothing), then the exchange saved to the user's
chat history (core-api's internal history API) and a closing event with the sources.

With `use_knowledge_base`, the user's knowledge base is searched too: its relevant excerpts
join the numbered sources after the web's (one source per document, with the page or heading
of each excerpt), and the closing event lists them like the web's."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from harvis_common.core_client import CoreClient, CoreClientError
from harvis_common.llm import LLMError

from .research import Research, Researcher, no_results_answer

log = logging.getLogger("research.chat")

Event = dict[str, Any]
# The knowledge base's relevant hits for the question, or why there are none.
KnowledgeSearch = Callable[[str], Awaitable[tuple[list[Any], str | None]]]


async def chat_turn(
    researcher: Researcher,
    history_api: CoreClient,
    token: str,
    *,
    question: str,
    history: list[dict[str, Any]],
    requested_model: str | None,
    session_id: str | None,
    web_search: bool,
    temperature: float | None,
    max_sources: int,
    max_tokens: int | None,
    knowledge: KnowledgeSearch | None = None,
) -> AsyncIterator[Event]:
    """The turn's events. `token` is this request's X-Internal-Auth, sent back to core-api to
    save the exchange for the same user; `history` the earlier `{role, content}` messages;
    `knowledge` searches the user's knowledge base (when the request asked for it)."""
    queue: asyncio.Queue[Event] = asyncio.Queue()

    yield {"status": "starting", "message": "Starting research"}
    try:
        model = await researcher.pick_model(requested_model)
    except LLMError as exc:
        yield {"status": "error", "error": exc.message}
        return

    research = Research(query=question)
    kb_report: dict[str, Any] | None = None
    if knowledge is not None:
        hits, problem = await knowledge(question)
        research.add_knowledge(hits)
        kb_report = {"used": bool(hits), "hits": len(hits), "error": problem}
    if web_search:
        yield {"status": "searching", "query": question, "message": f"Searching the web for: {question}"}
        task = asyncio.create_task(researcher.research(question, max_sources, queue.put))
        try:
            while not task.done() or not queue.empty():
                getter = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    yield getter.result()
                else:
                    getter.cancel()
            web = task.result()
        except BaseException:  # an error, or the client went away (cancellation): stop the research too
            task.cancel()
            raise
        research = _merge(web, research)
        if not research.sources:
            answer = no_results_answer(question)
            yield {"status": "streaming", "content": answer}
            yield await _finish(
                history_api, token, session_id, history, question, answer, "", model, research, kb_report
            )
            return

    if research.sources:
        messages = researcher.messages(question, research, history)
    else:  # no web search asked for and nothing from the knowledge base: the model alone
        messages = [
            {"role": "system", "content": "You are Harvis, a helpful AI assistant."},
            *[
                {"role": h["role"], "content": h["content"] or ""}
                for h in history
                if h["role"] in ("user", "assistant")
            ],
            {"role": "user", "content": question},
        ]
    answer, reasoning = [], []
    try:
        async for chunk in researcher.llm.chat_stream(messages, model, temperature=temperature, max_tokens=max_tokens):
            if chunk.reasoning:
                reasoning.append(chunk.reasoning)
            if chunk.content:
                answer.append(chunk.content)
                yield {"status": "streaming", "content": chunk.content}
    except LLMError as exc:
        yield {"status": "error", "error": exc.message}
        return
    yield await _finish(
        history_api,
        token,
        session_id,
        history,
        question,
        "".join(answer).strip(),
        "".join(reasoning).strip(),
        model,
        research,
        kb_report,
    )


def _merge(web: Research, knowledge: Research) -> Research:
    """The web's research with the knowledge base's sources numbered after its own."""
    offset = len(web.sources)
    for src in knowledge.sources:
        web.sources.append({**src, "index": src["index"] + offset})
    for chunk in knowledge.chunks:
        web.chunks.append(type(chunk)(chunk.source + offset, chunk.text, chunk.score))
    return web


async def _finish(
    history_api: CoreClient,
    token: str,
    session_id: str | None,
    history: list[dict[str, Any]],
    question: str,
    answer: str,
    reasoning: str,
    model: str,
    research: Research,
    kb_report: dict[str, Any] | None = None,
) -> Event:
    """Save the exchange (a failure is logged: the answer still stands); the closing event."""
    sources = research.public_sources()
    try:
        saved = await history_api.save_exchange(
            token,
            session_id=session_id,
            user_message={"content": question, "model_used": model},
            assistant_message={
                "content": answer,
                "reasoning": reasoning or None,
                "model_used": model,
                "metadata": {
                    "research": True,
                    "sources": [
                        {"title": s["title"], "url": s["url"]}
                        | ({"document": s["document"], "locations": s["locations"]} if "document" in s else {})
                        for s in sources
                    ],
                },
            },
        )
        session_id = saved["session_id"]
    except CoreClientError as exc:
        log.warning("research chat not saved to history: %s", exc)
    turns = [{"role": h["role"], "content": h["content"] or ""} for h in history]
    turns += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    event: Event = {
        "status": "complete",
        "response": answer,
        "final_answer": answer,
        "history": turns,
        "sources": sources,
        "sources_found": len(sources),
        "session_id": session_id,
        "model": model,
        "search_query": question,
    }
    if kb_report is not None:
        event["knowledge_base"] = kb_report
    if reasoning:
        event["reasoning"] = reasoning
    return event
