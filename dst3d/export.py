"""Exports of a generated dataset in formats other tools load.

COCO (:func:`coco_dataset`): one ``instances_<split>.json`` per split of a synthetic variant, loadable with
``pycocotools.coco.COCO``:

* ``images``: ``file_name`` (the generated image's path relative to the export file's folder), width, height,
  and dst3d's ``image_key`` (our image id);
* ``annotations``, one per image: ``bbox`` ``[x, y, w, h]`` and ``segmentation`` (uncompressed RLE, column-major
  as pycocotools writes it) of the render's mask scaled to the generated image, ``area`` (mask pixels),
  ``iscrowd`` 0; ``keypoints``: the 8 corners of the object's 3D bounding box projected into the image, ``[x, y, v]``
  with v = 2 for a corner on a face turned to the camera and inside the image, 1 otherwise; and the 3D label:
  ``azimuth``, ``elevation``, ``theta`` (radians, PASCAL3D+ convention), ``distance``, and ``K``, ``R``, ``t``
  (row-major 3x3, 3x3, 3) of the camera that projects the normalised model (the model file normalised to a
  largest side of 1 and centred, alignment offsets included) into the generated image: ``x = K (R X + t)``,
  OpenCV axes, pixel-corner origin (pixel (0, 0) covers [0, 1) x [0, 1), as COCO's boxes and polygons);
* ``categories``: our categories, with the cuboid keypoint names and skeleton (its 12 edges).

Images whose render mask is empty (the object left the image) have no annotation, as COCO has none for absent
objects.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from dst3d.io import atomic_write, read_image
from dst3d.render.annotations import matrix

CUBOID_KEYPOINTS = [f"corner_{index}" for index in range(8)]
#: The 12 cuboid edges (corner pairs differing in one axis bit), 1-based as COCO's skeletons are.
CUBOID_SKELETON = [[i + 1, (i | (1 << axis)) + 1] for i in range(8) for axis in range(3) if not i & (1 << axis)]


def mask_rle(mask: np.ndarray) -> dict:
    """Uncompressed COCO RLE of a binary mask: run lengths over the column-major pixels, starting with zeros."""
    flat = np.asarray(mask, bool).flatten(order="F")
    boundaries = np.concatenate([[0], np.flatnonzero(flat[1:] != flat[:-1]) + 1, [flat.size]])
    counts = np.diff(boundaries).tolist() if flat.size else []
    if flat.size and flat[0]:
        counts = [0, *counts]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(count) for count in counts]}


def image_camera(record) -> np.ndarray:
    """K of a record's camera for the generated image's size (the render's K scaled; exact in pixel-corner
    coordinates)."""
    scale = np.diag([record["image_width"] / record["width"], record["image_height"] / record["height"], 1.0])
    return scale @ matrix(record, "K")


def coco_dataset(records: pd.DataFrame, categories: list[str], out_dir: Path, description: str) -> dict:
    """The COCO dictionary of a generated-image table (see the module docstring); ``out_dir`` is where the JSON
    will be written (image paths are made relative to it)."""
    category_ids = {category: index + 1 for index, category in enumerate(categories)}
    images, annotations = [], []
    for number, record in enumerate(records.sort_values("image_id").to_dict("records"), start=1):
        width, height = int(record["image_width"]), int(record["image_height"])
        images.append(
            {
                "id": number,
                "file_name": os.path.relpath(Path(record["image_path"]).resolve(), Path(out_dir).resolve()),
                "width": width,
                "height": height,
                "image_key": record["image_id"],
            }
        )
        if record["bbox_x0"] < 0:
            continue
        mask = read_image(record["mask_path"], cv2.IMREAD_UNCHANGED) > 0
        if mask.shape != (height, width):
            mask = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
        ys, xs = np.nonzero(mask)
        if not len(xs):
            continue
        x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
        scale = np.array([width / record["width"], height / record["height"]])
        corners = matrix(record, "cuboid_uv") * scale
        visible = np.asarray(record["cuboid_visible"], bool)
        keypoints = []
        for (u, v), seen in zip(corners, visible, strict=True):
            keypoints += [float(u), float(v), 2 if seen else 1]
        annotations.append(
            {
                "id": len(annotations) + 1,
                "image_id": number,
                "category_id": category_ids[record["category"]],
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "area": int(mask.sum()),
                "iscrowd": 0,
                "segmentation": mask_rle(mask),
                "keypoints": keypoints,
                "num_keypoints": 8,
                "azimuth": float(record["azimuth"]),
                "elevation": float(record["elevation"]),
                "theta": float(record["theta"]),
                "distance": float(record["distance"]),
                "K": image_camera(record).reshape(-1).tolist(),
                "R": matrix(record, "R").reshape(-1).tolist(),
                "t": matrix(record, "t").tolist(),
                "model_id": record["model_id"],
            }
        )
    return {
        "info": {"description": description, "version": "1.0"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {
                "id": index,
                "name": category,
                "supercategory": "object",
                "keypoints": CUBOID_KEYPOINTS,
                "skeleton": CUBOID_SKELETON,
            }
            for category, index in category_ids.items()
        ],
    }


def write_coco(records: pd.DataFrame, categories: list[str], path: Path, description: str) -> None:
    """Write :func:`coco_dataset` of ``records`` to ``path`` atomically."""
    dataset = coco_dataset(records, categories, Path(path).parent, description)
    with atomic_write(path) as temporary:
        temporary.write_text(json.dumps(dataset))
