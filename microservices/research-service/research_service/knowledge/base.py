"""The knowledge base: one document in (extracted sections → chunks → vectors → stored), and
the hybrid search out.

Ingesting: a document whose extracted text is unchanged (same content hash) is left as it
is; a changed one is chunked again and only its new chunks are embedded (an unchanged chunk
keeps its vector); the document and all its chunks are replaced in one transaction, so a
search never sees half of one. Chunking and embedding run in worker threads.

Searching: the query's vector against the chunks' (pgvector HNSW, cosine) and its terms
against their full text (IDF-weighted, `Documents.keyword_matches`), fused by reciprocal rank
(RRF, k = 60): a chunk high in either list ranks high, one high in both ranks highest — so an
error code is found by its letters and a paraphrase by its meaning.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from harvis_common.embeddings import LocalEmbeddings

from ..settings import Settings
from ..store.documents import Documents, NewDocument, UploadLimits, vector_literal
from ..store.jobs import Jobs
from .chunking import CHUNK_CHARS, OVERLAP_CHARS, Piece, chunk_sections
from .extract import Limits

RRF_K = 60
CANDIDATES = 50  # from each half of the search, before fusion
# Keyword matches scoring below this share of the best one are left out of the fusion: a chunk
# with only the query's common words ("error") must not ride on the rare ones ("QX-7731").
KEYWORD_FLOOR = 0.3
# A hit counts as relevant to a chat question (grounding) when its vector is this close, or it
# contains at least half of the question's ranked terms.
MIN_SIMILARITY = 0.35


@dataclass
class Hit:
    chunk_id: int
    text: str
    source: str
    document: str
    document_id: str
    location: str
    score: float
    similarity: float | None = None
    keyword_score: float | None = None
    terms_matched: float = 0.0  # the share of the query's ranked terms the chunk contains

    def view(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "source": self.source,
            "document": self.document,
            "document_id": self.document_id,
            "location": self.location,
            "score": round(self.score, 6),
            "similarity": None if self.similarity is None else round(self.similarity, 4),
            "terms_matched": round(self.terms_matched, 4),
        }


@dataclass
class Outcome:
    """What ingesting one document did: added, updated or unchanged; its chunks, and how many
    of them needed a new vector."""

    status: str
    document: asyncpg.Record | None
    chunks: int = 0
    embedded: int = 0
    duplicate: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def sections_hash(sections: list[Any]) -> str:
    body = json.dumps([[s.location, s.text] for s in sections], ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()


class KnowledgeBase:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, embeddings: LocalEmbeddings) -> None:
        self.settings = settings
        self.pool = pool
        self.embeddings = embeddings
        self.documents = Documents(pool)
        self.jobs = Jobs(pool)
        self.limits = Limits(
            max_bytes=settings.rag_max_upload_bytes,
            max_pdf_pages=settings.rag_max_pdf_pages,
            max_docx_unpacked_bytes=settings.rag_max_docx_unpacked_bytes,
        )
        self.upload_limits = UploadLimits(
            max_documents=settings.rag_max_documents_per_user, max_bytes=settings.rag_max_storage_bytes_per_user
        )

    async def start(self) -> None:
        await self.documents.start()

    def describe(self) -> dict[str, Any]:
        return {
            "embedding_model": self.embeddings.name,
            "dimensions": self.embeddings.dim,
            "chunk_chars": CHUNK_CHARS,
            "chunk_overlap_chars": OVERLAP_CHARS,
            "search": "hybrid: pgvector HNSW (cosine) + PostgreSQL full text (IDF-weighted), reciprocal rank fusion",
        }

    # ------------------------------------------------------------ ingesting

    async def ingest(
        self,
        doc: NewDocument,
        *,
        force: bool = False,
        limits: UploadLimits | None = None,
        phase: Any = None,
    ) -> Outcome:
        """Store `doc` (its sections) with its chunks. `force` chunks it again even when its
        text is unchanged (a rebuild); `limits` are an upload's per-user limits; `phase` is
        awaited with the current step's name (a job's progress)."""

        async def step(name: str) -> None:
            if phase is not None:
                await phase(name)

        existing = await self.documents.find(doc.source, doc.owner_id, doc.uri)
        if existing is not None and existing["content_hash"] == doc.content_hash and not force:
            return Outcome("unchanged", existing, chunks=existing["chunk_count"], duplicate=True)
        await step("chunking")
        pieces: list[Piece] = await asyncio.to_thread(chunk_sections, doc.sections, model=self.embeddings.name)
        vectors = await self.documents.vectors_of(existing["id"]) if existing is not None else {}
        todo = list({p.content_hash: p for p in pieces if p.content_hash not in vectors}.values())
        if todo:
            await step("embedding")
            encoded = await self.embeddings.encode([p.embed_text for p in todo])
            vectors.update({p.content_hash: vector_literal(v) for p, v in zip(todo, encoded, strict=True)})
        await step("storing")
        row = await self.documents.save(doc, pieces, vectors, limits)
        return Outcome("added" if row["inserted"] else "updated", row, chunks=len(pieces), embedded=len(todo))

    # ------------------------------------------------------------ searching

    async def search(self, query: str, owner_id: int, k: int, sources: list[str] | None = None) -> list[Hit]:
        (vector,) = await self.embeddings.encode([query])
        nearest = await self.documents.nearest(vector.tolist(), owner_id, sources, max(CANDIDATES, k))
        keyword, terms = await self.documents.keyword_matches(query, owner_id, sources, max(CANDIDATES, k))
        if keyword:
            keyword = [m for m in keyword if m[1] >= KEYWORD_FLOOR * keyword[0][1]]
        return await self._fuse(nearest, keyword, terms, k)

    async def _fuse(
        self, nearest: list[tuple[int, float]], keyword: list[tuple[int, float, int]], terms: int, k: int
    ) -> list[Hit]:
        fused: dict[int, float] = {}
        for ranked in (nearest, keyword):
            for rank, (cid, *_) in enumerate(ranked, start=1):
                fused[cid] = fused.get(cid, 0.0) + 1.0 / (RRF_K + rank)
        best = sorted(fused, key=lambda cid: (-fused[cid], cid))[:k]
        rows = await self.documents.chunks(best)
        sims = dict(nearest)
        kws = {cid: (score, matched) for cid, score, matched in keyword}
        return [
            Hit(
                chunk_id=cid,
                text=rows[cid]["text"],
                source=rows[cid]["source"],
                document=rows[cid]["title"],
                document_id=str(rows[cid]["document_id"]),
                location=rows[cid]["location"],
                score=fused[cid],
                similarity=sims.get(cid),
                keyword_score=kws[cid][0] if cid in kws else None,
                terms_matched=kws[cid][1] / terms if cid in kws and terms else 0.0,
            )
            for cid in best
            if cid in rows  # deleted meanwhile
        ]

    async def relevant(self, query: str, owner_id: int, k: int) -> list[Hit]:
        """The hits worth putting in front of a model for `query`: close in meaning
        (MIN_SIMILARITY), or found by the query's rarer terms."""
        hits = await self.search(query, owner_id, k)
        return [h for h in hits if (h.similarity or 0.0) >= MIN_SIMILARITY or h.terms_matched >= 0.5]
