"""The knowledge base's documents and chunks in PostgreSQL (tables in migrations/), and the two
halves of its hybrid search: nearest vectors (pgvector's HNSW index) and keyword matches
(full-text, each query term weighted by its rarity, BM25's IDF).

Who sees what: a chunk is visible to a user when it is shared (`owner_id IS NULL`: web-doc and
local sources) or theirs (their uploads). Every query here takes the user and filters so.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from ..knowledge.chunking import Piece, Section

UPLOADS = "uploads"  # the source of users' uploaded documents
# Advisory locks (two-int form): the first int names what is locked, the second its key.
LOCK_UPLOADS = 0x6B6275  # "kbu": a user's uploads, while their limits are checked
KEYWORD_DF_CAP = 2000  # a term in more chunks than this is too common to rank by
SMALL_TABLE = 10_000  # chunks: below, document frequencies are counted, not taken from statistics
STATS_TTL_S = 60.0
EF_SEARCH = 100


class LimitReached(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class UploadLimits:
    max_documents: int
    max_bytes: int


@dataclass
class NewDocument:
    source: str
    owner_id: int | None
    uri: str
    title: str
    mime: str
    size_bytes: int
    content_hash: str
    sections: list[Section]


def vector_literal(values: Sequence[float]) -> str:
    return "[" + ",".join(f"{v:.7g}" for v in values) + "]"


def _visible(owner_param: str, sources_param: str) -> str:
    """The visibility filter on `c` (kb_chunks), with the given parameter numbers: constant SQL
    (the f-strings that include it carry no input; noqa S608 there)."""
    return (
        f"(c.owner_id IS NULL OR c.owner_id = {owner_param})"
        f" AND ({sources_param}::text[] IS NULL OR c.source = ANY({sources_param}::text[]))"
    )


def document_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "name": row["title"],
        "filename": row["title"],
        "source": row["source"],
        "mime_type": row["mime"],
        "size_bytes": row["size_bytes"],
        "chunks": row["chunk_count"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


class Documents:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.iterative_scan = False  # pgvector ≥ 0.8: filtered HNSW scans go on until k rows pass
        self._stats: tuple[dict[str, float], float] | None = None
        self._stats_at = 0.0

    async def start(self) -> None:
        version = await self.pool.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        major_minor = tuple(int(p) for p in str(version or "0.0").split(".")[:2])
        self.iterative_scan = major_minor >= (0, 8)

    # ------------------------------------------------------------ writing

    async def find(self, source: str, owner_id: int | None, uri: str) -> asyncpg.Record | None:
        return await self.pool.fetchrow(
            "SELECT id, content_hash, title, source, mime, size_bytes, chunk_count, created_at, updated_at"
            " FROM kb_documents WHERE source = $1 AND owner_id IS NOT DISTINCT FROM $2 AND uri = $3",
            source,
            owner_id,
            uri,
        )

    async def vectors_of(self, document_id: uuid.UUID) -> dict[str, str]:
        """The document's chunk vectors by content hash (text literals, reused as they are)."""
        rows = await self.pool.fetch(
            "SELECT content_hash, embedding::text AS v FROM kb_chunks WHERE document_id = $1", document_id
        )
        return {r["content_hash"]: r["v"] for r in rows}

    async def save(
        self,
        doc: NewDocument,
        pieces: list[Piece],
        vectors: dict[str, str],
        limits: UploadLimits | None = None,
    ) -> asyncpg.Record:
        """Insert or replace the document and all its chunks, in one transaction. With `limits`
        (an upload), the owner's document count and bytes are checked under a per-user lock
        first, so parallel uploads can't pass them together."""
        sections = json.dumps([{"location": s.location, "text": s.text, "heading": s.heading} for s in doc.sections])
        async with self.pool.acquire() as conn, conn.transaction():
            if limits is not None:
                await self._check_limits(conn, doc, limits)
            row = await conn.fetchrow(
                "INSERT INTO kb_documents (id, source, owner_id, uri, title, mime, size_bytes, content_hash,"
                " sections, chunk_count) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10)"
                " ON CONFLICT (source, owner_id, uri) DO UPDATE SET title = $5, mime = $6, size_bytes = $7,"
                " content_hash = $8, sections = $9::jsonb, chunk_count = $10, updated_at = now()"
                " RETURNING id, title, source, mime, size_bytes, chunk_count, created_at, updated_at,"
                " (xmax = 0) AS inserted",
                uuid.uuid4(),
                doc.source,
                doc.owner_id,
                doc.uri,
                doc.title,
                doc.mime,
                doc.size_bytes,
                doc.content_hash,
                sections,
                len(pieces),
            )
            await conn.execute("DELETE FROM kb_chunks WHERE document_id = $1", row["id"])
            await conn.execute(
                "INSERT INTO kb_chunks (document_id, source, owner_id, ord, location, text, content_hash, embedding)"
                " SELECT $1, $2, $3, u.ord, u.loc, u.txt, u.hash, u.vec::vector FROM"
                " unnest($4::int[], $5::text[], $6::text[], $7::text[], $8::text[]) AS u(ord, loc, txt, hash, vec)",
                row["id"],
                doc.source,
                doc.owner_id,
                list(range(len(pieces))),
                [p.location for p in pieces],
                [p.text for p in pieces],
                [p.content_hash for p in pieces],
                [vectors[p.content_hash] for p in pieces],
            )
        return row

    async def _check_limits(self, conn: asyncpg.Connection, doc: NewDocument, limits: UploadLimits) -> None:
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", LOCK_UPLOADS, str(doc.owner_id))
        count, used = await conn.fetchrow(
            "SELECT count(*), coalesce(sum(size_bytes), 0) FROM kb_documents"
            " WHERE source = $1 AND owner_id = $2 AND uri <> $3",
            UPLOADS,
            doc.owner_id,
            doc.uri,
        )
        if count >= limits.max_documents:
            raise LimitReached(
                409, f"You have {count} documents, the most the knowledge base keeps per user: delete some first"
            )
        if used + doc.size_bytes > limits.max_bytes:
            raise LimitReached(
                413,
                f"Your documents take {used:,} of your {limits.max_bytes:,} bytes: this one"
                f" ({doc.size_bytes:,} bytes) does not fit; delete some first",
            )

    # ------------------------------------------------------------ a user's uploads

    async def uploads(self, owner_id: int, limit: int, offset: int) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            "SELECT id, title, source, mime, size_bytes, chunk_count, created_at, updated_at FROM kb_documents"
            " WHERE source = $1 AND owner_id = $2 ORDER BY created_at DESC, id LIMIT $3 OFFSET $4",
            UPLOADS,
            owner_id,
            limit,
            offset,
        )

    async def usage(self, owner_id: int) -> tuple[int, int]:
        row = await self.pool.fetchrow(
            "SELECT count(*), coalesce(sum(size_bytes), 0) FROM kb_documents WHERE source = $1 AND owner_id = $2",
            UPLOADS,
            owner_id,
        )
        return int(row[0]), int(row[1])

    async def delete_upload(self, document_id: uuid.UUID, owner_id: int) -> bool:
        done = await self.pool.execute(
            "DELETE FROM kb_documents WHERE id = $1 AND source = $2 AND owner_id = $3", document_id, UPLOADS, owner_id
        )
        return done.endswith(" 1")

    async def clear(self, source: str, owner_id: int | None) -> int:
        """Every document of a source: a user's own (uploads) or the shared ones."""
        done = await self.pool.execute(
            "DELETE FROM kb_documents WHERE source = $1 AND owner_id IS NOT DISTINCT FROM $2", source, owner_id
        )
        return int(done.split()[-1])

    async def of_source(self, source: str, owner_id: int | None) -> list[asyncpg.Record]:
        """What a rebuild goes over: each document's uri, title, mime, size and sections."""
        return await self.pool.fetch(
            "SELECT id, uri, title, mime, size_bytes, sections FROM kb_documents"
            " WHERE source = $1 AND owner_id IS NOT DISTINCT FROM $2 ORDER BY created_at",
            source,
            owner_id,
        )

    async def delete(self, document_id: uuid.UUID) -> None:
        await self.pool.execute("DELETE FROM kb_documents WHERE id = $1", document_id)

    async def stats(self, owner_id: int) -> dict[str, tuple[int, int]]:
        """Per source the user sees: (documents, chunks)."""
        rows = await self.pool.fetch(
            "SELECT source, count(*) AS docs, coalesce(sum(chunk_count), 0) AS chunks FROM kb_documents"
            " WHERE owner_id IS NULL OR owner_id = $1 GROUP BY source",
            owner_id,
        )
        return {r["source"]: (int(r["docs"]), int(r["chunks"])) for r in rows}

    async def totals(self) -> tuple[int, int]:
        row = await self.pool.fetchrow(
            "SELECT (SELECT count(*) FROM kb_documents), (SELECT coalesce(sum(chunk_count), 0) FROM kb_documents)"
        )
        return int(row[0]), int(row[1])

    # ------------------------------------------------------------ search

    async def nearest(
        self, vector: Sequence[float], owner_id: int, sources: list[str] | None, limit: int
    ) -> list[tuple[int, float]]:
        """(chunk id, cosine similarity), nearest first (HNSW: approximate)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(f"SET LOCAL hnsw.ef_search = {max(EF_SEARCH, limit)}")
            if self.iterative_scan:
                await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            rows = await conn.fetch(
                "SELECT id, 1 - dist AS sim FROM (SELECT c.id, c.embedding <=> $1::vector AS dist FROM kb_chunks c"  # noqa: S608
                f" WHERE {_visible('$2', '$3')} ORDER BY dist LIMIT $4) s ORDER BY dist",
                vector_literal(vector),
                owner_id,
                sources,
                limit,
            )
        return [(r["id"], float(r["sim"])) for r in rows]

    async def _common_terms(self) -> tuple[dict[str, float], float]:
        """PostgreSQL's statistics of `kb_chunks.tsv` (ANALYZE, autovacuum keeps them): its most
        common lexemes with the share of chunks holding each, and the number of chunks — so
        a common word's document frequency costs nothing to know. Kept STATS_TTL_S."""
        now = time.monotonic()
        if self._stats is not None and now - self._stats_at < STATS_TTL_S:
            return self._stats
        row = await self.pool.fetchrow(
            "SELECT (SELECT reltuples FROM pg_class WHERE oid = 'kb_chunks'::regclass) AS n, s.elems, s.freqs"
            " FROM (SELECT NULL) AS one LEFT JOIN (SELECT most_common_elems::text::text[] AS elems,"
            "   most_common_elem_freqs AS freqs FROM pg_stats WHERE schemaname = current_schema()"
            "   AND tablename = 'kb_chunks' AND attname = 'tsv') AS s ON true"
        )
        n = float(row["n"] or 0)
        if n < SMALL_TABLE:  # no statistics worth the name yet: count
            n = float(await self.pool.fetchval("SELECT count(*) FROM kb_chunks"))
        common = dict(zip(row["elems"] or [], row["freqs"] or [], strict=False)) if n >= SMALL_TABLE else {}
        self._stats, self._stats_at = (common, n), now
        return self._stats

    async def keyword_matches(
        self, query: str, owner_id: int, sources: list[str] | None, limit: int
    ) -> tuple[list[tuple[int, float, int]], int]:
        """(chunk id, score, terms it matched) best first, and how many of the query's terms ranked.

        The query's terms are its lexemes as PostgreSQL's English configuration makes them
        (the same as the chunks' `tsv`); each weighs its IDF, ln(1 + (N − df + ½)/(df + ½)),
        times ts_rank of the chunk for it (term frequency, damped by length). A rare identifier
        or error code outweighs any number of common words; terms in more than KEYWORD_DF_CAP
        chunks are left to the vector half. A common term's df comes from the table's
        statistics; the others' are counted (cheap through the GIN index: they are rare)."""
        common, total = await self._common_terms()
        lexemes = await self.pool.fetchval(
            "SELECT coalesce(array_agg(DISTINCT l), '{}')"
            " FROM unnest(tsvector_to_array(to_tsvector('english', $1))) AS l",
            query,
        )
        df = {lex: common[lex] * total for lex in lexemes if lex in common}
        rare = [lex for lex in lexemes if lex not in df]
        if rare:
            rows = await self.pool.fetch(
                "SELECT t.l, (SELECT count(*) FROM (SELECT 1 FROM kb_chunks c"  # noqa: S608
                f"   WHERE c.tsv @@ quote_literal(t.l)::tsquery AND {_visible('$2', '$3')}"
                f"   LIMIT {KEYWORD_DF_CAP + 1}) s) AS n FROM unnest($1::text[]) AS t(l)",
                rare,
                owner_id,
                sources,
            )
            df.update({r["l"]: float(r["n"]) for r in rows})
        n = max([total, 1.0, *df.values()])
        used = {lex: math.log(1 + (n - d + 0.5) / (d + 0.5)) for lex, d in df.items() if 1 <= d <= KEYWORD_DF_CAP}
        if not used:
            return [], 0
        rows = await self.pool.fetch(
            "SELECT c.id, sum(t.idf * ts_rank(c.tsv, t.q, 1)) AS score, count(*) AS matched"  # noqa: S608
            " FROM (SELECT quote_literal(u.l)::tsquery AS q, u.idf"
            "   FROM unnest($1::text[], $2::float8[]) AS u(l, idf)) AS t"
            f" JOIN kb_chunks c ON c.tsv @@ t.q WHERE {_visible('$3', '$4')}"
            " GROUP BY c.id ORDER BY score DESC, c.id LIMIT $5",
            list(used),
            list(used.values()),
            owner_id,
            sources,
            limit,
        )
        return [(r["id"], float(r["score"]), int(r["matched"])) for r in rows], len(used)

    async def chunks(self, ids: list[int]) -> dict[int, asyncpg.Record]:
        rows = await self.pool.fetch(
            "SELECT c.id, c.text, c.location, c.source, c.document_id, d.title, d.uri"
            " FROM kb_chunks c JOIN kb_documents d ON d.id = c.document_id WHERE c.id = ANY($1::bigint[])",
            ids,
        )
        return {r["id"]: r for r in rows}
