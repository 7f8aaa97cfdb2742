-- Artifacts made from a spec (issue 18): spreadsheets, documents, PDFs, presentations, code
-- projects. The table 0002 made for code blocks found in answers grows the columns a rendered
-- file needs; those older rows are `ready` snippets whose text stays in `content`.
--
-- The rendered file's bytes live here (bytea), not on a replica's disk: every core-api replica
-- serves every download, and deleting the row (or its user) deletes the file.
-- A row is its own rendering job: `generating` rows are claimed with FOR UPDATE SKIP LOCKED
-- (claimed_at, attempts); a claim older than the lease is taken again after a restart.

ALTER TABLE artifacts
    ALTER COLUMN content SET DEFAULT '',
    ADD COLUMN status        text        NOT NULL DEFAULT 'ready'
        CHECK (status IN ('pending', 'generating', 'ready', 'failed')),
    ADD COLUMN description   text,
    ADD COLUMN spec          jsonb,
    ADD COLUMN spec_size     integer     NOT NULL DEFAULT 0,
    ADD COLUMN file          bytea,
    ADD COLUMN file_size     bigint      NOT NULL DEFAULT 0,
    ADD COLUMN mime_type     text,
    ADD COLUMN error_message text,
    ADD COLUMN attempts      integer     NOT NULL DEFAULT 0,
    ADD COLUMN claimed_at    timestamptz,
    ADD COLUMN updated_at    timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN expires_at    timestamptz,
    ADD CONSTRAINT artifacts_type_check
        CHECK (type IN ('spreadsheet', 'document', 'pdf', 'presentation', 'code', 'website', 'app')),
    ADD CONSTRAINT artifacts_title_check CHECK (length(title) <= 200);

UPDATE artifacts SET updated_at = created_at;

-- The worker's queue: only unfinished rows, oldest first.
CREATE INDEX artifacts_jobs_idx ON artifacts (created_at) WHERE status IN ('pending', 'generating');
-- The expiry sweep.
CREATE INDEX artifacts_expiry_idx ON artifacts (expires_at) WHERE expires_at IS NOT NULL;
