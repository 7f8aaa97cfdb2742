"""The rendering worker's Prometheus metrics (served by whichever process renders: core-api
with ARTIFACT_RENDER_WORKERS > 0, or the artifact-renderer)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RENDERS = Counter(
    "harvis_artifact_renders",
    "Artifact renders by type and outcome (ready, failed, timeout; gone: deleted while rendering).",
    ("type", "outcome"),
)
RENDER_SECONDS = Histogram(
    "harvis_artifact_render_seconds",
    "Time to render one artifact's file, by type.",
    ("type",),
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
