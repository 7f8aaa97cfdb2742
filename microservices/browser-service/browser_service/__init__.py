"""Harvis browser-service."""
