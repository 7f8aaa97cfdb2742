-- The durable TTS job queue. A worker claims a job with FOR UPDATE SKIP LOCKED and holds a
-- lease it renews while working; a job whose lease ran out (its worker died) is claimed again.
CREATE TABLE IF NOT EXISTS voice_jobs (
    id uuid PRIMARY KEY,
    user_id bigint NOT NULL,
    name text NOT NULL,
    state text NOT NULL DEFAULT 'created' CHECK (state IN ('created', 'active', 'completed', 'failed')),
    payload jsonb NOT NULL,
    data jsonb NOT NULL DEFAULT '{}'::jsonb,
    error text,
    attempts integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 3,
    lease_until timestamptz,
    worker text,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    completed_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS voice_jobs_claimable ON voice_jobs (created_at) WHERE state IN ('created', 'active');
CREATE INDEX IF NOT EXISTS voice_jobs_user ON voice_jobs (user_id, created_at DESC);
