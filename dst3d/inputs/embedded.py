"""The embedded default's inputs, generated offline and deterministically from the global seed: procedural
meshes (:mod:`dst3d.inputs.procedural_meshes`) with their model table, DTD-style textures with train/test
split files, and background photos with disjoint train and test sets."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from dst3d.identity import derive_seed
from dst3d.inputs import meshes, procedural_meshes
from dst3d.inputs.catalog import MODEL_COLUMNS, AssetError

TEXTURE_CLASSES = ["banded", "chequered", "dotted", "grid", "marbled", "zigzagged"]


def _palette(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    first = rng.uniform(20, 235, 3)
    second = np.clip(255 - first + rng.normal(0, 30, 3), 0, 255)
    return first, second


def procedural_texture(texture_class: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """A size x size x 3 uint8 image of one DTD-like texture class, in random colours and scale."""
    y, x = np.mgrid[0:size, 0:size].astype(float) / size
    period = rng.uniform(0.06, 0.2)
    angle = rng.uniform(0, np.pi)
    u = x * np.cos(angle) + y * np.sin(angle)
    v = -x * np.sin(angle) + y * np.cos(angle)
    if texture_class == "banded":
        pattern = (np.floor(u / period) % 2).astype(float)
    elif texture_class == "chequered":
        pattern = ((np.floor(u / period) + np.floor(v / period)) % 2).astype(float)
    elif texture_class == "dotted":
        radius = period * rng.uniform(0.2, 0.4)
        pattern = (np.hypot((u % period) - period / 2, (v % period) - period / 2) < radius).astype(float)
    elif texture_class == "grid":
        width = period * 0.15
        pattern = (((u % period) < width) | ((v % period) < width)).astype(float)
    elif texture_class == "marbled":
        noise = sum(
            rng.uniform(0.3, 1.0)
            * np.sin(2 * np.pi * (rng.uniform(1, 6) * u + rng.uniform(1, 6) * v) + rng.uniform(0, 6))
            for _ in range(4)
        )
        pattern = 0.5 + 0.5 * np.sin(2 * np.pi * u / period + 2.0 * noise)
    elif texture_class == "zigzagged":
        pattern = (np.floor((v + period * np.abs((u / period) % 2 - 1)) / period) % 2).astype(float)
    else:
        raise AssetError(f"unknown embedded texture class {texture_class!r}; known: {TEXTURE_CLASSES}")
    first, second = _palette(rng)
    image = first * (1 - pattern[..., None]) + second * pattern[..., None]
    return np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)


def procedural_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A size x size x 3 uint8 'photo': a two-colour gradient with soft random blobs and rectangles."""
    y, x = np.mgrid[0:size, 0:size].astype(float) / size
    top, bottom = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    image = top * (1 - y[..., None]) + bottom * y[..., None]
    for _ in range(rng.integers(4, 9)):
        color = rng.uniform(0, 255, 3)
        cx, cy, radius = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.3)
        weight = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * radius**2))[..., None] * rng.uniform(0.4, 0.9)
        image = image * (1 - weight) + color * weight
    for _ in range(rng.integers(1, 4)):
        x0, y0 = rng.uniform(0, 0.8, 2)
        w, h = rng.uniform(0.1, 0.4, 2)
        mask = (x >= x0) & (x < x0 + w) & (y >= y0) & (y < y0 + h)
        image[mask] = image[mask] * 0.4 + rng.uniform(0, 255, 3) * 0.6
    return np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)


def write_rgb_jpeg(path: Path, rgb: np.ndarray, quality: int = 92) -> None:
    """Write an RGB image as JPEG (creating its folder); an error names the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]):
        raise OSError(f"could not write {path}")


def build_embedded_assets(out_dir: Path, settings: dict, global_seed: int) -> None:
    """Write the embedded default's inputs under ``out_dir``: models/<category>/<model_id>.obj (y up, as ShapeNet's
    model_normalized.obj), models.csv,
    textures/images/<class>/*.jpg with labels/train1.txt and test1.txt, backgrounds/{train,test}/*.jpg.

    settings: the config's ``assets.embedded`` block (categories, models_per_category, distance, sampling_mode,
    textures_per_class, texture_test_fraction, texture_size, backgrounds_train, backgrounds_test, background_size).
    """
    out_dir = Path(out_dir)
    rows = []
    for category in settings["categories"]:
        if category not in procedural_meshes.BUILDERS:
            raise AssetError(
                f"assets.embedded.categories: unknown category {category!r}; known: {sorted(procedural_meshes.BUILDERS)}"
            )
        for model_number in range(settings["models_per_category"]):
            model_id = f"{category}-{model_number:03d}"
            rng = np.random.default_rng(derive_seed(global_seed, "embedded-model", category, model_number))
            vertices, faces = procedural_meshes.BUILDERS[category](rng)
            # Written y up like ShapeNet's model_normalized.obj, so the OBJ default axes are exercised.
            mesh_path = out_dir / "models" / category / f"{model_id}.obj"
            mesh_path.parent.mkdir(parents=True, exist_ok=True)
            meshes.write_obj(mesh_path, vertices @ meshes.axis_matrix(*meshes.Y_UP), faces)
            rows.append(
                {
                    "category": category,
                    "model_id": model_id,
                    "path": mesh_path.relative_to(out_dir).as_posix(),
                    "azimuth_offset_deg": 0.0,
                    "elevation_offset_deg": 0.0,
                    "distance": settings["distance"],
                    "sampling_mode": settings["sampling_mode"],
                    "strength": 1.0,
                    "keywords": ";".join(procedural_meshes.KEYWORDS[category]),
                }
            )
    pd.DataFrame(rows, columns=MODEL_COLUMNS).to_csv(out_dir / "models.csv", index=False)

    split_lines = {"train": [], "test": []}
    for texture_class in TEXTURE_CLASSES:
        for number in range(settings["textures_per_class"]):
            rng = np.random.default_rng(derive_seed(global_seed, "embedded-texture", texture_class, number))
            relative = f"{texture_class}/{texture_class}_{number:04d}.jpg"
            write_rgb_jpeg(
                out_dir / "textures" / "images" / relative,
                procedural_texture(texture_class, rng, settings["texture_size"]),
            )
            split = (
                "test"
                if number < round(settings["textures_per_class"] * settings["texture_test_fraction"])
                else "train"
            )
            split_lines[split].append(relative)
    (out_dir / "textures" / "labels").mkdir(parents=True, exist_ok=True)
    for split, name in (("train", "train1.txt"), ("test", "test1.txt")):
        (out_dir / "textures" / "labels" / name).write_text("\n".join(split_lines[split]) + "\n")

    for split in ("train", "test"):
        for number in range(settings[f"backgrounds_{split}"]):
            rng = np.random.default_rng(derive_seed(global_seed, "embedded-background", split, number))
            write_rgb_jpeg(
                out_dir / "backgrounds" / split / f"background_{number:04d}.jpg",
                procedural_background(rng, settings["background_size"]),
            )
