"""Settings of the diffusion backends (``generate.controlnet`` / ``generate.controlnet-sdxl``): the published
defaults and their validation. See :mod:`dst3d.generate.diffusion` for what each key does."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from dst3d.checks import is_integer, is_number

#: The default settings block of each diffusion backend of the generate stage.
#: Where and how a pipeline runs: the same defaults for every backend.
_RUNTIME_DEFAULTS: dict[str, Any] = {
    "device": "auto",
    "dtype": "auto",
    "cpu_offload": False,
    "attention": "sdpa",
    "background": "generated",
    "local_files_only": None,
}

DEFAULT_DIFFUSION_SETTINGS: dict[str, dict[str, Any]] = {
    "controlnet": {
        "base_model": "stable-diffusion-v1-5/stable-diffusion-v1-5",
        "controlnet_model": "lllyasviel/control_v11p_sd15_canny",
        "conditioning": "canny",
        "depth_controlnet_model": "lllyasviel/control_v11f1p_sd15_depth",
        "depth_conditioning_scale": 1.0,
        "vae_model": None,
        "scheduler": "ddim",
        "eta": 1.0,
        "steps": 20,
        "guidance_scale": 9.0,
        "conditioning_scale": 1.0,
        "size": 512,
        "batch_size": 4,
        **_RUNTIME_DEFAULTS,
    },
    "controlnet-sdxl": {
        "base_model": "stabilityai/stable-diffusion-xl-base-1.0",
        "controlnet_model": "diffusers/controlnet-canny-sdxl-1.0",
        "conditioning": "canny",
        "depth_controlnet_model": "diffusers/controlnet-depth-sdxl-1.0",
        "depth_conditioning_scale": 1.0,
        "vae_model": "madebyollin/sdxl-vae-fp16-fix",
        "scheduler": "euler",
        "eta": 1.0,
        "steps": 50,
        "guidance_scale": 5.0,
        "conditioning_scale": 1.0,
        "size": 1024,
        "batch_size": 2,
        **_RUNTIME_DEFAULTS,
    },
}

SCHEDULERS = ("ddim", "unipc", "euler")
#: What conditions the image: the Canny edge map, the rendered depth map, or both (a multi-ControlNet).
CONDITIONINGS = ("canny", "depth", "canny+depth")
BACKGROUND_MODES = ("generated", "paste")
ATTENTION_MODES = ("sdpa", "eager")
DTYPES = ("auto", "float16", "bfloat16", "float32")

#: Keys that say where and how a pipeline runs, not what it draws: not rerun triggers of the workflow.
RUNTIME_KEYS = ("device", "cpu_offload", "local_files_only")


def resolve_settings(backend: str, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The backend's defaults overridden by ``settings``, validated; raises ValueError on unknown keys or values."""
    if backend not in DEFAULT_DIFFUSION_SETTINGS:
        raise ValueError(f"unknown diffusion backend {backend!r}; expected one of {sorted(DEFAULT_DIFFUSION_SETTINGS)}")
    resolved = dict(DEFAULT_DIFFUSION_SETTINGS[backend])
    unknown = sorted(set(settings or {}) - set(resolved))
    if unknown:
        raise ValueError(f"unknown generate.{backend} settings {unknown}; known: {sorted(resolved)}")
    resolved.update(settings or {})

    def require(condition: bool, key: str, expected: str) -> None:
        if not condition:
            raise ValueError(f"generate.{backend}.{key} = {resolved[key]!r}: expected {expected}")

    for key in ("base_model", "controlnet_model", "depth_controlnet_model"):
        require(isinstance(resolved[key], str) and bool(resolved[key]), key, "a model id or a local directory")
    require(resolved["conditioning"] in CONDITIONINGS, "conditioning", f"one of {CONDITIONINGS}")
    require(is_number(resolved["depth_conditioning_scale"]), "depth_conditioning_scale", "a number")
    require(resolved["vae_model"] is None or isinstance(resolved["vae_model"], str), "vae_model", "null or a model")
    require(resolved["scheduler"] in SCHEDULERS, "scheduler", f"one of {SCHEDULERS}")
    require(is_number(resolved["eta"]) and resolved["eta"] >= 0, "eta", "a number >= 0")
    require(is_integer(resolved["steps"]) and resolved["steps"] >= 1, "steps", "an integer >= 1")
    require(is_number(resolved["guidance_scale"]), "guidance_scale", "a number")
    require(is_number(resolved["conditioning_scale"]), "conditioning_scale", "a number")
    require(
        resolved["size"] is None
        or (is_integer(resolved["size"]) and resolved["size"] > 0 and resolved["size"] % 8 == 0),
        "size",
        "a positive multiple of 8 (pixels), or null for the edge map's size",
    )
    require(is_integer(resolved["batch_size"]) and resolved["batch_size"] >= 1, "batch_size", "an integer >= 1")
    require(
        isinstance(resolved["device"], str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?", resolved["device"]) is not None,
        "device",
        "auto, cpu, cuda or cuda:N",
    )
    require(resolved["dtype"] in DTYPES, "dtype", f"one of {DTYPES}")
    require(isinstance(resolved["cpu_offload"], bool), "cpu_offload", "true or false")
    require(resolved["attention"] in ATTENTION_MODES, "attention", f"one of {ATTENTION_MODES}")
    require(resolved["background"] in BACKGROUND_MODES, "background", f"one of {BACKGROUND_MODES}")
    require(
        resolved["local_files_only"] is None or isinstance(resolved["local_files_only"], bool),
        "local_files_only",
        "null (follow HF_HUB_OFFLINE), true or false",
    )
    return resolved


def uses_canny(settings: Mapping[str, Any]) -> bool:
    return settings["conditioning"] in ("canny", "canny+depth")


def uses_depth(settings: Mapping[str, Any]) -> bool:
    return settings["conditioning"] in ("depth", "canny+depth")
