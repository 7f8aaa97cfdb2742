"""Where core-api keeps its state in PostgreSQL (schema: `migrations/`): the `users` table
(`users`), chat sessions, messages and artifacts (`chat`), and users' encrypted provider API
keys (`api_keys`). Revoked tokens are the auth layer's own (`auth.revocation`)."""
