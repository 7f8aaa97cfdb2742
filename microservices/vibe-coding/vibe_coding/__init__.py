"""Harvis vibe-coding."""
