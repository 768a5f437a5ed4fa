"""The ``controlnet`` and ``controlnet-sdxl`` backends of the generate stage (diffusers).

A shard of images goes through Stable Diffusion 1.5 + the canny ControlNet v1.1 (``controlnet``) or SDXL + the
canny SDXL ControlNet (``controlnet-sdxl``), conditioned on each image's Canny edge map and prompt. Defaults
follow the published systems (config/schema.yaml's ``generate`` block; the official 3D-DST
generation scripts named below):

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
import logging
import platform
import time
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from PIL import Image

from dst3d.devices import resolve_device
from dst3d.generate.composite import fit_background
from dst3d.generate.hub import (
    ModelNotAvailableError,
    check_models_available,
    how_to_provide,
    model_revision,
    model_slots,
    offline,
)
from dst3d.generate.settings import resolve_settings, uses_canny, uses_depth
from dst3d.logs import eta_text

if TYPE_CHECKING:
    import torch

#: Columns that ``generate_shard`` reads from its records; ``background: paste`` reads ``PASTE_COLUMNS`` too.
RECORD_COLUMNS = ("image_id", "generate_seed", "prompt", "edge_path")
PASTE_COLUMNS = ("mask_path", "background_path")
DEPTH_COLUMNS = ("depth_path", "depth_scale")
#: Depth conditioning: the object's inverse depth, min-max normalised over its pixels onto this grey range (near
#: bright, as the depth ControlNets' MiDaS maps are), the background black.
DEPTH_CONTROL_RANGE = (64, 255)

_module_log = logging.getLogger(__name__)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """The torch dtype of a ``dtype`` setting: ``auto`` is float16 on CUDA and float32 elsewhere."""
    import torch

    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return getattr(torch, dtype)


def paste_object(generated: Image.Image, mask: Image.Image, background: Image.Image) -> Image.Image:
    """The generated image inside the object mask over the fitted background photo outside it (P3D-Diffusion).

    ``mask`` is the renderer's object mask (uint8, 255 = object), resized to the generated image with nearest
    neighbour and thresholded at 128, so every output pixel is exactly a generated or a background pixel.
    The background is fitted to the generated image's size as the composite backend fits it
    (:func:`dst3d.generate.composite.fit_background`: centre crop to the aspect ratio, then area resampling).
    """
    object_mask = np.asarray(mask.convert("L").resize(generated.size, Image.Resampling.NEAREST)) >= 128
    fitted = fit_background(np.asarray(background.convert("RGB")), generated.width, generated.height)
    pixels = np.where(object_mask[..., None], np.asarray(generated.convert("RGB")), fitted)
    return Image.fromarray(pixels)


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


def _control_tensor(images: list[Image.Image]):
    """A batch of RGB control images as the float tensor (B x 3 x H x W, values in [0, 1]) diffusers reads."""
    import torch

    pixels = np.stack([np.asarray(image.convert("RGB")) for image in images]).astype(np.float32) / 255.0
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()


def load_depth_control(path: str | Path, depth_scale: float) -> Image.Image:
    """The control image of a rendered depth map (``render.depth: png16``: uint16, depth / ``depth_scale``, 0 = no
    object): inverse depth over the object normalised onto :data:`DEPTH_CONTROL_RANGE`, background 0, as RGB."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: depth conditioning reads 16-bit PNG depth maps; set render.depth: png16")
    with Image.open(path) as opened:
        stored = np.asarray(opened, dtype=np.float64)
    if stored.ndim != 2:
        raise ValueError(f"{path}: expected a single-channel 16-bit depth map")
    control = np.zeros(stored.shape, np.uint8)
    inside = stored > 0
    if inside.any():
        inverse = 1.0 / (stored[inside] * float(depth_scale))
        low, high = inverse.min(), inverse.max()
        unit = (inverse - low) / (high - low) if high > low else np.ones_like(inverse)
        grey_low, grey_high = DEPTH_CONTROL_RANGE
        control[inside] = np.round(grey_low + unit * (grey_high - grey_low)).astype(np.uint8)
    return Image.fromarray(np.repeat(control[:, :, None], 3, axis=2))


def _edge_side(edges: list[Image.Image], path: str | Path) -> int:
    """The output side for ``size: null`` (the official SDXL code passes no size: diffusers generates at the control
    image's size): the edge maps' side, which must be one multiple of 8 for the whole batch."""
    sides = {edge.width for edge in edges}
    side = sides.pop()
    if sides or side % 8:
        raise ValueError(
            f"size: null generates at the edge map's size, but {path} is {side} px (batch sides {sorted({side, *sides})}): "
            "the side must be one multiple of 8 (set edges.short_side and edges.multiple), or set the backend's size"
        )
    return side


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
        self.device = resolve_device(self.settings["device"], f"generate.{backend}.device")
        self.dtype = resolve_dtype(self.settings["dtype"], self.device)
        self.pipeline = self._load_pipeline()
        self.revisions = {key: model_revision(model) for key, model, _ in model_slots(self.settings)}

    def _load_pipeline(self):
        """The pipeline of the settings, loaded, configured and on its device."""
        import_diffusers()
        started = time.perf_counter()
        pipeline_class, components = self._pipeline_class()
        components["controlnet"] = self._load_controlnets()
        if self.settings["vae_model"] is not None:
            from diffusers import AutoencoderKL

            components["vae"] = self._load("vae_model", AutoencoderKL)
        pipeline = self._load("base_model", pipeline_class, **components)
        self._set_scheduler(pipeline)
        self._set_attention(pipeline)
        # One image per VAE decode: its group norms round differently for different positions in a batch.
        pipeline.vae.enable_slicing()
        pipeline.set_progress_bar_config(disable=True)
        self._place(pipeline)
        self._log_loaded(time.perf_counter() - started)
        return pipeline

    def _load(self, key: str, model_class, **components):
        """``model_class`` from the model that ``key`` names (a Hub id or a local folder), in the configured dtype;
        offline when the settings say so. An unavailable model raises ModelNotAvailableError saying how to
        provide it."""
        model = self.settings[key]
        try:
            return model_class.from_pretrained(
                model, dtype=self.dtype, local_files_only=offline(self.settings), **components
            )
        except OSError as error:
            raise ModelNotAvailableError(
                f"generate.{self.backend}.{key} = {model!r} could not be loaded: {error}\n"
                + how_to_provide(self.backend, key, model)
            ) from error

    def _load_controlnets(self):
        """The ControlNet of the conditioning, or a list of them for a multi-ControlNet, in the order their
        control images are passed: canny, then depth."""
        from diffusers import ControlNetModel

        controlnets = [
            self._load(key, ControlNetModel)
            for key, _, _ in model_slots(self.settings)
            if key.endswith("controlnet_model")
        ]
        return controlnets[0] if len(controlnets) == 1 else controlnets

    def _pipeline_class(self) -> tuple[type, dict[str, Any]]:
        """The backend's pipeline class and the components it is built with besides the models."""
        from diffusers import StableDiffusionControlNetPipeline, StableDiffusionXLControlNetPipeline

        if self.backend == "controlnet":
            # As in 3D-DST: no safety checker (it would black out images and needs weights of its own).
            return StableDiffusionControlNetPipeline, {
                "safety_checker": None,
                "feature_extractor": None,
                "requires_safety_checker": False,
            }
        # No invisible watermark, so that pixels do not depend on whether invisible-watermark is installed.
        return StableDiffusionXLControlNetPipeline, {"add_watermarker": False}

    def _set_scheduler(self, pipeline) -> None:
        """The configured scheduler, built from the base model's scheduler config."""
        from diffusers import DDIMScheduler, EulerDiscreteScheduler, UniPCMultistepScheduler

        scheduler_class = {
            "ddim": DDIMScheduler,
            "unipc": UniPCMultistepScheduler,
            "euler": EulerDiscreteScheduler,
        }[self.settings["scheduler"]]
        pipeline.scheduler = scheduler_class.from_config(pipeline.scheduler.config)

    def _set_attention(self, pipeline) -> None:
        """The configured attention processor in the UNet, every ControlNet and the VAE."""
        from diffusers.models.attention_processor import AttnProcessor2_0

        nets = getattr(pipeline.controlnet, "nets", [pipeline.controlnet])  # a MultiControlNetModel holds several
        for model in (pipeline.unet, *nets, pipeline.vae):
            if self.settings["attention"] == "sdpa":
                model.set_attn_processor(AttnProcessor2_0())
            else:
                model.set_default_attn_processor()

    def _place(self, pipeline) -> None:
        """The pipeline on its device, or offloaded to the CPU between uses (CUDA only)."""
        if self.settings["cpu_offload"] and self.device.type == "cuda":
            pipeline.enable_model_cpu_offload(device=self.device)
            return
        if self.settings["cpu_offload"]:
            self.log.warning("cpu_offload is set but the device is %s: the models stay where they are", self.device)
        pipeline.to(self.device)

    def _log_loaded(self, seconds: float) -> None:
        settings = self.settings
        self.log.info(
            "loaded %s (%s + %s%s) on %s as %s in %.1f s",
            self.backend,
            settings["base_model"],
            " + ".join(model for key, model, _ in model_slots(settings) if key.endswith("controlnet_model")),
            f" + {settings['vae_model']}" if settings["vae_model"] else "",
            self.device,
            str(self.dtype).removeprefix("torch."),
            seconds,
        )

    def generation_record(self, negative_prompt: str) -> dict[str, Any]:
        """The settings that shape every image, as stored next to each image (``eta`` is null unless DDIM;
        ``*_model_revision`` from :func:`dst3d.generate.hub.model_revision`)."""
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
            "base_model_revision": self.revisions["base_model"],
            "conditioning": settings["conditioning"],
            "controlnet_model": settings["controlnet_model"] if uses_canny(settings) else None,
            "controlnet_model_revision": self.revisions.get("controlnet_model"),
            "depth_controlnet_model": settings["depth_controlnet_model"] if uses_depth(settings) else None,
            "depth_controlnet_model_revision": self.revisions.get("depth_controlnet_model"),
            "depth_conditioning_scale": float(settings["depth_conditioning_scale"]) if uses_depth(settings) else None,
            "vae_model": settings["vae_model"],
            "vae_model_revision": self.revisions.get("vae_model"),
            "scheduler": settings["scheduler"],
            "steps": settings["steps"],
            "guidance_scale": float(settings["guidance_scale"]),
            "conditioning_scale": float(settings["conditioning_scale"]) if uses_canny(settings) else None,
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
        """Write ``out_dir/{image_id}.png`` (size x size RGB) for every record; return one row per image.

        ``records`` needs the columns of ``RECORD_COLUMNS``, and of ``PASTE_COLUMNS`` with ``background: paste``
        (others are ignored). ``out_dir`` is written in place: the workflow passes a staging folder that is
        published as a whole (:func:`dst3d.generate.generate_shard`). The returned frame keeps the input order
        and holds ``image_id``, ``image_path``, ``image_width``, ``image_height`` and the ``generation_record``
        columns.
        """
        import torch

        settings, size, batch_size = self.settings, self.settings["size"], self.settings["batch_size"]
        paste = settings["background"] == "paste"
        columns = _check_records(records, paste, uses_depth(settings))
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
            controls, scales = [], []
            if uses_canny(settings):
                controls.append([_load_edge_map(row.edge_path) for row in padded])
                scales.append(float(settings["conditioning_scale"]))
            if uses_depth(settings):
                controls.append([load_depth_control(row.depth_path, row.depth_scale) for row in padded])
                scales.append(float(settings["depth_conditioning_scale"]))
            side = size or _edge_side(controls[0], batch[0].edge_path if uses_canny(settings) else batch[0].depth_path)
            images = self.pipeline(
                prompt=[str(row.prompt) for row in padded],
                negative_prompt=[negative_prompt] * batch_size,
                # Several ControlNets take one batch tensor each (in [0, 1]), in ControlNet order: the form both the
                # SD 1.5 and the SDXL pipelines accept for a batch of several conditionings.
                image=controls[0] if len(controls) == 1 else [_control_tensor(images) for images in controls],
                height=side,
                width=side,
                num_inference_steps=settings["steps"],
                guidance_scale=float(settings["guidance_scale"]),
                controlnet_conditioning_scale=scales[0] if len(scales) == 1 else scales,
                generator=[torch.Generator("cpu").manual_seed(int(row.generate_seed)) for row in padded],
                output_type="pil",
                **step_arguments,
            ).images[: len(batch)]
            for row, image in zip(batch, images, strict=True):
                if paste:
                    with Image.open(row.mask_path) as mask, Image.open(row.background_path) as background:
                        image = paste_object(image, mask, background)
                image_path = out_dir / f"{row.image_id}.png"
                image.save(image_path, format="PNG")
                outputs.append(
                    {
                        "image_id": row.image_id,
                        "image_path": str(image_path),
                        "image_width": image.width,
                        "image_height": image.height,
                    }
                )
            done = batch_start + len(batch)
            per_image = (time.perf_counter() - started) / done
            self.log.info(
                "generated %d/%d images (%.2f s per image so far, %.2f images/s, %s)",
                done,
                len(rows),
                per_image,
                1 / per_image if per_image > 0 else float("inf"),
                eta_text(per_image * (len(rows) - done), done, len(rows)),
            )
        return pd.DataFrame(
            [{**output, **record} for output in outputs],
            columns=["image_id", "image_path", "image_width", "image_height", *record],
        )


def _check_records(records: pd.DataFrame, paste: bool, depth: bool = False) -> list[str]:
    """The columns that the backend reads; raises ValueError if one is missing or an image id repeats."""
    columns = list(RECORD_COLUMNS + (PASTE_COLUMNS if paste else ()) + (DEPTH_COLUMNS if depth else ()))
    if depth and records["depth_path"].isna().any():
        image = records.loc[records["depth_path"].isna(), "image_id"].iloc[0]
        raise ValueError(f"{image} has no depth map: depth conditioning needs render.depth: png16")
    missing = [column for column in columns if column not in records.columns]
    if missing:
        raise ValueError(f"generate records lack the columns {missing}")
    duplicated = records["image_id"][records["image_id"].duplicated()].tolist()
    if duplicated:
        raise ValueError(f"generate records repeat the image ids {duplicated[:5]}")
    return columns


def generate_images(
    backend: str,
    records: pd.DataFrame,
    out_dir: Path,
    settings: Mapping[str, Any],
    negative_prompt: str,
    log: logging.Logger | None = None,
) -> pd.DataFrame:
    """Generate one shard's images with a diffusion backend: check the records and models, load once, generate.

    See ``ControlNetBackend.generate`` for the files written and the frame returned. Bad records raise ValueError
    and missing models ModelNotAvailableError before anything is loaded or written.
    """
    _check_records(records, resolve_settings(backend, settings)["background"] == "paste")
    return ControlNetBackend(backend, settings, log).generate(records, out_dir, negative_prompt)
