"""Classification sets in the layout everybody has them: an ImageFolder tree ``<root>/<class>/<image>`` (ImageNet-100
or -200 subsets, ImageNet-R, ...), with an optional class list that maps folder names (WordNet ids or names) to the
workflow's categories; and the embedded default's stand-in for one, written from the pseudo-real release.

Reading: :func:`read_imagefolder` lists every image (``.jpeg``, ``.jpg``, ``.png``, any case) under the class
folders, sorted, as an image table the croppers read (the whole image is the object: NaN boxes). Hidden files and
folders are ignored; a class folder with no image is an error naming it, so an unfinished copy is not read as a
smaller class.

Class list (``tables.classification.classes``): a CSV with columns ``folder`` and ``category`` (``category`` may be
empty for a class without generated data). Without one, a folder whose name is a workflow category maps to it.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from dst3d.io import read_image, write_image
from dst3d.tables import read_csv

EXTENSIONS = (".jpeg", ".jpg", ".png")


def class_folders(root: str | Path) -> list[str]:
    """The class folder names under ``root``, sorted (the label order of a classifier trained on it)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such ImageFolder root (expected <root>/<class>/<image>)")
    folders = sorted(path.name for path in root.iterdir() if path.is_dir() and not path.name.startswith("."))
    if not folders:
        raise ValueError(f"{root}: no class folders (expected <root>/<class>/<image>)")
    return folders


def read_imagefolder(root: str | Path, classes: list[str] | None = None) -> pd.DataFrame:
    """Every image under ``root`` as a table: image_id (``<class>/<file stem>``), image_path, label (the class
    folder) and NaN boxes. With ``classes``, a folder that is not among them is an error naming it (an OOD set must
    not hold classes the model never saw)."""
    root = Path(root)
    folders = class_folders(root)
    if classes is not None:
        unknown = sorted(set(folders) - set(classes))
        if unknown:
            raise ValueError(f"{root}: class folders {unknown} are not classes of the training set")
    rows = []
    for folder in folders:
        images = sorted(
            path
            for path in (root / folder).iterdir()
            if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in EXTENSIONS
        )
        if not images:
            raise ValueError(f"{root / folder}: a class folder with no image ({', '.join(EXTENSIONS)})")
        rows += [{"image_id": f"{folder}/{path.stem}", "image_path": str(path), "label": folder} for path in images]
    frame = pd.DataFrame(rows)
    for column in ("bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"):
        frame[column] = np.nan
    return frame


def class_mapping(folders: list[str], categories: list[str], class_list: str | Path | None) -> dict[str, str | None]:
    """folder -> workflow category (None for a class without generated data)."""
    if class_list is None:
        return {folder: folder if folder in categories else None for folder in folders}
    table = read_csv(class_list, dtype=str, keep_default_na=False)
    missing = {"folder", "category"} - set(table.columns)
    if missing:
        raise ValueError(f"{class_list}: the class list needs the columns folder and category (missing {missing})")
    unknown = sorted(set(table["category"]) - set(categories) - {""})
    if unknown:
        raise ValueError(f"{class_list}: categories {unknown} are not workflow categories {categories}")
    mapped = dict(zip(table["folder"], table["category"], strict=True))
    return {folder: mapped.get(folder) or None for folder in folders}


def _square(image: np.ndarray, box: tuple[float, float, float, float], size: int) -> np.ndarray:
    height, width = image.shape[:2]
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0, 1.0) * 1.15
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    right, bottom = int(round(cx + side / 2)), int(round(cy + side / 2))
    canvas = np.zeros((bottom - top, right - left, 3), dtype=np.uint8)
    sx0, sy0, sx1, sy1 = max(left, 0), max(top, 0), min(right, width), min(bottom, height)
    canvas[sy0 - top : sy1 - top, sx0 - left : sx1 - left] = image[sy0:sy1, sx0:sx1]
    return cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)


def rendition(image: np.ndarray) -> np.ndarray:
    """A sketch of an image (dark edges on white), the stand-in's out-of-distribution style (as ImageNet-R's
    renditions are for ImageNet)."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    edges = cv2.Canny(cv2.GaussianBlur(grey, (3, 3), 0), 60, 150)
    sketch = 255 - cv2.dilate(edges, np.ones((2, 2), np.uint8))
    return np.repeat(sketch[:, :, None], 3, axis=2)


def _write(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(image, path, atomic=False)  # inside folders published whole (staged_directory)


def write_stand_in(
    objects: dict[str, pd.DataFrame],
    backgrounds: dict[str, list[Path]],
    out_dirs: dict[str, Path],
    size: int,
    seed: int,
) -> None:
    """The embedded default's ImageFolder: per split (``train``, ``val``), every annotated object of the pseudo-real
    release cropped square around its box into ``<out>/<category>/``, a ``background`` class (crops of the split's
    background photos, a class no generated image has), and ``rendition``: the val images as sketches.
    ``objects`` are the release's split tables (:func:`dst3d.inputs.datasets.load_real_set`)."""
    rng = np.random.default_rng(seed)
    counts = {split: frame["category"].value_counts() for split, frame in objects.items()}
    for split, frame in objects.items():
        out = out_dirs[split]
        for row in frame.itertuples(index=False):
            box = (row.bbox_x0, row.bbox_y0, row.bbox_x1, row.bbox_y1)
            crop = _square(read_image(row.image_path), box, size)
            name = row.image_id.replace("/", "_")
            _write(out / row.category / f"{name}.JPEG", crop)
            if split == "val":
                _write(out_dirs["rendition"] / row.category / f"{name}.JPEG", rendition(crop))
        per_class = int(counts[split].median())
        photos = backgrounds[split]
        for number in range(per_class):
            photo = read_image(photos[number % len(photos)])
            height, width = photo.shape[:2]
            side = rng.uniform(0.4, 0.9) * min(height, width)
            x0, y0 = rng.uniform(0, width - side), rng.uniform(0, height - side)
            crop = _square(photo, (x0, y0, x0 + side, y0 + side), size)
            _write(out / "background" / f"background_{number:05d}.JPEG", crop)
