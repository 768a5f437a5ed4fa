"""Settings of the diffusion backends (``generate.controlnet`` / ``generate.controlnet-sdxl``): their defaults
and bounds are config/schema.yaml's (``$defs/diffusion`` and the per-backend defaults under ``generate``). See
:mod:`dst3d.generate.diffusion` for what each key does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def resolve_settings(backend: str, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The backend's ``generate.<backend>`` block completed with the schema's defaults and checked; raises
    ValueError naming the ``generate.<backend>.<key>`` that breaks the schema."""
    from dst3d.config_schema import block_schema, block_settings

    backends = sorted(block_schema("generate")["properties"])
    if backend not in backends:
        raise ValueError(f"unknown diffusion backend {backend!r}; expected one of {backends}")
    filled = block_settings(f"generate.{backend}", settings or {})
    # In the schema's order, whatever order the config gave.
    return {key: filled[key] for key in block_schema(f"generate.{backend}")["properties"]}


def uses_canny(settings: Mapping[str, Any]) -> bool:
    return settings["conditioning"] in ("canny", "canny+depth")


def uses_depth(settings: Mapping[str, Any]) -> bool:
    return settings["conditioning"] in ("depth", "canny+depth")
