"""vibe-coding's Prometheus metrics: sandbox runs by language and status, and the runs the
sandbox killed, by reason (bounded: the wall-clock timeout or the signal's limit)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from .sandbox.base import RunResult

EXECUTIONS = Counter("harvis_vibe_executions", "Sandbox runs by language and status.", ("language", "status"))
KILLS = Counter("harvis_vibe_sandbox_kills", "Sandbox runs killed, by reason.", ("reason",))
DURATION = Histogram(
    "harvis_vibe_execution_duration_seconds",
    "Wall-clock time of a sandbox run.",
    ("language",),
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0),
)
# A negative exit code is the signal that ended the program: the limit it hit.
_SIGNALS = {-9: "killed", -24: "cpu_limit", -25: "file_size_limit"}


def kill_reason(result: RunResult) -> str | None:
    if result.timed_out:
        return "timeout"
    if result.exit_code is not None and result.exit_code < 0:
        return _SIGNALS.get(result.exit_code, "signal")
    return None


def observe_run(language: str, result: RunResult) -> None:
    EXECUTIONS.labels(language, result.status).inc()
    DURATION.labels(language).observe(result.duration_s)
    reason = kill_reason(result)
    if reason is not None:
        KILLS.labels(reason).inc()
