"""The knowledge base's tables (need the `vector` extension: applied apart from the pool, so
web research runs on a database without pgvector, or none)."""
