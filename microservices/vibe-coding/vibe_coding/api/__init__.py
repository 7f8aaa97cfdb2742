"""The HTTP and WebSocket API: dependencies (deps.py), request bodies (schemas.py), routes."""
