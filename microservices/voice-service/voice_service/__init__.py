"""Harvis voice-service."""
