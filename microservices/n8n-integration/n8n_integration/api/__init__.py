"""The HTTP API: dependencies (deps.py), request bodies (schemas.py), routes."""
