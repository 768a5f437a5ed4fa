"""The pseudo-real set of the embedded default: a stand-in for PASCAL3D+ that runs offline, so the papers'
real-data protocols (fine-tuning, few-shot) run end to end on the same reader code as a real set.

Two render splits, ``pseudo_train`` and ``pseudo_val``, are rendered from the same CAD models as the synthetic
data but in a domain of their own: textures and background "photos" of another kind than the embedded
assets' (:func:`pseudo_texture`, :func:`pseudo_background`: neither synthetic split uses them) and another light
(``pseudo_real.light``). :func:`write_pascal3d` then writes them in the PASCAL3D+ release layout, with the quirks
of the real files:

* ``Annotations/<cat>_imagenet/<name>.mat`` holding ``record`` (filename, size, objects) as MATLAB structs, the
  objects a struct array; ``Images/<cat>_imagenet/<name>.JPEG``; ``Image_sets/<cat>_imagenet_{train,val}.txt``;
* PASCAL3D+'s category names (``aeroplane`` for our ``airplane``), boxes 1-based and inclusive;
* a share ``coarse_fraction`` of objects annotated with a coarse viewpoint only (fine fields empty ``[]``,
  ``azimuth_coarse``/``elevation_coarse`` rounded to 15 degrees), as the annotation tools leave many objects;
* a second, unannotated object in every image (class set, viewpoint fields all empty), which readers must skip.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import scipy.io

from dst3d.generate.composite import composite
from dst3d.identity import derive_seed
from dst3d.inputs.datasets import DEFAULT_CATEGORY_MAP
from dst3d.inputs.embedded import write_rgb_jpeg
from dst3d.io import read_image

#: The render splits of the pseudo-real set and the PASCAL3D+ split each becomes.
SPLITS = {"pseudo_train": "train", "pseudo_val": "val"}
COARSE_STEP_DEG = 15.0


def pseudo_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A size x size x 3 uint8 'material': smooth low-frequency noise in one muted hue with fine speckle (the
    embedded textures are two-colour geometric patterns)."""
    y, x = np.mgrid[0:size, 0:size].astype(float) / size
    field = sum(
        rng.uniform(0.2, 1.0)
        * np.sin(2 * np.pi * (rng.uniform(0.5, 3) * x + rng.uniform(0.5, 3) * y) + rng.uniform(0, 6))
        for _ in range(5)
    )
    field = (field - field.min()) / max(np.ptp(field), 1e-6)
    base = rng.uniform(60, 200, 3)
    image = base * (0.6 + 0.5 * field[..., None])
    return np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)


def pseudo_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A size x size x 3 uint8 outdoor-like 'photo': sky over ground at a random horizon, with blurred vertical
    structures (the embedded backgrounds are gradients with blobs and rectangles)."""
    y, x = np.mgrid[0:size, 0:size].astype(float) / size
    horizon = rng.uniform(0.35, 0.7)
    sky_top, sky_low = rng.uniform([60, 90, 150], [140, 170, 255]), rng.uniform([150, 170, 200], [230, 230, 255])
    ground = rng.uniform([40, 50, 30], [150, 140, 110])
    sky = sky_top * (1 - y[..., None] / horizon) + sky_low * (y[..., None] / horizon)
    image = np.where((y < horizon)[..., None], sky, ground * (0.7 + 0.5 * (y[..., None] - horizon)))
    for _ in range(rng.integers(3, 8)):
        x0, width = rng.uniform(0, 1), rng.uniform(0.03, 0.15)
        top = horizon - rng.uniform(0.05, 0.4)
        mask = (x >= x0) & (x < x0 + width) & (y >= top) & (y < horizon + 0.02)
        image[mask] = rng.uniform(20, 120, 3)
    image = cv2.GaussianBlur(image.astype(np.float32), (0, 0), sigmaX=size / 160)
    return np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)


def build_assets(
    out_dir: Path, settings: dict, texture_size: int, background_size: int, global_seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write the pseudo-real domain's textures and backgrounds under ``out_dir``; return their index tables
    (path relative to ``out_dir``, texture_class, split) and (path, split), the render stage's asset tables. The
    textures serve both pseudo-real splits; the backgrounds are split in two disjoint halves (even numbers
    ``pseudo_train``, odd ``pseudo_val``), as the photos of a real train and val split differ."""
    out_dir = Path(out_dir)
    textures, backgrounds = [], []
    for number in range(settings["textures"]):
        rng = np.random.default_rng(derive_seed(global_seed, "pseudo-real-texture", number))
        path = out_dir / "textures" / f"material_{number:04d}.jpg"
        write_rgb_jpeg(path, pseudo_texture(rng, texture_size), quality=90)
        relative = path.relative_to(out_dir).as_posix()
        textures += [{"path": relative, "texture_class": "material", "split": split} for split in SPLITS]
    for number in range(settings["backgrounds"]):
        rng = np.random.default_rng(derive_seed(global_seed, "pseudo-real-background", number))
        path = out_dir / "backgrounds" / f"scene_{number:04d}.jpg"
        write_rgb_jpeg(path, pseudo_background(rng, background_size), quality=90)
        backgrounds.append({"path": path.relative_to(out_dir).as_posix(), "split": list(SPLITS)[number % 2]})
    return (
        pd.DataFrame(textures, columns=["path", "texture_class", "split"]),
        pd.DataFrame(backgrounds, columns=["path", "split"]),
    )


def pascal3d_name(category: str) -> str:
    """Our category's PASCAL3D+ name (``airplane`` -> ``aeroplane``)."""
    return {ours: theirs for theirs, ours in DEFAULT_CATEGORY_MAP.items()}.get(category, category)


def _empty() -> np.ndarray:
    return np.zeros((0, 0))


def _viewpoint(record, coarse: bool) -> dict:
    azimuth, elevation = np.degrees(record.azimuth) % 360, np.degrees(record.elevation)
    theta = np.degrees(record.theta)
    coarse_azimuth = (np.round(azimuth / COARSE_STEP_DEG) * COARSE_STEP_DEG) % 360
    coarse_elevation = np.round(elevation / COARSE_STEP_DEG) * COARSE_STEP_DEG
    fine = {
        "azimuth": _empty() if coarse else float(azimuth),
        "elevation": _empty() if coarse else float(elevation),
        "theta": _empty() if coarse else float(theta),
        "distance": _empty() if coarse else float(record.distance),
    }
    return {**fine, "azimuth_coarse": float(coarse_azimuth), "elevation_coarse": float(coarse_elevation)}


def write_pascal3d(out_dir: Path, tables: dict[str, pd.DataFrame], coarse_fraction: float, global_seed: int) -> None:
    """Write the renders of ``tables`` (render split -> its records, see :data:`SPLITS`) composited over their
    backgrounds as a PASCAL3D+ release under ``out_dir`` (the module docstring lists the layout and quirks).
    Records whose mask is empty (the object left the image) are not written."""
    out_dir = Path(out_dir)
    lists: dict[tuple[str, str], list[str]] = {}
    for render_split, table in tables.items():
        split = SPLITS[render_split]
        for record in table.sort_values("image_id").itertuples(index=False):
            if record.bbox_x0 < 0:
                continue
            category = pascal3d_name(record.category)
            folder = f"{category}_imagenet"
            name = f"{split}_{record.category}_{int(record.image_index):06d}"
            image = composite(read_image(record.render_path, cv2.IMREAD_UNCHANGED), read_image(record.background_path))
            image_path = out_dir / "Images" / folder / f"{name}.JPEG"
            image_path.parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(image_path), image, [cv2.IMWRITE_JPEG_QUALITY, 90]):
                raise OSError(f"could not write {image_path}")
            draw = np.random.default_rng(derive_seed(global_seed, "pseudo-real-annotation", record.image_id)).uniform()
            box = [record.bbox_x0 + 1.0, record.bbox_y0 + 1.0, float(record.bbox_x1), float(record.bbox_y1)]
            annotated = {
                "class": category,
                "bbox": np.asarray(box, dtype=float),
                "truncated": 0,
                "occluded": 0,
                "difficult": 0,
                "viewpoint": _viewpoint(record, coarse=draw < coarse_fraction),
            }
            unannotated = {
                "class": category,
                "bbox": np.asarray([1.0, 1.0, 8.0, 8.0]),
                "truncated": 1,
                "occluded": 1,
                "difficult": 1,
                "viewpoint": {key: _empty() for key in ("azimuth", "elevation", "distance", "azimuth_coarse")},
            }
            objects = np.zeros((1, 2), dtype=[(key, object) for key in annotated])  # a 1 x 2 struct array
            for index, item in enumerate((annotated, unannotated)):
                objects[0, index] = tuple(item[key] for key in annotated)
            mat_path = out_dir / "Annotations" / folder / f"{name}.mat"
            mat_path.parent.mkdir(parents=True, exist_ok=True)
            height, width = image.shape[:2]
            record_struct = {
                "filename": f"{name}.JPEG",
                "size": {"width": width, "height": height, "depth": 3},
                "database": "ImageNet",
                "objects": objects,
            }
            scipy.io.savemat(mat_path, {"record": record_struct})
            lists.setdefault((category, split), []).append(name)
    (out_dir / "Image_sets").mkdir(parents=True, exist_ok=True)
    for (category, split), names in sorted(lists.items()):
        (out_dir / "Image_sets" / f"{category}_imagenet_{split}.txt").write_text("\n".join(names) + "\n")
