"""Schema of n8n-integration (applied by harvis_common.db)."""
