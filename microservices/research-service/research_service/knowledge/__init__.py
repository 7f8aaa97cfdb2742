"""The knowledge base (/api/rag): documents from uploads, public documentation pages and the
operator's local directories, cut into chunks, embedded (all-MiniLM-L6-v2) and stored in
PostgreSQL with pgvector; ingestion jobs run by a worker; hybrid search."""
