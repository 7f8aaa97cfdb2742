-- Accounts an administrator can disable (issue 14): a disabled user cannot log in, and
-- the tokens they already hold stop working within USER_STATE_CACHE_S.

ALTER TABLE users ADD COLUMN is_active boolean NOT NULL DEFAULT true;

-- The admin list (`python -m core_api.admin list`, /api/admin/users) looks these up.
CREATE INDEX users_admins_idx ON users (id) WHERE is_admin;
CREATE INDEX users_disabled_idx ON users (id) WHERE NOT is_active;
