"""Chat: the LLM backend (`backend`), which backend answers a user (`provider_keys`: their
own stored key, or the server's), the encryption of those keys (`key_cipher`), a chat turn
streamed as SSE (`turn`, `sse`) and the per-user turn quota (`quotas`). The routes are in
api/routes/ (chat, history, models, api_keys, internal); the objects they share are built in
app.py's lifespan."""
