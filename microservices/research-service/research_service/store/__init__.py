"""Where research-service keeps its state: the cache of search results and pages (`cache`,
Redis or in-process), and the knowledge base in PostgreSQL (`documents`: documents and their
chunks, with the hybrid search; `jobs`: the ingestion jobs)."""
