"""The research pipeline: search (cached) → fetch and extract pages (cached) → rank chunks
→ a prompt whose excerpts carry source numbers, so the answer can cite `[n]`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from harvis_common.llm import LLMClient, ModelPicker

from .fetch import Page, PageFetcher
from .providers import SearchEngine, SearchResult, domain_of
from .rank import Chunk, best_chunks
from .store.cache import cache_key

Progress = Callable[[dict[str, Any]], Awaitable[None]]

MODELS_TTL_S = 30.0
KNOWLEDGE_BASE = "knowledge_base"  # a source's `source` when it is an excerpt of the user's knowledge base

SYSTEM_PROMPT = (
    "You are Harvis, a research assistant. Answer the user's question using only the numbered "
    "web sources given. Cite every fact with its source number in square brackets, like [1] or "
    "[2][3]. If the sources do not answer the question, say so plainly; never invent facts or sources."
)
# When excerpts of the user's own knowledge base are among the sources.
GROUNDED_PROMPT = (
    "You are Harvis, a research assistant. Answer the user's question using only the numbered "
    "sources given: excerpts of the user's own documents (their knowledge base) and web pages. "
    "Cite every fact with its source number in square brackets, like [1] or [2][3]. If the "
    "sources do not answer the question, say so plainly; never invent facts or sources."
)


@dataclass
class Research:
    query: str
    results: list[SearchResult] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)  # numbered from 1, what the answer cites
    chunks: list[Chunk] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def grounded(self) -> bool:
        """Whether excerpts of the user's knowledge base are among the sources."""
        return any(s.get("source") == KNOWLEDGE_BASE for s in self.sources)

    def context(self) -> str:
        """The excerpts, grouped by source, each under its number."""
        parts = []
        for src in self.sources:
            texts = [c.text for c in self.chunks if c.source == src["index"]]
            if not texts:
                continue
            where = src["url"] or f"the user's knowledge base: {src.get('kb_source', '')}"
            parts.append(f"[{src['index']}] {src['title']} ({where})\n" + "\n…\n".join(texts))
        return "\n\n".join(parts)

    def add_knowledge(self, hits: list[Any]) -> None:
        """Knowledge-base hits (`knowledge.base.Hit`, best first) as numbered sources after the
        web's: one source per document, its excerpts (with their page or heading) under it."""
        by_doc: dict[str, dict[str, Any]] = {}
        for hit in hits:
            src = by_doc.get(hit.document_id)
            if src is None:
                src = by_doc[hit.document_id] = {
                    "index": len(self.sources) + 1,
                    "title": hit.document,
                    "url": "",
                    "domain": "",
                    "snippet": hit.text[:300],
                    "source": KNOWLEDGE_BASE,
                    "kb_source": hit.source,
                    "document": hit.document,
                    "document_id": hit.document_id,
                    "locations": [],
                    "relevance_score": round(hit.score, 6),
                    "fetched": True,
                    "author": None,
                    "date": None,
                }
                self.sources.append(src)
            if hit.location and hit.location not in src["locations"]:
                src["locations"].append(hit.location)
            text = f"({hit.location}) {hit.text}" if hit.location else hit.text
            self.chunks.append(Chunk(src["index"], text, hit.score))

    def public_sources(self) -> list[dict[str, Any]]:
        """The numbered sources as the API answers them (copies)."""
        return [dict(s) for s in self.sources]


class Researcher:
    def __init__(
        self,
        engine: SearchEngine,
        fetcher: PageFetcher,
        cache: Any,
        llm: LLMClient,
        *,
        default_model: str = "",
        max_chunks: int = 8,
    ) -> None:
        self.engine = engine
        self.fetcher = fetcher
        self.cache = cache
        self.llm = llm
        self.default_model = default_model
        self.max_chunks = max_chunks
        self.picker = ModelPicker(llm, default_model, MODELS_TTL_S)

    # -------------------------------------------------------------- search + read

    async def search(self, query: str, max_results: int) -> tuple[list[SearchResult], list[str]]:
        names = ",".join(p.name for p in self.engine.providers)
        key = cache_key("search", names, " ".join(query.lower().split()), str(max_results))
        cached = await self.cache.get(key)
        if cached is not None:
            return [SearchResult(**r) for r in cached], []
        results, errors = await self.engine.search(query, max_results)
        if results:
            await self.cache.set(key, [r.as_dict() for r in results])
        return results, errors

    async def extract(self, results: list[SearchResult]) -> tuple[list[dict[str, Any]], list[str]]:
        """The results' pages, fetched and extracted: (their contents, why some could not be read)."""
        extracted: list[dict[str, Any]] = []
        errors: list[str] = []
        pages = await self.fetcher.fetch_many([r.url for r in results])
        for r, page in zip(results, pages, strict=True):
            if page.ok:
                extracted.append(
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
        return extracted, errors

    async def research(self, query: str, max_sources: int, progress: Progress | None = None) -> Research:
        start = time.perf_counter()

        async def emit(event: dict[str, Any]) -> None:
            if progress is not None:
                await progress(event)

        out = Research(query=query)
        await emit({"status": "researching", "type": "search_query", "query": query})
        out.results, out.errors = await self.search(query, max_sources)
        for r in out.results:
            await emit(
                {
                    "status": "researching",
                    "type": "search_result",
                    "query": query,
                    "title": r.title,
                    "url": r.url,
                    "domain": domain_of(r.url),
                    "snippet": r.snippet[:300],
                }
            )
        for r in out.results:
            await emit(
                {"status": "researching", "type": "reading", "query": query, "title": r.title, "url": r.url,
                 "domain": domain_of(r.url)}
            )  # fmt: skip
        out.pages = await self.fetcher.fetch_many([r.url for r in out.results])
        documents: list[tuple[int, str]] = []
        for r, page in zip(out.results, out.pages, strict=True):
            if page.blocked:
                out.errors.append(f"{r.url}: {page.error}")
                continue  # a hostile URL is never a source, not even by its snippet
            text = page.content if page.ok else r.snippet
            if not text:
                continue
            n = len(out.sources) + 1
            out.sources.append(
                {
                    "index": n,
                    "title": page.title or r.title,
                    "url": r.url,
                    "domain": domain_of(r.url),
                    "snippet": r.snippet,
                    "source": r.source,
                    "relevance_score": r.relevance_score,
                    "fetched": page.ok,
                    "author": page.author,
                    "date": page.date,
                }
            )
            documents.append((n, text))
            if not page.ok and page.error:
                out.errors.append(f"{r.url}: {page.error}")
        out.chunks = best_chunks(query, documents, self.max_chunks)
        out.elapsed_s = round(time.perf_counter() - start, 3)
        return out

    # -------------------------------------------------------------- the model

    async def pick_model(self, requested: str | None) -> str:
        return (await self.picker.pick(requested))[0]

    @staticmethod
    def messages(
        question: str, research: Research, history: list[dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        system = GROUNDED_PROMPT if research.grounded else SYSTEM_PROMPT
        msgs: list[dict[str, Any]] = [{"role": "system", "content": system}]
        for m in (history or [])[-10:]:
            if m.get("role") in ("user", "assistant") and isinstance(m.get("content"), str):
                msgs.append({"role": m["role"], "content": m["content"][:4000]})
        msgs.append(
            {
                "role": "user",
                "content": f"Question: {question}\n\n{'Sources' if research.grounded else 'Web sources'}:\n"
                f"{research.context()}\n\n"
                "Answer the question from these sources, citing them as [n].",
            }
        )
        return msgs


def no_results_answer(query: str) -> str:
    return (
        f'I searched the web for "{query}" but found no sources I could use, so I cannot give a '
        "researched answer. Try rephrasing the question or searching again later."
    )
