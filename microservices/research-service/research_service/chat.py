"""Research chat: one turn as a stream of events — the research's progress as it happens,
the answer as the model writes it (from the numbered sources, or from the model alone when
web search is off), then the exchange saved to the user's chat history (core-api's internal
history API) and a closing event with the sources."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from harvis_common.core_client import CoreClient, CoreClientError
from harvis_common.llm import LLMError

from .research import Research, Researcher, no_results_answer

log = logging.getLogger("research.chat")

Event = dict[str, Any]


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
) -> AsyncIterator[Event]:
    """The turn's events. `token` is this request's X-Internal-Auth, sent back to core-api to
    save the exchange for the same user; `history` the earlier `{role, content}` messages."""
    queue: asyncio.Queue[Event] = asyncio.Queue()

    yield {"status": "starting", "message": "Starting research"}
    try:
        model = await researcher.pick_model(requested_model)
    except LLMError as exc:
        yield {"status": "error", "error": exc.message}
        return

    research = Research(query=question)
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
            research = task.result()
        except BaseException:  # an error, or the client went away (cancellation): stop the research too
            task.cancel()
            raise
        if not research.sources:
            answer = no_results_answer(question)
            yield {"status": "streaming", "content": answer}
            yield await _finish(history_api, token, session_id, history, question, answer, "", model, research)
            return

    if research.sources:
        messages = researcher.messages(question, research, history)
    else:  # no web search asked for: the model alone
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
    )


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
                "metadata": {"research": True, "sources": [{"title": s["title"], "url": s["url"]} for s in sources]},
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
    if reasoning:
        event["reasoning"] = reasoning
    return event
