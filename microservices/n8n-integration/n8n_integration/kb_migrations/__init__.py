"""The pgvector knowledge base (applied only where the `vector` extension is available)."""
