"""core-api's handle on the LLM backend: the client, a short-lived model list
cache, model-name resolution (unknown names fall back to the default), the model
list and unloading as `/api/models…` answer them, and memory figures for
`/api/models/memory-pressure`."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

from harvis_common.llm import LLMClient, LLMError, ModelInfo, ModelPicker, client_from_settings, human_size

from ..settings import Settings

MODELS_TTL_S = 10.0
LIST_TIMEOUT_S = 8.0  # the front end shows "Offline Mode" after 10 s


@dataclass(slots=True)
class Resolved:
    model: str
    fallback: bool  # the requested name was unknown (or empty)


class LLMBackend:
    def __init__(self, settings: Settings, client: LLMClient | None = None) -> None:
        self.settings = settings
        self.client = client or client_from_settings(settings)
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
        return Resolved(model, fallback)

    async def close(self) -> None:
        await self.client.close()


# ---------------------------------------------------------------- the model list


async def fetch_models(llm: LLMBackend) -> list[ModelInfo]:
    """The backend's models; raises LLMError, or TimeoutError after LIST_TIMEOUT_S."""
    return await asyncio.wait_for(llm.models(), LIST_TIMEOUT_S)


async def fetch_loaded(llm: LLMBackend) -> list[Any]:
    """The models the backend holds in memory now; raises LLMError, or TimeoutError."""
    return await asyncio.wait_for(llm.client.loaded_models(), LIST_TIMEOUT_S)


def display_name(name: str) -> str:
    base, _, tag = name.partition(":")
    return base if tag in ("", "latest") else f"{base} ({tag})"


async def listing(llm: LLMBackend, models: list[ModelInfo]) -> dict[str, Any]:
    """`/api/models`' answer for `models` (just fetched from `llm`)."""
    return {
        "models": [
            {
                "name": m.name,
                "displayName": display_name(m.name),
                "size": human_size(m.size),
                "status": "available",
                # The front end knows the provider as "ollama"; `backend` names the real one.
                "provider": "ollama",
                "backend": llm.provider,
                "family": m.family,
                "parameter_size": m.parameter_size,
                "quantization": m.quantization,
            }
            for m in models
        ],
        "default_model": (await llm.resolve(None)).model if models else None,
    }


async def unload_models(llm: LLMBackend, loaded: list[str], model_type: str) -> tuple[list[str], list[str]]:
    """Unload the `loaded` models `model_type` names ("all", "llm", "ollama" or one model's
    name): (unloaded, failed)."""
    targets = [name for name in loaded if model_type in ("all", "llm", "ollama") or name == model_type]
    unloaded: list[str] = []
    failed: list[str] = []
    for name in targets:
        try:
            if await llm.client.unload(name):
                unloaded.append(name)
            else:
                failed.append(name)
        except LLMError:
            failed.append(name)
    return unloaded, failed


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
