-- Each session's sandbox uid is VIBE_SANDBOX_UID_BASE + sandbox_uid, allocated when the session
-- is made; the unique index means two sessions never share one. (It used to be derived from the
-- session id mod 60000, which collides.) A session being deleted keeps its uid until nothing
-- runs as it any more ('deleting': invisible to its owner, then removed).
ALTER TABLE vibe_sessions ADD COLUMN IF NOT EXISTS sandbox_uid integer CHECK (sandbox_uid >= 0);

-- Existing sessions keep the uid their files are owned by (the id mod 60000, computed from
-- the id's four 32-bit words), except that of two sessions sharing one only the oldest keeps
-- it; the others get free ones (the service re-owns their workspaces on first use).
WITH words AS (
    SELECT id, created_at,
        ('x' || lpad(substr(replace(id::text, '-', ''), 1, 8), 16, '0'))::bit(64)::bigint AS w1,
        ('x' || lpad(substr(replace(id::text, '-', ''), 9, 8), 16, '0'))::bit(64)::bigint AS w2,
        ('x' || lpad(substr(replace(id::text, '-', ''), 17, 8), 16, '0'))::bit(64)::bigint AS w3,
        ('x' || lpad(substr(replace(id::text, '-', ''), 25, 8), 16, '0'))::bit(64)::bigint AS w4
    FROM vibe_sessions WHERE sandbox_uid IS NULL
), derived AS (
    SELECT id, created_at,
        ((((((w1 % 60000) * 4294967296 + w2) % 60000) * 4294967296 + w3) % 60000) * 4294967296 + w4) % 60000
            AS slot
    FROM words
), ranked AS (
    SELECT id, slot, row_number() OVER (PARTITION BY slot ORDER BY created_at, id) AS n FROM derived
)
UPDATE vibe_sessions v SET sandbox_uid = ranked.slot FROM ranked WHERE v.id = ranked.id AND ranked.n = 1;

WITH rest AS (
    SELECT id, row_number() OVER (ORDER BY created_at, id) AS k FROM vibe_sessions WHERE sandbox_uid IS NULL
), free AS (
    SELECT s, row_number() OVER (ORDER BY s) AS k
    FROM generate_series(0, 59999) AS s
    WHERE NOT EXISTS (SELECT 1 FROM vibe_sessions WHERE sandbox_uid = s)
)
UPDATE vibe_sessions v SET sandbox_uid = free.s FROM rest JOIN free USING (k) WHERE v.id = rest.id;

ALTER TABLE vibe_sessions ALTER COLUMN sandbox_uid SET NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS vibe_sessions_sandbox_uid_key ON vibe_sessions (sandbox_uid);
