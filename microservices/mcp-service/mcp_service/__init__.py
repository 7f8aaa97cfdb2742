"""Harvis mcp-service."""
