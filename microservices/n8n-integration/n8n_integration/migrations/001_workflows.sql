-- Which Harvis user created which n8n workflow (and ran which execution): users only see theirs.
CREATE TABLE IF NOT EXISTS n8n_workflows (
    n8n_id       text PRIMARY KEY,
    user_id      bigint NOT NULL,
    name         text NOT NULL,
    webhook_path text,
    source       text NOT NULL DEFAULT 'json',   -- 'json' or 'prompt'
    prompt       text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS n8n_workflows_user ON n8n_workflows (user_id, created_at DESC);

CREATE TABLE IF NOT EXISTS n8n_executions (
    execution_id text PRIMARY KEY,
    n8n_id       text NOT NULL REFERENCES n8n_workflows (n8n_id) ON DELETE CASCADE,
    user_id      bigint NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS n8n_executions_user ON n8n_executions (user_id);
