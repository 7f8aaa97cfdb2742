"""Harvis n8n-integration."""
