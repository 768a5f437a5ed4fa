"""The offline ``composite`` backend of the generate stage.

``composite`` pastes the RGBA render over its background photo (drawn at render time from the image's
identity): P3D-Diffusion's no-style-transfer ablation and the offline default. The diffusion backends
(``controlnet``, ``controlnet-sdxl``) live in :mod:`dst3d.generate.diffusion`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from dst3d.io import read_image, write_image
from dst3d.logs import Progress

_log = logging.getLogger(__name__)


def fit_background(background: np.ndarray, width: int, height: int) -> np.ndarray:
    """Centre-crop a background to the target aspect ratio, then resize it to width x height."""
    source_height, source_width = background.shape[:2]
    scale = max(width / source_width, height / source_height)
    crop_width, crop_height = round(width / scale), round(height / scale)
    x0, y0 = (source_width - crop_width) // 2, (source_height - crop_height) // 2
    cropped = background[y0 : y0 + crop_height, x0 : x0 + crop_width]
    return cv2.resize(cropped, (width, height), interpolation=cv2.INTER_AREA)


def composite(rgba: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Alpha-blend a BGRA render over a BGR background of any size (fitted to the render's size)."""
    height, width = rgba.shape[:2]
    fitted = fit_background(background, width, height).astype(np.float32)
    alpha = rgba[:, :, 3:4].astype(np.float32) / 255.0
    return np.round(rgba[:, :, :3] * alpha + fitted * (1.0 - alpha)).astype(np.uint8)


def composite_images(records: pd.DataFrame, out_dir: Path, log: logging.Logger = _log) -> pd.DataFrame:
    """Write ``out_dir/<image_id>.png``, the composite of each record's render over its background photo.

    ``out_dir`` is written in place (the workflow passes a staging folder published as a whole). Returns one
    row per image: image_id, image_path, image_width, image_height.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    progress = Progress(log, len(records), "images")
    for record in records.itertuples(index=False):
        rgba = read_image(record.render_path, cv2.IMREAD_UNCHANGED)
        if rgba.ndim != 3 or rgba.shape[2] != 4:
            raise ValueError(f"render {record.render_path} has no alpha channel: rerun the render stage")
        image = composite(rgba, read_image(record.background_path))
        image_path = out_dir / f"{record.image_id}.png"
        write_image(image, image_path, atomic=False)
        rows.append(
            {
                "image_id": record.image_id,
                "image_path": str(image_path),
                "image_width": image.shape[1],
                "image_height": image.shape[0],
            }
        )
        log.info("composited %s", record.image_id)
        progress.step()
    return pd.DataFrame(rows, columns=["image_id", "image_path", "image_width", "image_height"])
