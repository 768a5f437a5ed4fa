"""Where the diffusion backends' models come from: local diffusers folders or the Hugging Face cache.

``check_models_available`` says, before anything is loaded, whether every configured model can be loaded as
configured (and how to provide one that cannot); ``model_revision`` names the exact weights an image came from.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from dst3d.generate.settings import resolve_settings

#: Pipeline components that the backend supplies itself or leaves out, so a base model need not hold them.
_COMPONENTS_NOT_LOADED = ("controlnet", "safety_checker", "feature_extractor", "image_encoder")

_WEIGHT_SUFFIXES = (".safetensors", ".bin")


class ModelNotAvailableError(RuntimeError):
    """A configured model can be found neither as a local folder nor (when offline) in the Hugging Face cache."""


def offline(settings: Mapping[str, Any]) -> bool:
    """Whether loading may only use local files: ``local_files_only``, or ``HF_HUB_OFFLINE`` when that is null."""
    if settings["local_files_only"] is not None:
        return settings["local_files_only"]
    from huggingface_hub import constants

    return constants.HF_HUB_OFFLINE


def model_slots(settings: Mapping[str, Any]) -> list[tuple[str, str, bool]]:
    """(settings key, model id or folder, is a whole pipeline) of every model the backend loads."""
    from dst3d.generate.settings import uses_canny, uses_depth

    slots = [("base_model", settings["base_model"], True)]
    if uses_canny(settings):
        slots.append(("controlnet_model", settings["controlnet_model"], False))
    if uses_depth(settings):
        slots.append(("depth_controlnet_model", settings["depth_controlnet_model"], False))
    if settings["vae_model"] is not None:
        slots.append(("vae_model", settings["vae_model"], False))
    return slots


def _looks_like_path(model: str) -> bool:
    """True unless ``model`` has the shape of a Hub id (``name`` or ``owner/name`` of letters, digits, ``-_.``)."""
    return re.fullmatch(r"[\w.-]+(/[\w.-]+)?", model) is None or model.startswith((".", "~"))


def how_to_provide(backend: str, key: str, model: str) -> str:
    if _looks_like_path(model):
        hub_id = resolve_settings(backend)[key] or "OWNER/NAME"
    else:
        hub_id = model
    return (
        f"Provide it in one of these ways:\n"
        f"  - download it into the Hugging Face cache on a machine with network access: `hf download {hub_id}` "
        f"(older clients: `huggingface-cli download {hub_id}`), and point HF_HOME or HF_HUB_CACHE to that cache "
        f"on the machine that runs this job;\n"
        f"  - or download it to a folder (`hf download {hub_id} --local-dir DIR`, or `save_pretrained(DIR)`) and set "
        f"generate.{backend}.{key}: DIR;\n"
        f"  - or allow downloads (unset HF_HUB_OFFLINE and set generate.{backend}.local_files_only: false), so that "
        f"from_pretrained fetches it on first use."
    )


def _missing_files(folder: Path, is_pipeline: bool, skip_components: Iterable[str]) -> list[str]:
    """The configuration and weight files of a diffusers folder (local or a cache snapshot) that are absent.

    A model folder needs ``config.json`` and a ``*.safetensors`` or ``*.bin`` weight file; a pipeline folder
    needs ``model_index.json`` and, for each listed component that is loaded, its configuration (and, for
    models, its weights). Tokenizers and schedulers carry no weights.
    """
    if not is_pipeline:
        missing = [] if (folder / "config.json").is_file() else ["config.json"]
        if not any(path.suffix in _WEIGHT_SUFFIXES and path.is_file() for path in folder.iterdir()):
            missing.append("weights (*.safetensors or *.bin)")
        return missing
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        return ["model_index.json"]
    missing = []
    for component, entry in json.loads(index_path.read_text()).items():
        if component in skip_components or not isinstance(entry, list) or entry[-1] is None:
            continue
        component_dir = folder / component
        class_name = entry[-1]
        if class_name.endswith("Scheduler"):
            required_config = "scheduler_config.json"
        elif "Tokenizer" in class_name:
            required_config = "tokenizer_config.json"
        else:
            required_config = "config.json"
        if not (component_dir / required_config).is_file():
            missing.append(f"{component}/{required_config}")
        elif required_config == "config.json":
            missing += [
                f"{component}/{name}" for name in _missing_files(component_dir, False, ()) if name != "config.json"
            ]
    return missing


def model_problems(backend: str, settings: Mapping[str, Any] | None = None) -> list[str]:
    """Why each configured model cannot be loaded as configured, with how to provide it; empty when all can.

    Each of ``base_model``, the ControlNets its ``conditioning`` uses (``controlnet_model`` for canny,
    ``depth_controlnet_model`` for depth) and ``vae_model`` must be an existing local diffusers folder
    or a Hub id. When offline (``local_files_only`` true, or null with ``HF_HUB_OFFLINE`` set) a Hub id must be
    in the Hugging Face cache (``HF_HUB_CACHE``, by default ``$HF_HOME/hub``) with its configuration and weights.
    With downloads allowed a Hub id that is not cached passes: ``from_pretrained`` downloads it when loading.
    Only files are looked at (no network, no GPU), so the workflow runs it before any job.
    """
    settings = resolve_settings(backend, settings)
    return [
        problem + "\n" + how_to_provide(backend, key, model)
        for key, model, is_pipeline in model_slots(settings)
        if (problem := _availability_problem(backend, settings, key, model, is_pipeline)) is not None
    ]


def check_models_available(backend: str, settings: Mapping[str, Any] | None = None) -> None:
    """Raise ModelNotAvailableError listing ``model_problems``, before any work, if there are any."""
    problems = model_problems(backend, settings)
    if problems:
        raise ModelNotAvailableError("\n\n".join(problems))


def model_revision(model: str) -> str | None:
    """What identifies the weights behind a ``*_model`` setting, recorded with every generated image.

    A local folder: ``sha256:<hex>`` over the relative path and content of every file in it (so a fine-tuned
    checkpoint saved over the same folder gets another value). A Hub id: the commit of its snapshot in the
    Hugging Face cache (``from_pretrained`` loads from that snapshot), or None if it is not cached.
    """
    local = Path(model).expanduser()
    if local.is_dir():
        digest = hashlib.sha256()
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            with open(path, "rb") as handle:
                file_digest = hashlib.file_digest(handle, "sha256").hexdigest()
            digest.update(f"{path.relative_to(local).as_posix()}\0{file_digest}\n".encode())
        return f"sha256:{digest.hexdigest()}"
    from huggingface_hub import try_to_load_from_cache

    for name in ("model_index.json", "config.json"):
        cached = try_to_load_from_cache(model, name)
        if isinstance(cached, str):
            match = re.search(r"/snapshots/([^/]+)/", Path(cached).as_posix())
            return match.group(1) if match else None
    return None


def _availability_problem(
    backend: str, settings: Mapping[str, Any], key: str, model: str, is_pipeline: bool
) -> str | None:
    """Why one configured model cannot be loaded as configured, or None when it can."""
    from huggingface_hub import constants, try_to_load_from_cache

    local_only = offline(settings)
    where = f"generate.{backend}.{key} = {model!r}"
    local = Path(model).expanduser()
    if local.is_dir():
        folder, origin = local, f"the local directory {local.resolve()}"
    elif _looks_like_path(model) or local.exists():
        return f"{where} is not an existing directory ({local.resolve()})."
    else:
        cached = try_to_load_from_cache(model, "model_index.json" if is_pipeline else "config.json")
        if not isinstance(cached, str):
            if not local_only:
                return None
            return (
                f"{where} is needed but downloads are off (HF_HUB_OFFLINE or local_files_only) and it is not in the "
                f"Hugging Face cache ({constants.HF_HUB_CACHE}); no local directory of that name exists either "
                f"({local.resolve()})."
            )
        folder = Path(cached).parent
        origin = f"its copy in the Hugging Face cache ({folder})"
    skip_components = _COMPONENTS_NOT_LOADED + (("vae",) if settings["vae_model"] is not None else ())
    missing = _missing_files(folder, is_pipeline, skip_components)
    # A partial cache is fine when downloads are allowed: from_pretrained fetches what is missing.
    if missing and (local_only or folder == local):
        kind = "pipeline" if is_pipeline else "model"
        return (
            f"{where}: {origin} lacks {', '.join(missing)} (an incomplete download, or not a diffusers {kind} folder)."
        )
    return None
