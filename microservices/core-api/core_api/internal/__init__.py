"""core-api's internal API for the other services (`/internal/…`, never behind nginx): who may
call it (`callers`) and what token exchange may grant (`token_exchange`). The routes, token
exchange and the chat history services write through, are in api/routes/internal.py; app.py
sets up the checker for forwarded tokens and the signer (shared with the gateway)."""
