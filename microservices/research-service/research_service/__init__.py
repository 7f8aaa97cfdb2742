"""Harvis research-service."""
