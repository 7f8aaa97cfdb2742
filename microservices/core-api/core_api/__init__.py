"""Harvis core-api: authentication, users, chat, and the gateway to every other service."""
