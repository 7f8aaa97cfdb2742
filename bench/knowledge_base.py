#!/usr/bin/env python3
"""research-service's knowledge base: ingestion speed, a 20-page PDF's time to searchable,
hybrid search latency and the vector half's recall at scale.

    python3 bench/knowledge_base.py [--rows 100000] [--queries 100] [--docs 40] [--json]

- ingestion: `--docs` Markdown documents of ~5 chunks of ~1000 characters each, through
  `KnowledgeBase.ingest` as an upload or a job does it (chunking, all-MiniLM-L6-v2 in numpy,
  one transaction per document): chunks/s end to end.
- a 20-page PDF (one paragraph a page, a fact on page 17): upload path (`check_upload` +
  `ingest_upload`: pypdf, chunking, embedding, storing), then the search that finds it.
- search: `--rows` chunks with clustered 384-d vectors (bench/n8n.py's data) and word texts,
  in the service's own tables and indexes (HNSW m=16, ef_construction=64; GIN on the
  tsvector); `KnowledgeBase.search` (query embedding, vector and keyword halves, fusion)
  one at a time: p50/p90; recall@10 of the vector half against exact search (numpy).

In-process on the embedded PostgreSQL with pgvector (no gateway hop: bench/gateway.py
measures that, ~0.3 ms). Runs with research-service's venv and the tools venv's pgserver.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SVC = ROOT / "microservices" / "research-service"


def reexec_in_service_venv() -> None:
    if os.environ.get("HARVIS_BENCH_IN_VENV"):
        return
    sys.path.insert(0, str(ROOT / "scripts"))
    import fleet
    from fleet_services import by_name

    venv = fleet.service_venv(by_name("research-service"))
    env = {
        **os.environ,
        "HARVIS_BENCH_IN_VENV": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "microservices" / "common"), str(SVC), str(SVC / "tests")]),
    }
    sys.exit(subprocess.run([str(venv / "bin" / "python"), __file__, *sys.argv[1:]], env=env).returncode)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


WORDS = [
    "system",
    "storage",
    "network",
    "request",
    "cache",
    "index",
    "query",
    "server",
    "client",
    "token",
    "record",
    "backup",
    "restore",
    "cluster",
    "node",
    "replica",
    "volume",
    "policy",
    "account",
    "region",
    "latency",
    "throughput",
    "schedule",
    "deploy",
    "release",
    "monitor",
    "alert",
    "metric",
    "trace",
    "log",
    "error",
    "retry",
    "timeout",
    "queue",
    "worker",
    "job",
    "batch",
    "stream",
    "archive",
]


def paragraph(rng, n_words: int) -> str:
    words = [WORDS[i] for i in rng.integers(0, len(WORDS), n_words)]
    return " ".join(words).capitalize() + "."


async def bench_ingest(kb, docs: int) -> dict:
    import numpy as np

    from research_service.knowledge.base import sections_hash
    from research_service.knowledge.chunking import markdown_sections
    from research_service.store.documents import NewDocument

    rng = np.random.default_rng(3)
    texts = []
    for d in range(docs):
        parts = [f"# Document {d}"]
        for s in range(5):
            sentences = " ".join(paragraph(rng, 14) for _ in range(9))  # ~950 characters: one chunk
            parts.append(f"## Part {s}\n\n{sentences}")
        texts.append("\n\n".join(parts))
    await kb.embeddings.load()
    chunks = 0
    start = time.perf_counter()
    for d, text in enumerate(texts):
        sections = markdown_sections(text)
        doc = NewDocument("local_docs", None, f"bench://{d}", f"doc {d}", "text/markdown", len(text),
                          sections_hash(sections), sections)  # fmt: skip
        chunks += (await kb.ingest(doc)).chunks
    elapsed = time.perf_counter() - start
    return {"documents": docs, "chunks": chunks, "seconds": round(elapsed, 2),
            "chunks_per_s": round(chunks / elapsed, 2),
            "avg_chunk_chars": round(sum(len(t) for t in texts) / chunks)}  # fmt: skip


async def bench_pdf(kb) -> dict:
    import numpy as np
    from kb_files import make_pdf

    from research_service.knowledge.uploads import check_upload, ingest_upload

    rng = np.random.default_rng(5)
    pages = []
    for p in range(20):
        lines = [paragraph(rng, 12) for _ in range(14)]
        if p == 16:
            lines.insert(3, "The bench marker ORCHID-5521 sits on page seventeen.")
        pages.append(lines)
    data = make_pdf(pages)
    start = time.perf_counter()
    upload = check_upload("bench.pdf", data, 20_000_000)
    outcome = await ingest_upload(kb, 999_999, upload)
    stored = time.perf_counter() - start
    hits = await kb.search("ORCHID-5521", 999_999, 3)
    found = time.perf_counter() - start
    return {"pages": 20, "bytes": len(data), "chunks": outcome.chunks, "upload_s": round(stored, 2),
            "searchable_s": round(found, 2), "found_on": hits[0].location if hits else None}  # fmt: skip


async def fill(pool, rows: int, vectors) -> float:
    import numpy as np

    from research_service.store.documents import vector_literal

    rng = np.random.default_rng(11)
    doc = uuid.uuid4()
    await pool.execute(
        "INSERT INTO kb_documents (id, source, owner_id, uri, title, mime, content_hash, sections)"
        " VALUES ($1, 'python_docs', NULL, 'bench://big', 'big', 'text/plain', '', '[]')",
        doc,
    )
    async with pool.acquire() as conn:
        await conn.execute("DROP INDEX IF EXISTS kb_chunks_embedding")  # built once at the end: faster
        batch = 2000
        for start in range(0, rows, batch):
            n = min(batch, rows - start)
            texts = [" ".join(paragraph(rng, 15) for _ in range(10)) + f" item-{start + i}" for i in range(n)]
            await conn.execute(
                "INSERT INTO kb_chunks (document_id, source, owner_id, ord, location, text, content_hash, embedding)"
                " SELECT $1, 'python_docs', NULL, u.o, '', u.t, md5(u.t), u.v::vector"
                " FROM unnest($2::int[], $3::text[], $4::text[]) AS u(o, t, v)",
                doc,
                list(range(start, start + n)),
                texts,
                [vector_literal(v) for v in vectors[start : start + n]],
            )
        t = time.perf_counter()
        await conn.execute("SET maintenance_work_mem = '1GB'")
        await conn.execute(
            "CREATE INDEX kb_chunks_embedding ON kb_chunks USING hnsw (embedding vector_cosine_ops)", timeout=3600
        )
        build = time.perf_counter() - t
        await conn.execute("ANALYZE kb_chunks")
    return build


async def bench_search(kb, pool, rows: int, queries: int) -> dict:
    import numpy as np

    sys.path.insert(0, str(ROOT / "bench"))
    from n8n import make_data

    data, qs = make_data(rows, queries, "clustered")
    build_s = await fill(pool, rows, data)
    # The vector half alone, against exact search.
    base = await pool.fetchval(  # the big document's chunk ids follow its rows' order
        "SELECT min(c.id) FROM kb_chunks c JOIN kb_documents d ON d.id = c.document_id WHERE d.uri = 'bench://big'"
    )
    recalls, vec_ms = [], []
    for q in qs:
        t = time.perf_counter()
        got = await kb.documents.nearest(q.tolist(), 1, None, 10)
        vec_ms.append((time.perf_counter() - t) * 1000)
        ids = [cid for cid, _ in got]
        exact = np.argsort(-(data @ q))[:10]
        recalls.append(len({int(base + e) for e in exact} & set(ids)) / 10)
    # The whole search as the route runs it (query embedding, both halves, fusion).
    rng = np.random.default_rng(13)
    # Common words only, and half of them with a rare term too (a chunk's own "item-N").
    texts = [
        " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), 6)) + (f" item-{rng.integers(rows)}" if j % 2 else "")
        for j in range(queries)
    ]
    await kb.search(texts[0], 1, 10)
    full_ms = []
    parts: dict[str, list[float]] = {"embed": [], "vector": [], "keyword": []}
    for text in texts:
        t = time.perf_counter()
        await kb.search(text, 1, 10)
        full_ms.append((time.perf_counter() - t) * 1000)
    for text in texts:  # where the time goes
        t0 = time.perf_counter()
        (vec,) = await kb.embeddings.encode([text])
        t1 = time.perf_counter()
        await kb.documents.nearest(vec.tolist(), 1, None, 50)
        t2 = time.perf_counter()
        await kb.documents.keyword_matches(text, 1, None, 50)
        t3 = time.perf_counter()
        for name, a, b in (("embed", t0, t1), ("vector", t1, t2), ("keyword", t2, t3)):
            parts[name].append((b - a) * 1000)
    return {"rows": rows, "index_build_s": round(build_s, 1), "recall_at_10": round(float(np.mean(recalls)), 4),
            "vector_half_ms_p50": round(pct(vec_ms, 0.5), 2),
            "search_ms_p50": round(pct(full_ms, 0.5), 2), "search_ms_p90": round(pct(full_ms, 0.9), 2),
            "parts_ms_p50": {k: round(pct(v, 0.5), 2) for k, v in parts.items()}}  # fmt: skip


async def run(args: argparse.Namespace, dsn: str) -> dict:
    from harvis_common.db import create_pool, migrate
    from harvis_common.embeddings import LocalEmbeddings
    from research_service.knowledge.base import KnowledgeBase
    from research_service.settings import Settings

    pool = await create_pool(dsn, service="research-service", migrations=None)
    async with pool.acquire() as conn:
        await migrate(conn, "research-service", "research_service.migrations")
    kb = KnowledgeBase(Settings(database_url=dsn), pool, LocalEmbeddings())
    await kb.start()
    try:
        out = {"ingest": await bench_ingest(kb, args.docs)}
        print(json.dumps(out), file=sys.stderr, flush=True)
        out["pdf"] = await bench_pdf(kb)
        print(json.dumps(out["pdf"]), file=sys.stderr, flush=True)
        out["search"] = await bench_search(kb, pool, args.rows, args.queries)
        return out
    finally:
        await pool.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--docs", type=int, default=40)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    reexec_in_service_venv()
    sys.path.insert(0, str(ROOT / "scripts"))
    import fleet

    datadir = Path(tempfile.mkdtemp(prefix="kb-bench-", dir="/tmp"))
    os.chmod(datadir, 0o777)  # noqa: S103 - pgserver runs postgres as its own user
    try:
        dsn = fleet.start_embedded_postgres(fleet.tools_venv(), datadir)
        result = asyncio.run(run(args, dsn))
    finally:
        fleet.stop_embedded_postgres(datadir)
        shutil.rmtree(datadir, ignore_errors=True)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
