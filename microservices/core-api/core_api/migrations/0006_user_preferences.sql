-- Users' preferences (GET/PUT /api/user/preferences, core_api/store/preferences.py). A user
-- without a row has the defaults. use_knowledge_base: chat searches the user's knowledge base
-- (research-service) when a request does not say (grounded chat, core_api/chat/knowledge.py).

CREATE TABLE user_preferences (
    user_id            bigint      PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    use_knowledge_base boolean     NOT NULL DEFAULT false,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
