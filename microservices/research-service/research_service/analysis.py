"""Fact-checking a claim and comparing topics, each from web research: the prompts, reading
the model's verdict, and one source numbering across the compared topics.

Model errors (`LLMError`) are raised as they come: the routes answer them as HTTP errors."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .research import Research, Researcher, no_results_answer

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

COMPARE_SYSTEM = (
    "You are a research analyst. Compare the topics using only the numbered web sources given: "
    "similarities, differences and a short conclusion. Cite facts as [n]. Where the sources say "
    "nothing about a topic, say so instead of guessing."
)
NOTHING_TO_COMPARE = "I found no web sources for any of these topics, so I cannot compare them."


def now() -> str:
    return datetime.now(UTC).isoformat()


# ---------------------------------------------------------------- fact-check


@dataclass
class FactCheck:
    verdict: str
    confidence: float
    analysis: str
    sources: list[dict[str, Any]]
    model: str
    timestamp: str


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


async def check_claim(
    researcher: Researcher, claim: str, requested_model: str | None, *, max_sources: int, max_tokens: int | None
) -> FactCheck:
    """The claim judged from the web; without sources, unverifiable (and no model call)."""
    model = await researcher.pick_model(requested_model)
    research = await researcher.research(claim, max_sources)
    if not research.sources:
        return FactCheck("unverifiable", 0.0, no_results_answer(claim), [], model, now())
    messages = [
        {"role": "system", "content": FACT_SYSTEM},
        {"role": "user", "content": f"Claim: {claim}\n\nWeb sources:\n{research.context()}"},
    ]
    result = await researcher.llm.chat(messages, model, temperature=0.1, max_tokens=max_tokens)
    verdict, confidence, analysis = parse_verdict(result.content, bool(research.sources))
    return FactCheck(verdict, confidence, analysis, research.public_sources(), result.model or model, now())


# ---------------------------------------------------------------- comparative research


@dataclass
class Comparison:
    sources: list[dict[str, Any]] = field(default_factory=list)  # numbered from 1 across the topics
    individual: dict[str, Any] = field(default_factory=dict)  # per topic: its sources and excerpts
    blocks: list[str] = field(default_factory=list)  # per topic: its excerpts under the common numbers
    analysis: str = ""
    model: str = ""
    timestamp: str = ""


def merge_topics(topics: list[str], researches: list[Research]) -> Comparison:
    """One numbering across topics, so the comparison's [n] map to `sources`."""
    out = Comparison()
    sources = out.sources
    for topic, research in zip(topics, researches, strict=True):
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
        out.individual[topic] = {
            "query": topic,
            "sources": [next(x for x in sources if x["index"] == n) | {} for n in topic_sources],
            "sources_found": len(topic_sources),
            "key_excerpts": [e[:600] for e in excerpts[:3]],
            "errors": research.errors,
        }
        out.blocks.append(f"## {topic}\n" + ("\n\n".join(excerpts) if excerpts else "(no sources found)"))
    return out


async def compare_topics(
    researcher: Researcher, topics: list[str], requested_model: str | None, *, max_sources: int, max_tokens: int | None
) -> Comparison:
    """Each topic researched on its own (at once), then the model compares them from all the sources."""
    model = await researcher.pick_model(requested_model)
    per_topic = max(2, max_sources // 2 + 1)
    researches = await asyncio.gather(*(researcher.research(t, per_topic) for t in topics))
    out = merge_topics(topics, list(researches))
    out.model = model
    if not out.sources:
        out.analysis = NOTHING_TO_COMPARE
    else:
        messages = [
            {"role": "system", "content": COMPARE_SYSTEM},
            {"role": "user", "content": f"Topics: {', '.join(topics)}\n\nWeb sources:\n" + "\n\n".join(out.blocks)},
        ]
        result = await researcher.llm.chat(messages, model, temperature=0.3, max_tokens=max_tokens)
        out.analysis = result.content.strip()
    out.timestamp = now()
    return out
