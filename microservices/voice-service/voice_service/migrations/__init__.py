"""voice-service's SQL migrations (applied by harvis_common.db)."""
