"""The pose estimator of 3D-DST ("ResNet50-General"): a torchvision ResNet whose head classifies azimuth,
elevation and in-plane rotation into 41 bins each (123 outputs), trained with cross-entropy that ignores
out-of-range angles (index 41).

Images enter as crops around the object's 2D box (enlarged by ``context`` and made square), resized to
``input_size`` and normalised with the ImageNet mean and standard deviation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

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


class PretrainedWeightsMissing(RuntimeError):
    """ImageNet weights were requested but are not in the torch cache."""


def build_model(backbone: str, pretrained: bool) -> torch.nn.Module:
    """A torchvision ResNet with a 3 x 41-bin head. ImageNet weights only from the local torch cache."""
    if backbone not in BACKBONES:
        raise ValueError(f"train.backbone: unknown backbone {backbone!r}; use one of {BACKBONES}")
    models = import_torchvision().models
    model = getattr(models, backbone)(weights=None)
    if pretrained:
        weights = models.get_model_weights(backbone).IMAGENET1K_V1
        cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
        if not cached.is_file():
            raise PretrainedWeightsMissing(
                f"train.pretrained is true but the ImageNet weights of {backbone} are not at {cached}. "
                f"Download {weights.url} to that path (or set TORCH_HOME to a folder holding hub/checkpoints/"
                f"{cached.name}), or set train.pretrained: false"
            )
        model.load_state_dict(torch.load(cached, map_location="cpu", weights_only=True))
    model.fc = torch.nn.Linear(model.fc.in_features, 3 * geometry.NUM_BINS)
    return model


def pose_labels(frame: pd.DataFrame) -> np.ndarray:
    """N x 3 int64 bin labels (azimuth, elevation, theta) of the canonical poses in ``frame``."""
    return np.stack([
        geometry.azimuth_to_bin(frame["azimuth"].to_numpy()),
        geometry.signed_angle_to_bin(frame["elevation"].to_numpy()),
        geometry.signed_angle_to_bin(frame["theta"].to_numpy()),
    ], axis=1)


def crop_box(record, context: float) -> tuple[float, float, float, float]:
    """Square crop (x0, y0, x1, y1) in generated-image pixels around the object's box, enlarged by ``context``.

    The box comes from the render's mask, scaled by the generated image's size over the render's size.
    """
    scale_x, scale_y = record.image_width / record.width, record.image_height / record.height
    x0, y0, x1, y1 = record.bbox_x0 * scale_x, record.bbox_y0 * scale_y, record.bbox_x1 * scale_x, record.bbox_y1 * scale_y
    if record.bbox_x0 < 0:  # empty mask: the whole image
        return 0.0, 0.0, float(record.image_width), float(record.image_height)
    side = max(x1 - x0, y1 - y0) * context
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2


def load_crop(record, input_size: int, context: float) -> np.ndarray:
    """The RGB crop of one image (input_size x input_size x 3 uint8); outside the image is black."""
    image = read_image(record.image_path)
    x0, y0, x1, y1 = crop_box(record, context)
    scale = input_size / (x1 - x0)
    affine = np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]], dtype=np.float64)
    crop = cv2.warpAffine(image, affine, (input_size, input_size), flags=cv2.INTER_AREA, borderValue=(0, 0, 0))
    return cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)


def load_images(frame: pd.DataFrame, input_size: int, context: float, threads: int) -> torch.Tensor:
    """N x 3 x S x S uint8 tensor of the crops of every image in ``frame`` (decoded on ``threads`` threads)."""
    records = list(frame.itertuples(index=False))
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        crops = list(pool.map(lambda record: load_crop(record, input_size, context), records))
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
        offsets = torch.randint(0, margin + 1, (len(images), 2), generator=generator)
        images = torch.stack([image[:, y:y + size, x:x + size] for image, (y, x) in zip(images, offsets.tolist())])
    images = images.float()
    jitter = settings["colour_jitter"]
    if jitter > 0:
        gain = 1 + jitter * (2 * torch.rand(len(images), 3, 1, 1, generator=generator) - 1)
        shift = 255 * jitter * (2 * torch.rand(len(images), 3, 1, 1, generator=generator) - 1) / 2
        mean = images.mean(dim=(2, 3), keepdim=True)
        images = ((images - mean) * gain + mean + shift).clamp(0, 255)
    return images


def centre_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """The central size x size window of a batch."""
    start = (images.shape[-1] - size) // 2
    return images[..., start:start + size, start:start + size]


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 (or float in 0..255) N x 3 x H x W -> float, ImageNet-normalised."""
    return (images.float() / 255.0 - IMAGENET_MEAN) / IMAGENET_STD


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


@dataclass
class TrainResult:
    model: torch.nn.Module
    history: list[dict]


def _fingerprint(settings: dict, labels: np.ndarray, ids: list[str]) -> str:
    payload = json.dumps({"settings": settings, "ids": ids, "labels": labels.tolist()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def train(
    images: torch.Tensor, labels: np.ndarray, ids: list[str], settings: dict, seed: int, threads: int,
    resume_path: Path | None = None, log: logging.Logger = _log,
) -> TrainResult:
    """Train a pose estimator. ``settings`` is the config's ``train`` block (backbone, pretrained, epochs,
    batch_size, lr, momentum, weight_decay, lr_step_epochs, lr_gamma).

    Deterministic for a given seed and thread count. With ``resume_path``, the state after every epoch is
    saved there (atomically) and a restarted job continues from it when data and settings are unchanged.
    """
    torch.set_num_threads(max(1, threads))
    torch.manual_seed(seed)
    model = build_model(settings["backbone"], settings["pretrained"])
    optimizer = torch.optim.SGD(model.parameters(), lr=settings["lr"], momentum=settings["momentum"],
                                weight_decay=settings["weight_decay"])
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=settings["lr_step_epochs"], gamma=settings["lr_gamma"])
    label_tensor = torch.from_numpy(labels)
    generator = torch.Generator().manual_seed(seed)
    fingerprint = _fingerprint(settings, labels, ids)
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
        total, count = 0.0, 0
        for start in range(0, len(order), settings["batch_size"]):
            batch = order[start:start + settings["batch_size"]]
            if len(batch) < 2:  # batch norm needs two samples
                continue
            inputs = augment(images[batch], generator, settings) if settings["augment"] else centre_crop(images[batch], settings["input_size"])
            loss = pose_loss(model(normalise(inputs)), label_tensor[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
            count += len(batch)
        scheduler.step()
        history.append({"epoch": epoch + 1, "loss": total / max(count, 1), "lr": scheduler.get_last_lr()[0]})
        log.info("epoch %d/%d loss %.4f", epoch + 1, settings["epochs"], history[-1]["loss"])
        if resume_path is not None:
            temporary = atomic_path(Path(resume_path))
            torch.save({"fingerprint": fingerprint, "epoch": epoch + 1, "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                        "generator": generator.get_state(), "history": history}, temporary)
            os.replace(temporary, resume_path)
    return TrainResult(model=model, history=history)


@torch.no_grad()
def predict_logits(model: torch.nn.Module, images: torch.Tensor, input_size: int, batch_size: int = 64,
                   flip: bool = False) -> torch.Tensor:
    """N x 123 logits of the centre ``input_size`` crops. With ``flip``, averaged with the mirrored image, whose
    azimuth and theta bins are reversed (valid for left-right symmetric categories only)."""
    model.eval()
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = normalise(centre_crop(images[start:start + batch_size], input_size))
        logits = model(batch)
        if flip:
            mirrored = model(torch.flip(batch, dims=[3]))
            bins = geometry.NUM_BINS
            azimuth, elevation, theta = mirrored[:, :bins], mirrored[:, bins:2 * bins], mirrored[:, 2 * bins:]
            logits = (logits + torch.cat([torch.flip(azimuth, [1]), elevation, torch.flip(theta, [1])], 1)) / 2
        outputs.append(logits)
    return torch.cat(outputs) if outputs else torch.empty((0, 3 * geometry.NUM_BINS))


def decode(logits: torch.Tensor) -> np.ndarray:
    """N x 3 predicted (azimuth, elevation, theta) in radians: centres of the arg-max bins."""
    bins = geometry.NUM_BINS
    return np.stack([
        geometry.bin_to_azimuth(logits[:, :bins].argmax(1).numpy()),
        geometry.bin_to_signed_angle(logits[:, bins:2 * bins].argmax(1).numpy()),
        geometry.bin_to_signed_angle(logits[:, 2 * bins:].argmax(1).numpy()),
    ], axis=1)


def save_checkpoint(path: Path, model: torch.nn.Module, settings: dict, extra: dict) -> None:
    """Save weights with the settings and provenance (data manifest hash, history, ...) atomically."""
    temporary = atomic_path(Path(path))
    try:
        torch.save({"model": model.state_dict(), "settings": settings, **extra}, temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def load_checkpoint(path: Path) -> tuple[torch.nn.Module, dict]:
    """A model and its checkpoint dictionary (weights built without any download)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    model = build_model(checkpoint["settings"]["backbone"], pretrained=False)
    model.load_state_dict(checkpoint["model"])
    return model, checkpoint


def manifest_hash(frame: pd.DataFrame) -> str:
    """Hash of what a model is trained or scored on: image ids, paths and pose labels, in id order."""
    columns = ["image_id", "image_path", "azimuth", "elevation", "theta"]
    ordered = frame.sort_values("image_id")[columns]
    return hashlib.sha256(ordered.to_csv(index=False, float_format="%.9g").encode()).hexdigest()


def prepare(frame: pd.DataFrame, settings: dict, threads: int) -> tuple[torch.Tensor, np.ndarray]:
    """Crops (with the augmentation padding) and bin labels of a generated-image table, in row order."""
    frame = frame.reset_index(drop=True)
    size = padded_size(settings)
    context = settings["context"] * size / settings["input_size"]
    return load_images(frame, size, context, threads), pose_labels(frame)


def padded_size(settings: dict) -> int:
    """Side of the stored crops: the input size plus the jitter margin (``crop_jitter`` of it on each side)."""
    return settings["input_size"] + 2 * round(settings["crop_jitter"] * settings["input_size"])
