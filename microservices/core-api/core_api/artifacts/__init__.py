"""Artifacts: spreadsheets, documents, PDFs, presentations and code projects made from a
structured spec (the model's, in chat, or a client's, through POST /api/artifacts).

`specs.py` validates a spec against its type's schema and hard limits (a 422, never a stalled
worker); `render.py` turns a valid spec into the file's bytes (pure functions, run in a thread);
`worker.py` takes rendering jobs from PostgreSQL so a restart resumes or fails them;
`convention.py` is how a chat answer carries a spec. The rows and bytes live in
`store/artifacts.py`.
"""
