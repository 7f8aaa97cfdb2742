"""mic-chat's conversation side: the LLM (harvis_common.llm), answering from the model alone
or from web sources (research mode, `research.py`). The chat history is read and written with
harvis_common.core_client (core-api's internal history API)."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Any

from harvis_common.core_client import CoreClient, CoreClientError
from harvis_common.llm import LLMClient, ModelPicker, client_from_settings

from .engines import Transcript
from .research import Findings, ResearchUnavailable, WebResearch
from .settings import Settings

log = logging.getLogger("voice.chat")

SYSTEM_PROMPT = (
    "You are Harvis, a helpful voice assistant. The user spoke to you; answer in a few clear "
    "sentences that read well aloud (no tables, no code blocks, no markdown)."
)
RESEARCH_PROMPT = (
    "You are Harvis, a helpful voice assistant. The user spoke to you and you searched the web. "
    "Answer using only the numbered web sources given, in a few clear sentences that read well "
    "aloud (no tables, no code blocks, no markdown). Cite each fact with its source number in "
    "square brackets, like [1]. If the sources do not answer the question, say so plainly; never "
    "invent facts or sources."
)
CONTEXT_MESSAGES = 20
RESEARCH_FAILED = "Web research failed ({reason}): this answer comes from the model alone."
NO_SOURCES = "The web search found no usable sources: this answer comes from the model alone."
NO_ANSWER = "(The model gave no answer.)"
_CITATION = re.compile(r"\s*\[[1-9]\d?\](?:\s*\[[1-9]\d?\])*")


def speakable(answer: str) -> str:
    """The answer as it is read aloud: `[n]` citations are for the eye, not the ear."""
    return _CITATION.sub("", answer).strip()


MODELS_TTL_S = 30.0


class Conversation:
    """Picks the model and asks the LLM."""

    def __init__(self, settings: Settings, llm: LLMClient | None = None) -> None:
        self.settings = settings
        self.llm = llm or client_from_settings(settings)
        self.picker = ModelPicker(self.llm, settings.default_model, MODELS_TTL_S)

    async def pick_model(self, requested: str | None) -> str:
        return (await self.picker.pick(requested))[0]

    async def answer(
        self, history: list[dict[str, Any]], text: str, model: str, findings: Findings | None = None
    ) -> tuple[str, str, str]:
        """(answer, reasoning, model used); from `findings`' sources when there are any."""
        if findings is not None and findings.context:
            system = RESEARCH_PROMPT
            question = (
                f"Question: {text}\n\nWeb sources:\n{findings.context}\n\n"
                "Answer the question from these sources, citing them as [n]."
            )
        else:
            system, question = SYSTEM_PROMPT, text
        messages = [{"role": "system", "content": system}]
        messages += [{"role": m["role"], "content": m.get("content") or ""} for m in history]
        messages.append({"role": "user", "content": question})
        result = await self.llm.chat(messages, model, max_tokens=self.settings.chat_max_tokens or None)
        return result.content.strip(), result.reasoning.strip(), result.model

    async def close(self) -> None:
        await self.llm.close()


@dataclass
class Reply:
    """The model's answer to what the user said, and what it was given."""

    history: list[dict[str, Any]]  # the session's earlier user/assistant turns
    answer: str
    reasoning: str
    model: str
    findings: Findings | None  # the web sources answered from (research mode)
    notice: str | None  # why a research-mode answer comes from the model alone


async def earlier_turns(core: CoreClient, token: str, session_id: str | None) -> list[dict[str, Any]]:
    """The session's earlier user/assistant turns; none when it can't be read (the answer still stands)."""
    if not session_id:
        return []
    try:
        return await core.recent(token, session_id, CONTEXT_MESSAGES)
    except CoreClientError as exc:
        log.warning("could not read chat history", extra={"error": str(exc)})
        return []


async def web_sources(research: WebResearch, token: str, text: str, wanted: bool) -> tuple[Findings | None, str | None]:
    """(findings, notice): sources to answer from in research mode, or why there are none."""
    if not wanted:
        return None, None
    try:
        findings = await research.find(token, text)
    except ResearchUnavailable as exc:
        return None, RESEARCH_FAILED.format(reason=exc)
    if not findings.sources or not findings.context:
        return None, NO_SOURCES
    return findings, None


async def reply(
    conversation: Conversation,
    core: CoreClient,
    research: WebResearch,
    token: str,
    text: str,
    *,
    model: str | None,
    session_id: str | None,
    research_mode: bool,
) -> Reply:
    """The answer to `text` in the session's context, from web sources in research mode.
    The model's errors (`LLMError`) are raised."""
    history, (findings, notice) = await asyncio.gather(
        earlier_turns(core, token, session_id), web_sources(research, token, text, research_mode)
    )
    used_model = await conversation.pick_model(model)
    answer, reasoning, used_model = await conversation.answer(history, text, used_model, findings)
    return Reply(history, answer or NO_ANSWER, reasoning, used_model, findings, notice)


async def save_turn(
    core: CoreClient,
    token: str,
    session_id: str | None,
    transcript: Transcript,
    text: str,
    turn: Reply,
    *,
    research_mode: bool,
    audio_path: str | None,
) -> tuple[dict[str, Any], str | None]:
    """Both messages saved to the user's chat history (`input_type: "voice"`): (core-api's
    answer, None), or ({}, why not) — the answer stands either way."""
    meta = {"transcription": text, "language": transcript.language, "duration": round(transcript.duration, 3)}
    try:
        saved = await core.save_exchange(
            token,
            session_id=session_id,
            user_message={"content": text, "input_type": "voice", "metadata": meta, "model_used": turn.model},
            assistant_message={
                "content": turn.answer,
                "reasoning": turn.reasoning or None,
                "model_used": turn.model,
                "input_type": "voice",
                "metadata": {
                    "audio_path": audio_path,
                    "research_mode": research_mode,
                    "research": turn.findings is not None,
                    "sources": turn.findings.cited() if turn.findings else [],
                },
            },
        )
    except CoreClientError as exc:
        log.warning("could not save mic-chat to the chat history", extra={"error": str(exc)})
        return {}, str(exc)
    return saved, None
