CREATE TABLE IF NOT EXISTS vibe_sessions (
    id uuid PRIMARY KEY,
    user_id bigint NOT NULL,
    name text NOT NULL,
    language text NOT NULL,
    template text,
    status text NOT NULL DEFAULT 'ready',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    last_run_at timestamptz
);
CREATE INDEX IF NOT EXISTS vibe_sessions_user_idx ON vibe_sessions (user_id, updated_at DESC);
