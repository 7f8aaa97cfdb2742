"""Shared building blocks of every Harvis service."""
