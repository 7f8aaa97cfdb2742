-- Workflow examples with all-MiniLM-L6-v2 embeddings (384-d, unit length), cosine HNSW index.
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE IF NOT EXISTS n8n_examples (
    id          bigserial PRIMARY KEY,
    slug        text UNIQUE NOT NULL,
    name        text NOT NULL,
    description text NOT NULL,
    workflow    jsonb NOT NULL,
    node_types  text[] NOT NULL,
    digest      text NOT NULL,            -- of the text embedded + the model, to re-embed on change
    embedding   vector(384) NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS n8n_examples_embedding ON n8n_examples USING hnsw (embedding vector_cosine_ops);
