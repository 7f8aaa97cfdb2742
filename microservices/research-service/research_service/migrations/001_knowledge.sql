-- The knowledge base (/api/rag): documents (a user's uploads, shared web pages and local files),
-- their chunks with all-MiniLM-L6-v2 vectors (384-d, unit length; HNSW cosine index) and
-- full-text vectors (GIN), and the ingestion jobs, which live here so they survive a restart.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE IF NOT EXISTS kb_documents (
    id           uuid PRIMARY KEY,
    source       text NOT NULL,                -- "uploads", "python_docs", "local_docs", ...
    owner_id     bigint,                       -- the uploading user; NULL: a shared source
    uri          text NOT NULL,                -- the page's URL, the file's path, upload:<sha256 of the file>
    title        text NOT NULL,                -- the file's name or the page's title
    mime         text NOT NULL,
    size_bytes   bigint NOT NULL DEFAULT 0,    -- of the file as uploaded or fetched
    content_hash text NOT NULL,                -- of the extracted sections: unchanged → not re-chunked
    sections     jsonb NOT NULL,               -- [{location, text}]: what a rebuild chunks again
    chunk_count  integer NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (source, owner_id, uri)
);
CREATE INDEX IF NOT EXISTS kb_documents_owner ON kb_documents (owner_id, created_at DESC);

CREATE TABLE IF NOT EXISTS kb_chunks (
    id           bigserial PRIMARY KEY,
    document_id  uuid NOT NULL REFERENCES kb_documents (id) ON DELETE CASCADE,
    source       text NOT NULL,                -- the document's, to filter without a join
    owner_id     bigint,
    ord          integer NOT NULL,
    location     text NOT NULL DEFAULT '',     -- "page 3", "Install > Linux"
    text         text NOT NULL,
    content_hash text NOT NULL,                -- of what was embedded: an unchanged chunk keeps its vector
    tsv          tsvector GENERATED ALWAYS AS (to_tsvector('english', location || ' ' || text)) STORED,
    embedding    vector(384) NOT NULL
);
CREATE INDEX IF NOT EXISTS kb_chunks_document ON kb_chunks (document_id);
CREATE INDEX IF NOT EXISTS kb_chunks_tsv ON kb_chunks USING gin (tsv);
CREATE INDEX IF NOT EXISTS kb_chunks_embedding ON kb_chunks USING hnsw (embedding vector_cosine_ops);

-- status: exactly what the front end's page reads (it polls until COMPLETED or FAILED); a
-- cancelled job is FAILED with its error saying so.
CREATE TABLE IF NOT EXISTS kb_jobs (
    id               uuid PRIMARY KEY,
    user_id          bigint NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('update', 'rebuild')),
    status           text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'RUNNING', 'COMPLETED', 'FAILED')),
    sources          text[] NOT NULL,
    params           jsonb NOT NULL DEFAULT '{}',   -- keywords, extra_urls and the per-source lists
    total_docs       integer NOT NULL DEFAULT 0,
    processed        integer NOT NULL DEFAULT 0,
    current_source   text,
    current_phase    text,
    error            text,
    report           jsonb NOT NULL DEFAULT '{}',   -- per source: documents added, unchanged, failed; errors
    cancel_requested boolean NOT NULL DEFAULT false,
    attempts         integer NOT NULL DEFAULT 0,    -- runs started (a restart mid-run starts another)
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz
);
CREATE INDEX IF NOT EXISTS kb_jobs_pending ON kb_jobs (created_at) WHERE status = 'PENDING';
CREATE INDEX IF NOT EXISTS kb_jobs_user ON kb_jobs (user_id, created_at DESC);
