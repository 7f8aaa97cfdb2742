"""The chat's Prometheus metrics, per model (the resolved model: one of the backend's own)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

TOKENS = Counter("harvis_chat_tokens", "Tokens of finished chat turns, as the backend counted them.", ("model", "kind"))
TIME_TO_FIRST_TOKEN = Histogram(
    "harvis_chat_time_to_first_token_seconds",
    "From the turn's start to the model's first piece of answer (or reasoning).",
    ("model",),
    buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0),
)
TURNS = Counter("harvis_chat_turns", "Chat turns by outcome (complete, error, interrupted).", ("model", "outcome"))


def model_label(model: str) -> str:
    return model[:80] or "none"
