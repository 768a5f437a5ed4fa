"""The ``controlnet`` and ``controlnet-sdxl`` backends of the generate stage (diffusers).

A shard of images goes through Stable Diffusion 1.5 + the canny ControlNet v1.1 (``controlnet``) or SDXL + the
canny SDXL ControlNet (``controlnet-sdxl``), conditioned on each image's Canny edge map and prompt. Defaults
follow the published systems (``DEFAULT_DIFFUSION_SETTINGS``; shared/ANCHORS.md, "Diffusion"):

- ``controlnet``: DDIM with eta 1.0, 20 steps, classifier-free guidance 9.0, ControlNet scale 1.0, 512 px,
  batch 4, as in 3D-DST's ``controlnet_v11.py`` (the ControlNet repository's DDIM sampler, whose uniform
  timesteps are diffusers' "leading" spacing with ``steps_offset`` 1 of the SD 1.5 scheduler config).
- ``controlnet-sdxl``: 3D-DST's ``controlnet_canny_sdxl.py`` calls the pipeline with its defaults: the base
  model's own Euler scheduler, 50 steps, guidance 5.0, ControlNet scale 1.0, the fp16-fix VAE, 1024 px.

Settings (one block per backend, every key optional over the defaults; see ``resolve_settings``):
``base_model``, ``controlnet_model``, ``vae_model`` (Hugging Face ids or local folders written by
``save_pretrained`` / ``hf download --local-dir``; ``vae_model`` null keeps the base model's VAE), ``scheduler``
(``ddim`` | ``unipc`` | ``euler``), ``eta`` (DDIM only), ``steps``, ``guidance_scale``, ``conditioning_scale``,
``size`` (side of the square output in px, a multiple of 8), ``batch_size`` (images per pipeline call),
``device`` (``auto`` = CUDA when present, else CPU; or ``cpu``, ``cuda``, ``cuda:N``), ``dtype`` (``auto`` =
float16 on CUDA, float32 on CPU; or ``float16``, ``bfloat16``, ``float32``), ``cpu_offload`` (model CPU offload
through accelerate, CUDA only), ``attention`` (``sdpa`` = torch's scaled_dot_product_attention, ``eager`` = the
plain matmul-softmax processor), ``background`` (``generated`` keeps the whole generated image, as 3D-DST;
``paste`` puts the generated object region onto the image's background photo, as P3D-Diffusion) and
``local_files_only`` (null follows ``HF_HUB_OFFLINE``; true never touches the network).

Reproducibility. Every image has its own ``torch.Generator`` on the CPU seeded with the image's
``generate_seed``; the pipeline draws that image's initial latents and, for DDIM with eta > 0, its per-step
noise from it alone (diffusers' ``randn_tensor`` draws one slice per generator of a list). CPU generators make
the noise the same on every device. Numerically, a batched matrix product may round differently for a
different batch *shape*, and the VAE decoder's group norm for a different position in the batch, so:
every pipeline call has exactly ``batch_size`` images (a shard's last batch is padded with copies of its last
image, whose outputs are dropped) and the VAE decodes one image at a time. With these, an image is bit-identical
whatever the shard size, its position in the shard and the job order, for a given device, dtype, batch size and
library versions (verified on CPU in tests/test_diffusion.py). Changing ``batch_size`` changes an image only by
floating-point rounding (in the float32 CPU test, at most one grey level on under 1 % of the pixels; float16 on a
GPU was not measured), so ``batch_size`` is recorded with every image.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import platform
import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from PIL import Image

if TYPE_CHECKING:
    import torch

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
BACKGROUND_MODES = ("generated", "paste")
ATTENTION_MODES = ("sdpa", "eager")
DTYPES = ("auto", "float16", "bfloat16", "float32")

#: Columns that ``generate_shard`` reads from its records; ``background: paste`` reads ``PASTE_COLUMNS`` too.
RECORD_COLUMNS = ("image_id", "generate_seed", "prompt", "edge_path")
PASTE_COLUMNS = ("mask_path", "background_path")

#: Pipeline components that the backend supplies itself or leaves out, so a base model need not hold them.
_COMPONENTS_NOT_LOADED = ("controlnet", "safety_checker", "feature_extractor", "image_encoder")

_WEIGHT_SUFFIXES = (".safetensors", ".bin")

_module_log = logging.getLogger(__name__)


class ModelNotAvailableError(RuntimeError):
    """A configured model can be found neither as a local folder nor (when offline) in the Hugging Face cache."""


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

    for key in ("base_model", "controlnet_model"):
        require(isinstance(resolved[key], str) and bool(resolved[key]), key, "a model id or a local directory")
    require(resolved["vae_model"] is None or isinstance(resolved["vae_model"], str), "vae_model", "null or a model")
    require(resolved["scheduler"] in SCHEDULERS, "scheduler", f"one of {SCHEDULERS}")
    require(_is_number(resolved["eta"]) and resolved["eta"] >= 0, "eta", "a number >= 0")
    require(_is_integer(resolved["steps"]) and resolved["steps"] >= 1, "steps", "an integer >= 1")
    require(_is_number(resolved["guidance_scale"]), "guidance_scale", "a number")
    require(_is_number(resolved["conditioning_scale"]), "conditioning_scale", "a number")
    require(
        _is_integer(resolved["size"]) and resolved["size"] > 0 and resolved["size"] % 8 == 0,
        "size",
        "a positive multiple of 8 (pixels)",
    )
    require(_is_integer(resolved["batch_size"]) and resolved["batch_size"] >= 1, "batch_size", "an integer >= 1")
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


def _is_integer(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _offline(settings: Mapping[str, Any]) -> bool:
    """Whether loading may only use local files: ``local_files_only``, or ``HF_HUB_OFFLINE`` when that is null."""
    if settings["local_files_only"] is not None:
        return settings["local_files_only"]
    from huggingface_hub import constants

    return constants.HF_HUB_OFFLINE


def _model_slots(settings: Mapping[str, Any]) -> list[tuple[str, str, bool]]:
    """(settings key, model id or folder, is a whole pipeline) of every model the backend loads."""
    slots = [("base_model", settings["base_model"], True), ("controlnet_model", settings["controlnet_model"], False)]
    if settings["vae_model"] is not None:
        slots.append(("vae_model", settings["vae_model"], False))
    return slots


def _looks_like_path(model: str) -> bool:
    """True unless ``model`` has the shape of a Hub id (``name`` or ``owner/name`` of letters, digits, ``-_.``)."""
    return re.fullmatch(r"[\w.-]+(/[\w.-]+)?", model) is None or model.startswith((".", "~"))


def _how_to_provide(backend: str, key: str, model: str) -> str:
    if _looks_like_path(model):
        hub_id = DEFAULT_DIFFUSION_SETTINGS[backend][key] or "OWNER/NAME"
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


def check_models_available(backend: str, settings: Mapping[str, Any] | None = None) -> None:
    """Raise ModelNotAvailableError, before any work, if a configured model cannot be loaded as configured.

    Each of ``base_model``, ``controlnet_model`` and ``vae_model`` must be an existing local diffusers folder
    or a Hub id. When offline (``local_files_only`` true, or null with ``HF_HUB_OFFLINE`` set) a Hub id must be
    in the Hugging Face cache (``HF_HUB_CACHE``, by default ``$HF_HOME/hub``) with its configuration and weights.
    With downloads allowed a Hub id that is not cached passes: ``from_pretrained`` downloads it when loading.
    The message lists every unavailable model with its config key and how to provide it.
    """
    settings = resolve_settings(backend, settings)
    problems = [
        problem + "\n" + _how_to_provide(backend, key, model)
        for key, model, is_pipeline in _model_slots(settings)
        if (problem := _availability_problem(backend, settings, key, model, is_pipeline)) is not None
    ]
    if problems:
        raise ModelNotAvailableError("\n\n".join(problems))


def _availability_problem(
    backend: str, settings: Mapping[str, Any], key: str, model: str, is_pipeline: bool
) -> str | None:
    """Why one configured model cannot be loaded as configured, or None when it can."""
    from huggingface_hub import constants, try_to_load_from_cache

    offline = _offline(settings)
    where = f"generate.{backend}.{key} = {model!r}"
    local = Path(model).expanduser()
    if local.is_dir():
        folder, origin = local, f"the local directory {local.resolve()}"
    elif _looks_like_path(model) or local.exists():
        return f"{where} is not an existing directory ({local.resolve()})."
    else:
        cached = try_to_load_from_cache(model, "model_index.json" if is_pipeline else "config.json")
        if not isinstance(cached, str):
            if not offline:
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
    if missing and (offline or folder == local):
        kind = "pipeline" if is_pipeline else "model"
        return (
            f"{where}: {origin} lacks {', '.join(missing)} (an incomplete download, or not a diffusers {kind} folder)."
        )
    return None


def resolve_device(device: str) -> torch.device:
    """The torch device of a ``device`` setting: ``auto`` is ``cuda`` when CUDA is available, else ``cpu``."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} is configured but torch sees no CUDA device (torch {torch.__version__})")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """The torch dtype of a ``dtype`` setting: ``auto`` is float16 on CUDA and float32 elsewhere."""
    import torch

    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return getattr(torch, dtype)


def fit_background(background: Image.Image, size: int) -> Image.Image:
    """``background`` as RGB scaled (Lanczos) to cover a ``size`` x ``size`` square, then cropped to it, centred.

    An image that already covers the square at scale 1 (one side equal to ``size``, the other at least as long)
    is only cropped, so its pixels are kept exactly.
    """
    background = background.convert("RGB")
    scale = max(size / background.width, size / background.height)
    width = max(size, round(background.width * scale))
    height = max(size, round(background.height * scale))
    if (width, height) != background.size:
        background = background.resize((width, height), Image.Resampling.LANCZOS)
    left, top = (width - size) // 2, (height - size) // 2
    return background.crop((left, top, left + size, top + size))


def paste_object(generated: Image.Image, mask: Image.Image, background: Image.Image) -> Image.Image:
    """The generated image inside the object mask over the fitted background photo outside it (P3D-Diffusion).

    ``mask`` is the renderer's object mask (uint8, 255 = object), resized to the generated image with nearest
    neighbour and thresholded at 128, so every output pixel is exactly a generated or a background pixel.
    ``generated`` must be square; the background is fitted to it with ``fit_background``.
    """
    size = generated.width
    object_mask = np.asarray(mask.convert("L").resize(generated.size, Image.Resampling.NEAREST)) >= 128
    pixels = np.where(
        object_mask[..., None], np.asarray(generated.convert("RGB")), np.asarray(fit_background(background, size))
    )
    return Image.fromarray(pixels)


def _write_png_atomically(image: Image.Image, path: Path) -> None:
    """Write ``image`` to ``path`` as PNG through a temporary name in the same folder and ``os.replace``."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        image.save(temporary, format="PNG")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _load_edge_map(path: str | Path) -> Image.Image:
    """An edge map as RGB; it must be square, as the output is (a stretch would break the 3D annotation)."""
    with Image.open(path) as opened:
        edges = opened.convert("RGB")
    if edges.width != edges.height:
        raise ValueError(
            f"edge map {path} is {edges.width}x{edges.height}; the diffusion backends generate square images, so "
            "render square images (or crop the edge map square before this stage)"
        )
    return edges


def import_diffusers() -> ModuleType:
    """Import and return diffusers, first making torchvision importable where it is installed.

    transformers imports torchvision whenever it is installed, and the CUDA-linked torchvision wheel does not
    import on CPU-only torch without ``dst3d.torch_compat.import_torchvision``.
    """
    if importlib.util.find_spec("torchvision") is not None:
        from dst3d.torch_compat import import_torchvision

        import_torchvision()
    import diffusers

    return diffusers


class ControlNetBackend:
    """A loaded ControlNet pipeline and its resolved settings; ``generate`` runs it over shards of images.

    Construction resolves and validates the settings, checks that every model is available
    (``check_models_available``), then loads the pipeline once with ``from_pretrained`` on the configured device
    and dtype; ``generate`` can then be called for any number of shards.
    """

    def __init__(self, backend: str, settings: Mapping[str, Any] | None = None, log: logging.Logger | None = None):
        self.backend = backend
        self.settings = resolve_settings(backend, settings)
        self.log = log or _module_log
        check_models_available(backend, self.settings)
        self.device = resolve_device(self.settings["device"])
        self.dtype = resolve_dtype(self.settings["dtype"], self.device)
        self.pipeline = self._load_pipeline()

    def _load_pipeline(self):
        import_diffusers()
        from diffusers import (
            AutoencoderKL,
            ControlNetModel,
            DDIMScheduler,
            EulerDiscreteScheduler,
            StableDiffusionControlNetPipeline,
            StableDiffusionXLControlNetPipeline,
            UniPCMultistepScheduler,
        )
        from diffusers.models.attention_processor import AttnProcessor2_0

        settings, offline = self.settings, _offline(self.settings)
        started = time.perf_counter()

        def load(key: str, model_class, **components):
            model = settings[key]
            try:
                return model_class.from_pretrained(model, dtype=self.dtype, local_files_only=offline, **components)
            except OSError as error:
                raise ModelNotAvailableError(
                    f"generate.{self.backend}.{key} = {model!r} could not be loaded: {error}\n"
                    + _how_to_provide(self.backend, key, model)
                ) from error

        components: dict[str, Any] = {"controlnet": load("controlnet_model", ControlNetModel)}
        if settings["vae_model"] is not None:
            components["vae"] = load("vae_model", AutoencoderKL)
        if self.backend == "controlnet":
            # As in 3D-DST: no safety checker (it would black out images and needs weights of its own).
            pipeline_class = StableDiffusionControlNetPipeline
            components.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        else:
            # No invisible watermark, so that pixels do not depend on whether invisible-watermark is installed.
            pipeline_class = StableDiffusionXLControlNetPipeline
            components.update(add_watermarker=False)
        pipeline = load("base_model", pipeline_class, **components)
        scheduler_class = {
            "ddim": DDIMScheduler,
            "unipc": UniPCMultistepScheduler,
            "euler": EulerDiscreteScheduler,
        }[settings["scheduler"]]
        pipeline.scheduler = scheduler_class.from_config(pipeline.scheduler.config)
        for model in (pipeline.unet, pipeline.controlnet, pipeline.vae):
            if settings["attention"] == "sdpa":
                model.set_attn_processor(AttnProcessor2_0())
            else:
                model.set_default_attn_processor()
        # One image per VAE decode: its group norms round differently for different positions in a batch.
        pipeline.vae.enable_slicing()
        pipeline.set_progress_bar_config(disable=True)
        if settings["cpu_offload"] and self.device.type == "cuda":
            pipeline.enable_model_cpu_offload(device=self.device)
        else:
            if settings["cpu_offload"]:
                self.log.warning("cpu_offload is set but the device is %s: the models stay where they are", self.device)
            pipeline.to(self.device)
        self.log.info(
            "loaded %s (%s + %s%s) on %s as %s in %.1f s",
            self.backend,
            settings["base_model"],
            settings["controlnet_model"],
            f" + {settings['vae_model']}" if settings["vae_model"] else "",
            self.device,
            str(self.dtype).removeprefix("torch."),
            time.perf_counter() - started,
        )
        return pipeline

    def generation_record(self, negative_prompt: str) -> dict[str, Any]:
        """The settings that shape every image, as stored next to each image (``eta`` is null unless DDIM)."""
        import diffusers
        import torch

        settings = self.settings
        if self.device.type == "cuda":
            device_name = torch.cuda.get_device_name(self.device)
        else:
            device_name = platform.processor() or platform.machine()
        return {
            "backend": self.backend,
            "base_model": settings["base_model"],
            "controlnet_model": settings["controlnet_model"],
            "vae_model": settings["vae_model"],
            "scheduler": settings["scheduler"],
            "steps": settings["steps"],
            "guidance_scale": float(settings["guidance_scale"]),
            "conditioning_scale": float(settings["conditioning_scale"]),
            "eta": float(settings["eta"]) if settings["scheduler"] == "ddim" else None,
            "size": settings["size"],
            "batch_size": settings["batch_size"],
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": str(self.device),
            "device_name": device_name,
            "background_mode": settings["background"],
            "negative_prompt": negative_prompt,
            "diffusers_version": diffusers.__version__,
        }

    def generate(self, records: pd.DataFrame, out_dir: Path, negative_prompt: str) -> pd.DataFrame:
        """Generate ``out_dir/{image_id}.png`` (size x size RGB) for every record; return one row per image.

        ``records`` needs the columns of ``RECORD_COLUMNS``, and of ``PASTE_COLUMNS`` with ``background: paste``
        (others are ignored). The returned frame keeps the input order and holds ``image_id``, ``image_path``,
        ``seed`` and the ``generation_record`` columns.
        """
        import torch

        settings, size, batch_size = self.settings, self.settings["size"], self.settings["batch_size"]
        paste = settings["background"] == "paste"
        columns = _check_records(records, paste)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        record = self.generation_record(negative_prompt)
        rows = list(records[columns].itertuples(index=False))
        step_arguments = {"eta": float(settings["eta"])} if settings["scheduler"] == "ddim" else {}
        outputs = []
        started = time.perf_counter()
        for batch_start in range(0, len(rows), batch_size):
            batch = rows[batch_start : batch_start + batch_size]
            # Pad to a full batch: every call has the same shapes, so an image never depends on the shard size.
            padded = batch + [batch[-1]] * (batch_size - len(batch))
            edges = [_load_edge_map(row.edge_path) for row in batch]
            edges += [edges[-1]] * (batch_size - len(batch))
            images = self.pipeline(
                prompt=[str(row.prompt) for row in padded],
                negative_prompt=[negative_prompt] * batch_size,
                image=edges,
                height=size,
                width=size,
                num_inference_steps=settings["steps"],
                guidance_scale=float(settings["guidance_scale"]),
                controlnet_conditioning_scale=float(settings["conditioning_scale"]),
                generator=[torch.Generator("cpu").manual_seed(int(row.generate_seed)) for row in padded],
                output_type="pil",
                **step_arguments,
            ).images[: len(batch)]
            for row, image in zip(batch, images, strict=True):
                if paste:
                    with Image.open(row.mask_path) as mask, Image.open(row.background_path) as background:
                        image = paste_object(image, mask, background)
                image_path = out_dir / f"{row.image_id}.png"
                _write_png_atomically(image, image_path)
                outputs.append(
                    {"image_id": row.image_id, "image_path": str(image_path), "seed": int(row.generate_seed)}
                )
            self.log.info(
                "generated %d/%d images (%.2f s per image so far)",
                batch_start + len(batch),
                len(rows),
                (time.perf_counter() - started) / (batch_start + len(batch)),
            )
        return pd.DataFrame(
            [{**output, **record} for output in outputs], columns=["image_id", "image_path", "seed", *record]
        )


def _check_records(records: pd.DataFrame, paste: bool) -> list[str]:
    """The columns that the backend reads; raises ValueError if one is missing or an image id repeats."""
    columns = list(RECORD_COLUMNS + (PASTE_COLUMNS if paste else ()))
    missing = [column for column in columns if column not in records.columns]
    if missing:
        raise ValueError(f"generate records lack the columns {missing}")
    duplicated = records["image_id"][records["image_id"].duplicated()].tolist()
    if duplicated:
        raise ValueError(f"generate records repeat the image ids {duplicated[:5]}")
    return columns


def generate_shard(
    backend: str,
    records: pd.DataFrame,
    out_dir: Path,
    settings: Mapping[str, Any],
    negative_prompt: str,
    log: logging.Logger | None = None,
) -> pd.DataFrame:
    """Generate one shard with a diffusion backend: check the records and models, load once, generate all.

    See ``ControlNetBackend.generate`` for the files written and the frame returned. Missing models raise
    ModelNotAvailableError before anything is loaded or written.
    """
    _check_records(records, resolve_settings(backend, settings)["background"] == "paste")
    return ControlNetBackend(backend, settings, log).generate(records, out_dir, negative_prompt)
