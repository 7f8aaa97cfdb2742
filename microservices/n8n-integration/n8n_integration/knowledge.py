"""The workflow knowledge base: example workflows with embeddings in pgvector.

Seeded at start-up from `n8n_integration/examples/*.json` (re-embedded when an example
or the model changes); queried by cosine distance through an HNSW index. The text
embedded for a workflow is its description, name and node types, so a sentence such as
"post to slack when a form arrives" lands next to the example that does that.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol

import asyncpg

from .validation import validate_workflow


class Embeddings(Protocol):
    name: str
    dim: int

    async def embed(self, texts: list[str]) -> list[list[float]]: ...


class LLMEmbeddings:
    """The LLM provider's embedding API (Ollama /api/embed or OpenAI /v1/embeddings)."""

    dim = 384

    def __init__(self, client: Any, model: str) -> None:
        self.client, self.model = client, model
        self.name = f"llm:{model}"

    async def embed(self, texts: list[str]) -> list[list[float]]:
        vecs = await self.client.embed(texts, self.model)
        if vecs and len(vecs[0]) != self.dim:
            raise ValueError(
                f"embedding model {self.model!r} gives {len(vecs[0])}-d vectors; the knowledge base needs {self.dim}"
            )
        return vecs


def vec_literal(v: list[float]) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in v) + "]"


def workflow_text(description: str, wf: dict[str, Any]) -> str:
    types = sorted({str(n.get("type", "")).removeprefix("n8n-nodes-base.") for n in wf.get("nodes", [])})
    names = [str(n.get("name", "")) for n in wf.get("nodes", [])]
    return f"{description}. Workflow: {wf.get('name', '')}. Nodes: {', '.join(names)}. Types: {', '.join(types)}."


def load_examples() -> list[dict[str, Any]]:
    out = []
    for f in sorted(resources.files("n8n_integration.examples").iterdir(), key=lambda f: f.name):
        if f.name.endswith(".json"):
            ex = json.loads(f.read_text(encoding="utf-8"))
            ex["source"] = json.dumps(ex["workflow"], sort_keys=True)  # before random node ids are added
            ex["workflow"] = validate_workflow(ex["workflow"])
            out.append(ex)
    return out


@dataclass
class Match:
    slug: str
    name: str
    description: str
    workflow: dict[str, Any]
    node_types: list[str]
    score: float  # cosine similarity

    def brief(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "name": self.name,
            "description": self.description,
            "score": round(self.score, 4),
            "node_types": self.node_types,
        }


class KnowledgeBase:
    def __init__(self, pool: asyncpg.Pool, embeddings: Embeddings) -> None:
        self.pool, self.embeddings = pool, embeddings

    async def seed(self, examples: list[dict[str, Any]] | None = None) -> int:
        """Insert or refresh the examples and drop those no longer shipped; returns how many
        were (re-)embedded."""
        examples = load_examples() if examples is None else examples
        todo = []
        async with self.pool.acquire() as conn:
            await conn.execute("DELETE FROM n8n_examples WHERE slug <> ALL($1::text[])", [e["slug"] for e in examples])
            known = {r["slug"]: r["digest"] for r in await conn.fetch("SELECT slug, digest FROM n8n_examples")}
        for ex in examples:
            text = workflow_text(ex["description"], ex["workflow"])
            source = ex.get("source") or json.dumps(ex["workflow"], sort_keys=True)
            digest = hashlib.sha256(f"{self.embeddings.name}|{text}|{source}".encode()).hexdigest()[:16]
            if known.get(ex["slug"]) != digest:
                todo.append((ex, text, digest))
        if not todo:
            return 0
        vecs = await self.embeddings.embed([t for _, t, _ in todo])
        async with self.pool.acquire() as conn:
            for (ex, _, digest), vec in zip(todo, vecs, strict=True):
                wf = ex["workflow"]
                types = sorted({n["type"] for n in wf["nodes"]})
                await conn.execute(
                    "INSERT INTO n8n_examples (slug, name, description, workflow, node_types, digest, embedding)"
                    " VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7::vector)"
                    " ON CONFLICT (slug) DO UPDATE SET name = $2, description = $3, workflow = $4::jsonb,"
                    " node_types = $5, digest = $6, embedding = $7::vector, updated_at = now()",
                    ex["slug"],
                    wf["name"],
                    ex["description"],
                    json.dumps(wf),
                    types,
                    digest,
                    vec_literal(vec),
                )
        return len(todo)

    async def search_vector(self, vec: list[float], k: int = 3) -> list[Match]:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL hnsw.ef_search = 64")
            rows = await conn.fetch(
                "SELECT slug, name, description, workflow, node_types, 1 - (embedding <=> $1::vector) AS score"
                " FROM n8n_examples ORDER BY embedding <=> $1::vector LIMIT $2",
                vec_literal(vec),
                k,
            )
        return [
            Match(
                r["slug"],
                r["name"],
                r["description"],
                json.loads(r["workflow"]),
                list(r["node_types"]),
                float(r["score"]),
            )
            for r in rows
        ]

    async def search(self, text: str, k: int = 3) -> list[Match]:
        (vec,) = await self.embeddings.embed([text])
        return await self.search_vector(vec, k)

    async def count(self) -> int:
        async with self.pool.acquire() as conn:
            return int(await conn.fetchval("SELECT count(*) FROM n8n_examples"))
