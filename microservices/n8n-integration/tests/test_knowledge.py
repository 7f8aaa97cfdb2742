"""The knowledge base on real pgvector (the embedded PostgreSQL) with real embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from harvis_common.db import create_pool, migrate
from harvis_common.embeddings import MiniLMEmbedder
from n8n_integration.knowledge import KnowledgeBase


@pytest.fixture(scope="module")
def model() -> MiniLMEmbedder:
    return MiniLMEmbedder.load()


def test_embeddings_are_unit_vectors_and_semantic(model: MiniLMEmbedder) -> None:
    v = model.encode(
        [
            "send a slack message when a form is submitted",
            "post a message to slack on a new form submission",
            "fetch the weather forecast every morning",
        ]
    )
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    sims = v @ v.T
    assert sims[0, 1] > 0.8 and sims[0, 2] < 0.3


def test_batching_does_not_change_vectors(model: MiniLMEmbedder) -> None:
    texts = ["short", "a much longer sentence about webhooks, http requests and google sheets rows"]
    together = model.encode(texts)
    alone = np.stack([model.encode([t])[0] for t in texts])
    assert np.abs(together - alone).max() < 1e-5  # padding is masked out


def test_matches_sentence_transformers_reference(model: MiniLMEmbedder) -> None:
    # sentence-transformers 6.2.0 + torch 2.13.0 CPU on the same package's model gave these first
    # values (whole vectors: max |difference| 1.4e-7): the numpy forward pass is the same model.
    v = model.encode(["This is an example sentence"])[0]
    assert np.abs(v[: len(REFERENCE)] - np.array(REFERENCE)).max() < 1e-5


REFERENCE = [0.0676569, 0.0634959, 0.0487132, 0.079305, 0.037448, 0.0026528, 0.039375, -0.0070984]


async def test_seed_search_and_hnsw(pgvector_url: str, embeddings) -> None:
    pool = await create_pool(pgvector_url, service="n8n-integration", migrations="n8n_integration.migrations")
    try:
        async with pool.acquire() as conn:
            await migrate(conn, "n8n-integration-kb", "n8n_integration.kb_migrations")
        kb = KnowledgeBase(pool, embeddings)
        first = await kb.seed()
        assert first == await kb.count() >= 8
        assert await kb.seed() == 0  # unchanged examples are not embedded again
        # an example that is no longer shipped (e.g. one that used a node type users may no
        # longer run) leaves the knowledge base, so the builder is never shown it again
        await pool.execute(
            "INSERT INTO n8n_examples (slug, name, description, workflow, node_types, digest, embedding)"
            " SELECT 'retired-example', name, description, workflow, node_types, digest, embedding"
            " FROM n8n_examples LIMIT 1"
        )
        assert await kb.seed() == 0 and await kb.count() == first
        cases = {
            "post a message to slack when someone submits a form": "webhook-to-slack",
            "what will the weather be like at this latitude and longitude": "webhook-weather-forecast",
            "get the latest RSS feed headlines": "webhook-rss-headlines",
            "sum a list of numbers and give their average": "webhook-sum-numbers",
            "route orders over 100 dollars differently": "webhook-if-route",
            "fetch a list of users from an API and show their names and emails": "http-list-to-table",
        }
        for prompt, slug in cases.items():
            hits = await kb.search(prompt, 3)
            assert hits[0].slug == slug, (prompt, [h.brief() for h in hits])
            assert hits[0].score > hits[1].score
        async with pool.acquire() as conn:
            await conn.execute("SET enable_seqscan = off")
            plan = "\n".join(
                r[0]
                for r in await conn.fetch(
                    "EXPLAIN SELECT slug FROM n8n_examples ORDER BY embedding <=> $1::vector LIMIT 3",
                    "[" + ",".join(["0.05"] * 384) + "]",
                )
            )
        assert "n8n_examples_embedding" in plan  # the HNSW index serves the query
    finally:
        await pool.close()
