-- Per-user limits (issue 14). `active`: the workflow counts against the active-workflow limit
-- (set before n8n is asked to activate it). `pending`: a place reserved under the user's lock
-- before n8n has created the workflow (its n8n_id is a placeholder until then).
ALTER TABLE n8n_workflows ADD COLUMN IF NOT EXISTS active boolean NOT NULL DEFAULT false;
ALTER TABLE n8n_workflows ADD COLUMN IF NOT EXISTS pending boolean NOT NULL DEFAULT false;

-- Every run a user started, for the hourly limit. No foreign key on purpose: deleting a
-- workflow must not give its runs back.
CREATE TABLE IF NOT EXISTS n8n_runs (
    id         bigserial PRIMARY KEY,
    user_id    bigint NOT NULL,
    n8n_id     text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS n8n_runs_user ON n8n_runs (user_id, started_at);
