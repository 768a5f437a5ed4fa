"""Network inputs: crops around the object's 2D box (enlarged by ``context`` and made square), resized to
``input_size`` and normalised with the ImageNet mean and standard deviation, with the training augmentation.
All crops of a training set are decoded once into memory (uint8) before the first epoch, so no epoch waits on
image decoding.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pandas as pd
import torch

from dst3d.io import read_image

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def object_boxes(frame: pd.DataFrame) -> np.ndarray:
    """N x 4 object boxes (x0, y0, x1, y1) in pixels of the images at ``image_path`` (pixel-corner origin).

    Generated images carry the render's mask box (``bbox_*`` in render pixels, render size ``width`` x
    ``height``), scaled here to the generated image's size; an empty mask (``bbox_x0 < 0``) gives the whole
    image. Real-set tables (:mod:`dst3d.inputs.datasets`) have no render size (no ``width`` column, or a
    missing one in a mixed table): their ``bbox_*`` are already in image pixels and are kept, NaN included (an
    object crop whose box is the whole image, which :func:`load_crop` takes from the decoded image).
    """
    boxes = frame[["bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"]].to_numpy(dtype=float)
    if "width" not in frame:
        return boxes
    image_width = frame["image_width"].to_numpy(dtype=float)
    image_height = frame["image_height"].to_numpy(dtype=float)
    scale_x = image_width / frame["width"].to_numpy(dtype=float)
    scale_y = image_height / frame["height"].to_numpy(dtype=float)
    whole = np.stack([np.zeros_like(image_width), np.zeros_like(image_height), image_width, image_height], axis=1)
    scaled = np.where(boxes[:, :1] < 0, whole, boxes * np.stack([scale_x, scale_y, scale_x, scale_y], axis=1))
    real = np.isnan(frame["width"].to_numpy(dtype=float))[:, None]  # no render size: image pixels already
    return np.where(real, boxes, scaled)


def crop_box(box: np.ndarray, context: float) -> tuple[float, float, float, float]:
    """Square crop (x0, y0, x1, y1) centred on ``box``, its side the box's longest side times ``context``."""
    x0, y0, x1, y1 = (float(value) for value in box)
    side = max(x1 - x0, y1 - y0, 1.0) * context
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2


def load_crop(image_path: str, box: np.ndarray, input_size: int, context: float) -> np.ndarray:
    """The RGB crop around one object (input_size x input_size x 3 uint8); outside the image is black.

    The crop window is cut at whole pixels and shrunk with area averaging, so large real photos are not aliased.
    An all-NaN box is the whole image, (0, 0, width, height) of the decoded image (real sets of object crops);
    a box with only some NaN values is a ValueError naming the image.
    """
    image = read_image(image_path)
    height, width = image.shape[:2]
    box = np.asarray(box, dtype=float)
    missing = np.isnan(box)
    if missing.all():
        box = np.array([0.0, 0.0, width, height])
    elif missing.any():
        raise ValueError(f"object box {box.tolist()} of {image_path} is partly NaN: expected 4 numbers, or all NaN")
    x0, y0, x1, y1 = crop_box(box, context)
    left, top = int(np.floor(x0)), int(np.floor(y0))
    side = max(1, int(np.ceil(max(x1 - left, y1 - top))))
    window = image[max(top, 0) : min(top + side, height), max(left, 0) : min(left + side, width)]
    window = cv2.copyMakeBorder(
        window,
        max(-top, 0),
        max(top + side - height, 0),
        max(-left, 0),
        max(left + side - width, 0),
        cv2.BORDER_CONSTANT,
        value=(0, 0, 0),
    )
    interpolation = cv2.INTER_AREA if side > input_size else cv2.INTER_LINEAR
    crop = cv2.resize(window, (input_size, input_size), interpolation=interpolation)
    return cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)


def load_images(paths: list[str], boxes: np.ndarray, input_size: int, context: float, threads: int) -> torch.Tensor:
    """N x 3 x S x S uint8 tensor of the crops around ``boxes`` (decoded on ``threads`` threads)."""
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        crops = list(
            pool.map(lambda item: load_crop(item[0], item[1], input_size, context), zip(paths, boxes, strict=True))
        )
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


def rotate(images: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Each float image of a square N x C x H x W batch turned about its centre by ``angles`` (radians; positive
    turns the content counter-clockwise on screen, as a positive in-plane rotation theta does,
    :mod:`dst3d.geometry`); bilinear, black outside."""
    import torch.nn.functional as F

    cos, sin = torch.cos(angles).float(), torch.sin(angles).float()
    zero = torch.zeros_like(cos)
    # affine_grid maps output to input coordinates (x right, y down, in [-1, 1]): the inverse of the on-screen
    # counter-clockwise turn, which in y-down coordinates is [[cos, sin], [-sin, cos]].
    matrices = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(matrices.to(images.device), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def centre_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """The central size x size window of a batch."""
    start = (images.shape[-1] - size) // 2
    return images[..., start : start + size, start : start + size]


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 (or float in 0..255) N x 3 x H x W -> float, ImageNet-normalised."""
    return (images.float() / 255.0 - IMAGENET_MEAN.to(images.device)) / IMAGENET_STD.to(images.device)


def crops(frame: pd.DataFrame, settings: dict, threads: int) -> torch.Tensor:
    """The uint8 crops (with the augmentation padding) of every object of an image table, in row order: a
    generated-image table or a real-set table of :mod:`dst3d.inputs.datasets`."""
    size = padded_size(settings)
    context = settings["context"] * size / settings["input_size"]
    return load_images(frame["image_path"].tolist(), object_boxes(frame), size, context, threads)


def padded_size(settings: dict) -> int:
    """Side of the stored crops: the input size plus the jitter margin (``crop_jitter`` of it on each side)."""
    return settings["input_size"] + 2 * round(settings["crop_jitter"] * settings["input_size"])
