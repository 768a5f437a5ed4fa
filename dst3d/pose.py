"""The pose estimator of 3D-DST ("ResNet50-General"): a torchvision ResNet whose head classifies azimuth,
elevation and in-plane rotation into 41 bins each (123 outputs), trained with cross-entropy that ignores
out-of-range angles (index 41). The same network and training loop serve the second task, category
classification (:mod:`dst3d.classify`), through a :class:`Task` (head size and loss).

Images enter as crops around the object's 2D box (enlarged by ``context`` and made square), resized to
``input_size`` and normalised with the ImageNet mean and standard deviation. All crops of a training set are
decoded once into memory (uint8) before the first epoch, so no epoch waits on image decoding.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from dst3d import geometry
from dst3d.io import atomic_path, read_image
from dst3d.torch_compat import import_torchvision

_log = logging.getLogger(__name__)
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
BACKBONES = ("resnet18", "resnet34", "resnet50")
#: ``train.optimizer``: SGD with momentum (the published setting) or AdamW (trains a network from scratch on a
#: few hundred images in far fewer steps; use a learning rate around 1e-3 with it).
OPTIMIZERS = ("sgd", "adamw")
#: ``train.lr_schedule``: StepLR (``lr_step_epochs``, ``lr_gamma``; published) or cosine annealing to 0 over
#: ``epochs``.
LR_SCHEDULES = ("step", "cosine")
#: ``train.device``: ``auto`` trains on the first CUDA GPU when torch sees one, else on the CPU.
DEVICES = ("auto", "cpu", "cuda")
#: ``train.precision``: ``float32`` throughout, or ``bfloat16`` autocast for the forward pass (the loss, the
#: weights and the optimiser stay float32; on CUDA the network also runs in channels-last layout).
PRECISIONS = ("float32", "bfloat16")
POSE_OUTPUTS = 3 * geometry.NUM_BINS


def memory_layout(precision: str, device: torch.device) -> torch.memory_format:
    """The layout the network and its inputs train in: channels-last for bfloat16 on CUDA (where the tensor
    cores want it), the usual contiguous layout otherwise."""
    return torch.channels_last if precision == "bfloat16" and device.type == "cuda" else torch.contiguous_format


class PretrainedWeightsMissing(RuntimeError):
    """ImageNet weights were requested but are not in the torch cache."""


def resolve_device(name: str) -> torch.device:
    """The torch device of ``train.device`` (``auto``, ``cpu`` or ``cuda``); ``cuda`` without a visible GPU is
    an error that says what to change, never a silent fall-back to hours of CPU training."""
    if name not in DEVICES:
        raise ValueError(f"train.device: unknown device {name!r}; use one of {DEVICES}")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "train.device is cuda but torch sees no CUDA GPU (torch.cuda.is_available() is false): run the job "
            "on a GPU node with a CUDA build of torch, or set train.device: cpu (or auto)"
        )
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def pretrained_weights_path(backbone: str) -> tuple[Path, str]:
    """Where torchvision's ImageNet (IMAGENET1K_V1) weights of ``backbone`` lie in the torch cache, and their URL."""
    if backbone not in BACKBONES:
        raise ValueError(f"train.backbone: unknown backbone {backbone!r}; use one of {BACKBONES}")
    weights = import_torchvision().models.get_model_weights(backbone).IMAGENET1K_V1
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url), weights.url


def build_model(backbone: str, pretrained: bool, outputs: int = POSE_OUTPUTS,
                zero_init_residual: bool = False) -> torch.nn.Module:
    """A torchvision ResNet with an ``outputs``-way linear head (3 x 41 pose bins by default). ImageNet weights
    only from the local torch cache: a missing file stops with a message saying where to put it.
    ``zero_init_residual`` starts every residual block as the identity (for training from scratch)."""
    if backbone not in BACKBONES:
        raise ValueError(f"train.backbone: unknown backbone {backbone!r}; use one of {BACKBONES}")
    models = import_torchvision().models
    model = getattr(models, backbone)(weights=None, zero_init_residual=zero_init_residual)
    if pretrained:
        cached, url = pretrained_weights_path(backbone)
        if not cached.is_file():
            raise PretrainedWeightsMissing(
                f"train.pretrained is true but the ImageNet weights of {backbone} are not at {cached}. "
                f"Download {url} to that path (or set TORCH_HOME to a folder holding hub/checkpoints/"
                f"{cached.name}), or set train.pretrained: false"
            )
        model.load_state_dict(torch.load(cached, map_location="cpu", weights_only=True))
    model.fc = torch.nn.Linear(model.fc.in_features, outputs)
    return model


def pose_labels(frame: pd.DataFrame) -> np.ndarray:
    """N x 3 int64 bin labels (azimuth, elevation, theta) of the canonical poses in ``frame``."""
    return np.stack([
        geometry.azimuth_to_bin(frame["azimuth"].to_numpy()),
        geometry.signed_angle_to_bin(frame["elevation"].to_numpy()),
        geometry.signed_angle_to_bin(frame["theta"].to_numpy()),
    ], axis=1)


def object_boxes(frame: pd.DataFrame) -> np.ndarray:
    """N x 4 object boxes (x0, y0, x1, y1) in pixels of the images at ``image_path`` (pixel-corner origin).

    Generated images carry the render's mask box (``bbox_*`` in render pixels, render size ``width`` x
    ``height``), scaled here to the generated image's size; an empty mask (``bbox_x0 < 0``) gives the whole
    image. Real benchmark tables (:mod:`dst3d.datasets`) have no render size: their ``bbox_*`` are already in
    image pixels.
    """
    boxes = frame[["bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"]].to_numpy(dtype=float)
    if "width" not in frame:
        return boxes
    image_width = frame["image_width"].to_numpy(dtype=float)
    image_height = frame["image_height"].to_numpy(dtype=float)
    scale_x = image_width / frame["width"].to_numpy(dtype=float)
    scale_y = image_height / frame["height"].to_numpy(dtype=float)
    whole = np.stack([np.zeros_like(image_width), np.zeros_like(image_height), image_width, image_height], axis=1)
    return np.where(boxes[:, :1] < 0, whole, boxes * np.stack([scale_x, scale_y, scale_x, scale_y], axis=1))


def crop_box(box: np.ndarray, context: float) -> tuple[float, float, float, float]:
    """Square crop (x0, y0, x1, y1) centred on ``box``, its side the box's longest side times ``context``."""
    x0, y0, x1, y1 = (float(value) for value in box)
    side = max(x1 - x0, y1 - y0, 1.0) * context
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2


def load_crop(image_path: str, box: np.ndarray, input_size: int, context: float) -> np.ndarray:
    """The RGB crop around one object (input_size x input_size x 3 uint8); outside the image is black.

    The crop window is cut at whole pixels and shrunk with area averaging, so large real photos are not aliased.
    """
    image = read_image(image_path)
    x0, y0, x1, y1 = crop_box(box, context)
    left, top = int(np.floor(x0)), int(np.floor(y0))
    side = max(1, int(np.ceil(max(x1 - left, y1 - top))))
    height, width = image.shape[:2]
    window = image[max(top, 0):min(top + side, height), max(left, 0):min(left + side, width)]
    window = cv2.copyMakeBorder(
        window, max(-top, 0), max(top + side - height, 0), max(-left, 0), max(left + side - width, 0),
        cv2.BORDER_CONSTANT, value=(0, 0, 0),
    )
    interpolation = cv2.INTER_AREA if side > input_size else cv2.INTER_LINEAR
    crop = cv2.resize(window, (input_size, input_size), interpolation=interpolation)
    return cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)


def load_images(paths: list[str], boxes: np.ndarray, input_size: int, context: float, threads: int) -> torch.Tensor:
    """N x 3 x S x S uint8 tensor of the crops around ``boxes`` (decoded on ``threads`` threads)."""
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        crops = list(pool.map(lambda item: load_crop(item[0], item[1], input_size, context), zip(paths, boxes)))
    if not crops:
        return torch.empty((0, 3, input_size, input_size), dtype=torch.uint8)
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()


def augment(images: torch.Tensor, generator: torch.Generator, settings: dict) -> torch.Tensor:
    """Random crop jitter and colour jitter of a uint8 batch; the pose labels stay valid (no flips, no rotations).

    The crops were cut with ``padding`` extra context, so a crop of ``input_size`` at a random offset shifts the
    object by up to half the padding; brightness and contrast vary by +-``colour_jitter`` per image and channel.
    Without augmentation, the centre crop is used.
    """
    size = settings["input_size"]
    margin = images.shape[-1] - size
    if margin > 0:
        offsets = torch.randint(0, margin + 1, (len(images), 2), generator=generator).to(images.device)
        # One gather for the whole batch (a per-image slice loop costs a kernel launch per image on a GPU).
        window = torch.arange(size, device=images.device)
        rows = (offsets[:, 0, None] + window)[:, None, :, None]
        columns = (offsets[:, 1, None] + window)[:, None, None, :]
        batch = torch.arange(len(images), device=images.device)[:, None, None, None]
        channels = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
        images = images[batch, channels, rows, columns]
    images = images.float()
    jitter = settings["colour_jitter"]
    if jitter > 0:
        # Drawn on the CPU generator whatever the images' device, so the draws do not depend on the device.
        gain = 1 + jitter * (2 * torch.rand(len(images), 3, 1, 1, generator=generator) - 1)
        shift = 255 * jitter * (2 * torch.rand(len(images), 3, 1, 1, generator=generator) - 1) / 2
        gain, shift = gain.to(images.device), shift.to(images.device)
        mean = images.mean(dim=(2, 3), keepdim=True)
        images = ((images - mean) * gain + mean + shift).clamp(0, 255)
    return images


def centre_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """The central size x size window of a batch."""
    start = (images.shape[-1] - size) // 2
    return images[..., start:start + size, start:start + size]


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 (or float in 0..255) N x 3 x H x W -> float, ImageNet-normalised."""
    return (images.float() / 255.0 - IMAGENET_MEAN.to(images.device)) / IMAGENET_STD.to(images.device)


def pose_loss(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Sum over the three angles of the cross-entropy (ignore index 41). ``reduction='none'`` gives one
    value per image (the KCF score)."""
    losses = [
        F.cross_entropy(logits[:, k * geometry.NUM_BINS:(k + 1) * geometry.NUM_BINS], labels[:, k],
                        ignore_index=geometry.IGNORE_INDEX, reduction="none")
        for k in range(3)
    ]
    total = losses[0] + losses[1] + losses[2]
    return total.mean() if reduction == "mean" else total


@dataclass(frozen=True)
class Task:
    """What a network learns: ``outputs`` logits per image, scored against its labels by
    ``loss(logits, labels, reduction)``."""

    name: str
    outputs: int
    loss: Callable[..., torch.Tensor]


POSE = Task("pose", POSE_OUTPUTS, pose_loss)


@dataclass
class TrainResult:
    model: torch.nn.Module
    history: list[dict]


def _fingerprint(settings: dict, labels: np.ndarray, ids: list[str], task: Task = POSE) -> str:
    payload = json.dumps({"settings": settings, "ids": ids, "labels": labels.tolist(), "task": task.name,
                          "outputs": task.outputs}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def train(
    images: torch.Tensor, labels: np.ndarray, ids: list[str], settings: dict, seed: int, threads: int,
    resume_path: Path | None = None, log: logging.Logger = _log, task: Task = POSE,
) -> TrainResult:
    """Train a network for ``task`` (the pose estimator by default). ``settings`` is the config's ``train``
    block (backbone, pretrained, epochs, batch_size, lr, momentum, weight_decay, lr_step_epochs, lr_gamma,
    augment, input_size, crop_jitter, colour_jitter, and optionally optimizer, lr_schedule, zero_init_residual,
    device, precision); ``images`` are the padded uint8 crops of :func:`crops`, kept on the CPU (each batch is moved to the
    training device). The returned model stays on the training device.

    Deterministic on the CPU for a given seed and thread count (on CUDA up to cuDNN's non-deterministic kernels;
    the batches and augmentations are the same). With ``resume_path``, the state after every epoch is
    saved there (atomically) and a restarted job continues from it when data, settings and task are unchanged.
    """
    torch.set_num_threads(max(1, threads))
    torch.manual_seed(seed)
    device = resolve_device(settings.get("device", "cpu"))
    precision = settings.get("precision", "float32")
    if precision not in PRECISIONS:
        raise ValueError(f"train.precision: unknown precision {precision!r}; use one of {PRECISIONS}")
    layout = memory_layout(precision, device)
    model = build_model(settings["backbone"], settings["pretrained"], task.outputs,
                        zero_init_residual=settings.get("zero_init_residual", False)).to(device, memory_format=layout)
    optimizer = make_optimizer(model, settings)
    scheduler = make_scheduler(optimizer, settings)
    label_tensor = torch.from_numpy(labels).to(device)
    generator = torch.Generator().manual_seed(seed)
    fingerprint = _fingerprint(settings, labels, ids, task)
    history, start_epoch = [], 0
    if resume_path is not None and Path(resume_path).is_file():
        state = torch.load(resume_path, map_location="cpu", weights_only=False)
        if state["fingerprint"] == fingerprint:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            generator.set_state(state["generator"])
            history, start_epoch = state["history"], state["epoch"]
            log.info("resuming from %s after epoch %d", resume_path, start_epoch)
        else:
            log.info("ignoring %s: it was made for other data or settings", resume_path)
    for epoch in range(start_epoch, settings["epochs"]):
        model.train()
        order = torch.randperm(len(images), generator=generator)
        # The epoch's loss is summed on the training device (float64, as Python floats would be): reading each
        # batch's loss with .item() would make the CPU wait for the GPU at every step.
        total, count = torch.zeros((), dtype=torch.float64, device=device), 0
        for start in range(0, len(order), settings["batch_size"]):
            batch = order[start:start + settings["batch_size"]]
            if len(batch) < 2:  # batch norm needs two samples
                continue
            pixels = images[batch].to(device, non_blocking=True)
            inputs = augment(pixels, generator, settings) if settings["augment"] else centre_crop(pixels, settings["input_size"])
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16"):
                logits = model(normalise(inputs).contiguous(memory_format=layout))
            loss = task.loss(logits.float(), label_tensor[batch.to(device)])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.detach().double() * len(batch)
            count += len(batch)
        scheduler.step()
        history.append({"epoch": epoch + 1, "loss": total.item() / max(count, 1), "lr": scheduler.get_last_lr()[0]})
        log.info("epoch %d/%d loss %.4f", epoch + 1, settings["epochs"], history[-1]["loss"])
        if resume_path is not None:
            temporary = atomic_path(Path(resume_path))
            torch.save({"fingerprint": fingerprint, "epoch": epoch + 1, "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                        "generator": generator.get_state(), "history": history}, temporary)
            os.replace(temporary, resume_path)
    return TrainResult(model=model, history=history)


def make_optimizer(model: torch.nn.Module, settings: dict) -> torch.optim.Optimizer:
    """The optimiser named by ``train.optimizer`` (default ``sgd``) with the block's lr and weight decay."""
    name = settings.get("optimizer", "sgd")
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=settings["lr"], momentum=settings["momentum"],
                               weight_decay=settings["weight_decay"])
    if name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=settings["lr"], weight_decay=settings["weight_decay"])
    raise ValueError(f"train.optimizer: unknown optimizer {name!r}; use one of {OPTIMIZERS}")


def make_scheduler(optimizer: torch.optim.Optimizer, settings: dict) -> torch.optim.lr_scheduler.LRScheduler:
    """The per-epoch learning-rate schedule named by ``train.lr_schedule`` (default ``step``)."""
    name = settings.get("lr_schedule", "step")
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=settings["lr_step_epochs"],
                                               gamma=settings["lr_gamma"])
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings["epochs"])
    raise ValueError(f"train.lr_schedule: unknown schedule {name!r}; use one of {LR_SCHEDULES}")


@torch.no_grad()
def predict_logits(model: torch.nn.Module, images: torch.Tensor, input_size: int, batch_size: int = 64,
                   flip: bool = False) -> torch.Tensor:
    """Logits (N x outputs, on the CPU) of the centre ``input_size`` crops, computed on the model's device. With
    ``flip`` (pose head only), averaged with the mirrored image, whose azimuth and theta bins are reversed (valid
    for left-right symmetric categories only)."""
    model.eval()
    device = next(iter(model.parameters()), torch.empty(0)).device  # the CPU for a model without weights
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = normalise(centre_crop(images[start:start + batch_size], input_size).to(device))
        logits = model(batch)
        if flip:
            mirrored = model(torch.flip(batch, dims=[3]))
            bins = geometry.NUM_BINS
            azimuth, elevation, theta = mirrored[:, :bins], mirrored[:, bins:2 * bins], mirrored[:, 2 * bins:]
            logits = (logits + torch.cat([torch.flip(azimuth, [1]), elevation, torch.flip(theta, [1])], 1)) / 2
        outputs.append(logits.cpu())
    return torch.cat(outputs) if outputs else torch.empty((0, model.fc.out_features))


def decode(logits: torch.Tensor) -> np.ndarray:
    """N x 3 predicted (azimuth, elevation, theta) in radians: centres of the arg-max bins."""
    bins = geometry.NUM_BINS
    return np.stack([
        geometry.bin_to_azimuth(logits[:, :bins].argmax(1).numpy()),
        geometry.bin_to_signed_angle(logits[:, bins:2 * bins].argmax(1).numpy()),
        geometry.bin_to_signed_angle(logits[:, 2 * bins:].argmax(1).numpy()),
    ], axis=1)


def save_checkpoint(path: Path, model: torch.nn.Module, settings: dict, extra: dict) -> None:
    """Save weights, the head size, the settings and provenance (config, data manifest hash, history, ...)
    atomically."""
    temporary = atomic_path(Path(path))
    try:
        # Through a file handle: given a path, torch.save names the archive's inner folder after the temporary
        # file, so identical weights would give different bytes (and checkpoint hashes) in every run.
        with open(temporary, "wb") as handle:
            weights = {key: value.detach().cpu() for key, value in model.state_dict().items()}  # loadable anywhere
            torch.save({"model": weights, "outputs": model.fc.out_features, "settings": settings, **extra}, handle)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def load_checkpoint(path: Path) -> tuple[torch.nn.Module, dict]:
    """A model and its checkpoint dictionary (weights built without any download)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    model = build_model(checkpoint["settings"]["backbone"], pretrained=False, outputs=checkpoint["outputs"])
    model.load_state_dict(checkpoint["model"])
    return model, checkpoint


def manifest_hash(frame: pd.DataFrame) -> str:
    """Hash of what a model is trained or scored on: image ids, paths and pose labels, in id order."""
    columns = ["image_id", "image_path", "azimuth", "elevation", "theta"]
    ordered = frame.sort_values("image_id")[columns]
    return hashlib.sha256(ordered.to_csv(index=False, float_format="%.9g").encode()).hexdigest()


def crops(frame: pd.DataFrame, settings: dict, threads: int) -> torch.Tensor:
    """The uint8 crops (with the augmentation padding) of every object of an image table, in row order: a
    generated-image table or a benchmark table of :mod:`dst3d.datasets`."""
    size = padded_size(settings)
    context = settings["context"] * size / settings["input_size"]
    return load_images(frame["image_path"].tolist(), object_boxes(frame), size, context, threads)


def padded_size(settings: dict) -> int:
    """Side of the stored crops: the input size plus the jitter margin (``crop_jitter`` of it on each side)."""
    return settings["input_size"] + 2 * round(settings["crop_jitter"] * settings["input_size"])
