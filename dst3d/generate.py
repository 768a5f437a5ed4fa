"""The generate stage: the backend switch and the offline ``composite`` backend.

``composite`` pastes the RGBA render over its background photo (drawn at render time from the image's
identity): P3D-Diffusion's no-style-transfer ablation and the offline default. The diffusion backends
(``controlnet``, ``controlnet-sdxl``) live in :mod:`dst3d.diffusion`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from dst3d.io import read_image, staged_directory

BACKENDS = ("composite", "controlnet", "controlnet-sdxl")
_log = logging.getLogger(__name__)


def fit_background(background: np.ndarray, width: int, height: int) -> np.ndarray:
    """Centre-crop a background to the target aspect ratio, then resize it to width x height."""
    source_height, source_width = background.shape[:2]
    scale = max(width / source_width, height / source_height)
    crop_width, crop_height = round(width / scale), round(height / scale)
    x0, y0 = (source_width - crop_width) // 2, (source_height - crop_height) // 2
    cropped = background[y0:y0 + crop_height, x0:x0 + crop_width]
    return cv2.resize(cropped, (width, height), interpolation=cv2.INTER_AREA)


def composite(rgba: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Alpha-blend a BGRA render over a BGR background of any size (fitted to the render's size)."""
    height, width = rgba.shape[:2]
    fitted = fit_background(background, width, height).astype(np.float32)
    alpha = rgba[:, :, 3:4].astype(np.float32) / 255.0
    return np.round(rgba[:, :, :3] * alpha + fitted * (1.0 - alpha)).astype(np.uint8)


def composite_shard(records: pd.DataFrame, out_dir: Path, log: logging.Logger = _log) -> pd.DataFrame:
    """Write ``<image_id>.png`` composites of a shard into ``out_dir`` (published atomically as a folder).

    Returns one row per image: image_id, image_path, image_width, image_height, backend.
    """
    out_dir = Path(out_dir)
    rows = []
    with staged_directory(out_dir) as staging:
        for record in records.itertuples(index=False):
            rgba = read_image(record.render_path, cv2.IMREAD_UNCHANGED)
            if rgba.ndim != 3 or rgba.shape[2] != 4:
                raise ValueError(f"render {record.render_path} has no alpha channel: rerun the render stage")
            image = composite(rgba, read_image(record.background_path))
            cv2.imwrite(str(staging / f"{record.image_id}.png"), image)
            rows.append({
                "image_id": record.image_id, "image_path": f"{out_dir.as_posix()}/{record.image_id}.png",
                "image_width": image.shape[1], "image_height": image.shape[0], "backend": "composite",
            })
            log.info("composited %s", record.image_id)
    return pd.DataFrame(rows)
