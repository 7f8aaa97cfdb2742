"""core-api's handle on the LLM backend: the client, a short-lived model list
cache, model-name resolution (unknown names fall back to the default) and
memory figures for `/api/models/memory-pressure`."""

from __future__ import annotations

import os
from dataclasses import dataclass

from harvis_common.llm import LLMClient, ModelInfo, ModelPicker, client_from_settings

from ..settings import Settings

MODELS_TTL_S = 10.0


def make_client(settings: Settings) -> LLMClient:
    return client_from_settings(settings)


@dataclass(slots=True)
class Resolved:
    model: str
    requested: str | None
    fallback: bool  # the requested name was unknown (or empty)


class LLMBackend:
    def __init__(self, settings: Settings, client: LLMClient | None = None) -> None:
        self.settings = settings
        self.client = client or make_client(settings)
        self.picker = ModelPicker(self.client, settings.default_model, MODELS_TTL_S)

    @property
    def provider(self) -> str:
        return self.settings.llm_provider

    async def models(self, fresh: bool = False) -> list[ModelInfo]:
        """The backend's models (cached briefly); raises LLMError when it is down."""
        return await self.picker.models(fresh)

    async def resolve(self, requested: str | None, preferred_default: str = "") -> Resolved:
        """The model to use for `requested`: itself when the backend has it, else the
        configured default (`preferred_default` first), else the first listed model."""
        model, fallback = await self.picker.pick(requested, preferred_default)
        return Resolved(model, requested, fallback)

    async def close(self) -> None:
        await self.client.close()


# ---------------------------------------------------------------- memory


def machine_memory() -> tuple[float, float]:
    """(total, available) bytes of this machine (or container) from /proc/meminfo."""
    info: dict[str, int] = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                info[key] = int(rest.split()[0]) * 1024
    except OSError:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        avail = os.sysconf("SC_AVPHYS_PAGES")
        return float(pages * size), float(avail * size)
    total = float(info.get("MemTotal", 0))
    return total, float(info.get("MemAvailable", info.get("MemFree", 0)))


GB = 1024**3


def pressure(total: float, available: float, allocated: float, loaded: list[str]) -> dict[str, object]:
    used_pct = round((1 - available / total) * 100, 1) if total else 0.0
    if used_pct >= 90:
        level = "critical"
    elif used_pct >= 80:
        level = "high"
    elif used_pct >= 65:
        level = "moderate"
    else:
        level = "low"
    recommendations: list[str] = []
    if level in ("high", "critical") and loaded:
        recommendations.append(f"Unload idle models ({', '.join(loaded)}) with the Clear AI RAM button")
    if level == "critical":
        recommendations.append("Use a smaller or more quantised model")
    return {
        "pressure_level": level,
        "usage_percent": used_pct,
        "free_gb": round(available / GB, 2),
        "allocated_gb": round(allocated / GB, 2),
        "total_gb": round(total / GB, 2),
        "recommendations": recommendations,
        "auto_cleanup_suggested": level in ("high", "critical") and bool(loaded),
        "loaded_models": loaded,
    }
