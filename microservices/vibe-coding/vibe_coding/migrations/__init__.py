"""vibe-coding's schema, applied by harvis_common.db.create_pool."""
