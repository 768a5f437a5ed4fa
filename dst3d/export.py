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

NeMo / PASCAL3D+ training layout (:func:`write_nemo`), the prepared layout the NeMo code base and P3D-Diffusion
train on, read back by :func:`dst3d.inputs.datasets.read_nemo`: per split ``<split>/images/<cat>/<name>.JPEG``
(the generated image, JPEG quality 95), ``<split>/annotations/<cat>/<name>.npz`` and
``<split>/lists/<cat>/mesh<NN>.txt`` (the names of the images of CAD model NN, 1-based in the category's model
order, as PASCAL3D+'s ``cad_index``). Each annotation holds ``azimuth``, ``elevation``, ``theta`` (radians,
PASCAL3D+ convention), ``distance`` (normalised model units, the model's largest side 1), ``cad_index``,
``principal`` (cx, cy in pixels, pixel-corner origin) and ``focal`` (pixels) of the generated image's camera;
``box_obj`` ``(y0, y1, x0, x1, height, width)`` (the mask's box, exclusive ends, and the image size), ``bbox``
``(x0, y0, x1, y1)``, and ``K``, ``R``, ``t`` as in the COCO export. The full image is written, not NeMo's
object-centred crop, so ``principal`` is the image centre and ``focal`` is the camera's: NeMo's own loaders
assume a focal length of 3000 px and should be given this one. The angles are the label in the category's
canonical frame; ``R``, ``t`` project the model file as normalised (its alignment offsets included), so for a
model with non-zero offsets ``extrinsics_cv(azimuth, elevation, theta, distance)`` differs from them. Images
whose render mask is empty are left out.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import yaml

from dst3d.geometry import project
from dst3d.io import atomic_write, read_image, staged_directory
from dst3d.render.annotations import matrix
from dst3d.tables import read_csv

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


def _image_mask(record: dict) -> np.ndarray:
    """The render's mask (object > 0) at the generated image's size (nearest neighbour)."""
    width, height = int(record["image_width"]), int(record["image_height"])
    mask = read_image(record["mask_path"], cv2.IMREAD_UNCHANGED) > 0
    if mask.ndim == 3:
        mask = mask.any(axis=2)
    if mask.shape != (height, width):
        mask = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
    return mask


def _object_mask(record: dict) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """(mask at the image size, its box (x0, y0, x1, y1), exclusive ends) of a record; None when the object left
    the image (an empty render mask), which every export leaves without an annotation."""
    if record["bbox_x0"] < 0:
        return None
    mask = _image_mask(record)
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return None
    return mask, (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


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
        found = _object_mask(record)
        if found is None:
            continue
        mask, (x0, y0, x1, y1) = found
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


def cad_indices(models: pd.DataFrame) -> dict[str, int]:
    """PASCAL3D+-style ``cad_index`` of every model id: 1-based, in the order of the category's models in the
    asset index (``results/assets/models.csv``)."""
    return {
        model_id: number
        for _, group in models.groupby("category", sort=False)
        for number, model_id in enumerate(group["model_id"], start=1)
    }


def nemo_annotation(record: dict, cad_index: int) -> dict | None:
    """The NeMo-layout annotation of one generated-image record (see the module docstring); None when its mask
    is empty."""
    found = _object_mask(record)
    if found is None:
        return None
    mask, (x0, y0, x1, y1) = found
    K = image_camera(record)
    return {
        "azimuth": float(record["azimuth"]),
        "elevation": float(record["elevation"]),
        "theta": float(record["theta"]),
        "distance": float(record["distance"]),
        "cad_index": int(cad_index),
        "principal": np.array([K[0, 2], K[1, 2]]),
        "focal": float(K[0, 0]),
        "box_obj": np.array([y0, y1, x0, x1, mask.shape[0], mask.shape[1]], dtype=float),
        "bbox": np.array([x0, y0, x1, y1], dtype=float),
        "K": K,
        "R": matrix(record, "R"),
        "t": matrix(record, "t"),
    }


def write_nemo(splits: dict[str, pd.DataFrame], models: pd.DataFrame, out_dir: Path) -> dict[str, int]:
    """Write the NeMo layout (module docstring) of the generated-image tables ``splits`` ({split: records}) into
    ``out_dir``, staged and renamed into place whole. Returns the number of images written per split."""
    indices = cad_indices(models)
    counts = {}
    with staged_directory(Path(out_dir)) as staging:
        for split, records in splits.items():
            counts[split] = 0
            lists: dict[tuple[str, int], list[str]] = {}
            for record in records.sort_values("image_id").to_dict("records"):
                if record["model_id"] not in indices:
                    raise ValueError(f"model {record['model_id']!r} of {record['image_id']} is not in the asset index")
                annotation = nemo_annotation(record, indices[record["model_id"]])
                if annotation is None:
                    continue
                category, name = record["category"], record["image_id"]
                for folder in ("images", "annotations"):
                    (staging / split / folder / category).mkdir(parents=True, exist_ok=True)
                image = read_image(record["image_path"])
                if not cv2.imwrite(
                    str(staging / split / "images" / category / f"{name}.JPEG"), image, [cv2.IMWRITE_JPEG_QUALITY, 95]
                ):
                    raise OSError(f"could not write the JPEG of {record['image_path']}")
                np.savez(staging / split / "annotations" / category / f"{name}.npz", **annotation)
                lists.setdefault((category, annotation["cad_index"]), []).append(name)
                counts[split] += 1
            for (category, cad_index), names in sorted(lists.items()):
                folder = staging / split / "lists" / category
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"mesh{cad_index:02d}.txt").write_text("".join(f"{name}\n" for name in names))
    return counts


def image_manifest(splits: dict[str, pd.DataFrame], root: Path) -> str:
    """``sha256  path`` lines (``sha256sum``'s format, paths relative to ``root``) of every image of ``splits``
    ({split: records}), sorted by path: what a copy of the dataset is checked against."""
    lines = []
    for records in splits.values():
        for path in records["image_path"]:
            with open(path, "rb") as file:
                digest = hashlib.file_digest(file, "sha256").hexdigest()
            lines.append((os.path.relpath(Path(path).resolve(), Path(root).resolve()), digest))
    return "".join(f"{digest}  {path}\n" for path, digest in sorted(lines))


#: What is known of the licence of each asset source (assets.source, assets.folders.models_format).
_ASSET_LICENCES = {
    "embedded": "Meshes, textures and background photos are procedurally generated by dst3d "
    "(`build_embedded_assets`) from the run's seed: no third-party content.",
    "dst3d": "Models, textures and backgrounds come from the run's own folders (below); their licences are their "
    "sources', which dst3d cannot know: state them here before sharing the dataset.",
    "3d-dst": "Models from ShapeNetCore (ShapeNet's terms of use: non-commercial research and education) and "
    "Objaverse (the collection under ODC-By 1.0, each object under its own Creative Commons licence, listed in "
    "Objaverse's metadata); textures and backgrounds from the run's own folders, under their sources' licences.",
    "pascal3d-cad": "Models from PASCAL3D+'s CAD folder (distributed with PASCAL3D+ for research use); textures and "
    "backgrounds from the run's own folders, under their sources' licences.",
}


def input_licences(assets: dict, backend: str, generate: dict) -> list[str]:
    """Sentences on where the inputs of a dataset come from and under which terms."""
    source = assets["source"]
    lines = [_ASSET_LICENCES["embedded" if source == "embedded" else assets["folders"].get("models_format", "dst3d")]]
    if source == "folders":
        folders = assets["folders"]
        named = [
            f"{key} `{folders[key]}`"
            for key in ("models_csv", "shapenet_dir", "objaverse_dir", "cad_dir", "textures_dir", "backgrounds_dir")
            if folders.get(key)
        ]
        lines.append("Folders: " + ", ".join(named) + ".")
    if backend == "composite":
        lines.append("Images: the renders composited over the background photos; no generative model.")
    else:
        models = [generate.get(key) for key in ("base_model", "controlnet_model", "depth_controlnet_model")]
        named = ", ".join(f"`{model}`" for model in models if model)
        lines.append(
            f"Images: generated by {named}; the generated images are subject to the base model's licence (see its "
            "model card)."
        )
    return lines


def _selection_step(selection: str, kcf: dict) -> str:
    """The card's sentence on which generated training images the variant keeps."""
    if selection != "kcf":
        return "every generated image is kept."
    scores = []
    if "folds" in kcf:
        scores.append(f"the loss of {kcf['folds']}-fold held-out pose models (KCF)")
    if "consistency" in kcf:
        scores.append("the model-free consistency of each image with its render")
    return f"the policy `{kcf['policy']}` keeps the training images that {' and '.join(scores)} trust."


def dataset_card(
    variant: str,
    exported: dict[str, pd.DataFrame],
    generated: dict[str, pd.DataFrame],
    config: dict,
    backend: str,
    settings_hash: str,
    config_hash: str,
    manifest_sha256: str,
    formats: list[str],
) -> str:
    """``DATASET.md`` of an exported variant: what it is, how it was made, its counts per split and category,
    the licences of its inputs and the hashes that identify it. ``exported``: the records each split exports
    (KCF's kept training images for a -kcf variant); ``generated``: every generated record per split;
    ``config``: the settings that made it (``generate``: the backend's block)."""
    categories = config["categories"]
    rows = []
    for split, records in generated.items():
        out = exported[split]
        for category in categories:
            made = records[records["category"] == category]
            rows.append(
                f"| {split} | {category} | {len(made)} | {int((made['bbox_x0'] < 0).sum())} | "
                f"{int((out['category'] == category).sum())} |"
            )
    render, kcf = config["render"], config.get("kcf", {})
    selection = variant.rsplit("-", 1)[1]
    steps = [
        f"1. **Assets** (`assets.source: {config['assets']['source']}`): {len(categories)} categories "
        f"({', '.join(categories)}).",
        f"2. **Render** (Blender, `{render.get('engine', 'cycles')}`, {render['width']} x {render['height']} px): one "
        "image per planned viewpoint with its exact annotation (azimuth, elevation, theta, distance, K, R, t, mask, "
        "box, cuboid).",
        "3. **Generate**: "
        + (
            "the renders composited over background photos."
            if backend == "composite"
            else "Canny edge maps of the renders condition a ControlNet diffusion model, with one text prompt per "
            f"image (`prompts.backend: {config.get('prompts', {}).get('backend', 'template')}`)."
        ),
        "4. **Select**: " + _selection_step(selection, kcf),
    ]
    licences = input_licences(config["assets"], backend, config.get("generate") or {})
    return "\n".join(
        [
            f"# dst3d dataset: {variant}",
            "",
            f"Synthetic images with exact 3D pose annotations, made by the dst3d workflow (backend `{backend}`, "
            f"selection `{selection}`), exported as {', '.join(f'`{name}`' for name in formats)} in this folder.",
            "",
            "## How it was made",
            *steps,
            "",
            "## Counts",
            "generated: images made; empty mask: the object left the frame (no annotation in the exports); exported: "
            "the images in this folder's exports (for the training split of a -kcf variant, those KCF kept).",
            "",
            "| split | category | generated | empty mask | exported |",
            "|---|---|---|---|---|",
            *rows,
            "",
            "## Inputs and licences",
            *[f"- {line}" for line in licences],
            "",
            "## Identity",
            f"- settings hash `{settings_hash}`: seed, categories, assets, splits, render and generation settings "
            "(as `results/tables/dataset.csv`);",
            f"- config hash `{config_hash}`: SHA-256 (first 12 hex digits) of the settings below;",
            f"- manifest SHA-256 `{manifest_sha256}` of `MANIFEST.sha256` (every exported image's SHA-256 and path "
            "relative to this folder; check a copy with `sha256sum -c MANIFEST.sha256` from here).",
            "",
            "## Settings",
            "The configuration blocks that made this dataset (runtime keys such as threads and devices left out):",
            "",
            "```yaml",
            yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=110).rstrip(),
            "```",
            "",
        ]
    )


#: The BOP export's length unit per normalised model unit (a model's largest side is 1 unit): 1 unit = 1 m.
BOP_MM_PER_UNIT = 1000.0


def bop_model_mesh(model: dict, axes: dict) -> tuple[np.ndarray, np.ndarray]:
    """A model file's mesh as the renders place it, in mm: the file's axes turned into the canonical frame
    (``axes``: the ``render.axes`` block; the model's forward_axis/up_axis columns win), normalised (largest
    side 1 unit, centred) and scaled by :data:`BOP_MM_PER_UNIT`. OBJ and OFF files only: other formats are read
    by Blender alone."""
    from dst3d.inputs import meshes

    if model["format"] not in meshes.READERS:
        raise ValueError(
            f"the BOP export reads OBJ and OFF models; {model['path']} is {model['format']!r}: leave bop out of "
            "export.formats for this asset set"
        )
    vertices, faces = meshes.canonical_mesh(model, axes)
    return vertices * BOP_MM_PER_UNIT, faces


def write_ply(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """A binary little-endian PLY of a triangle mesh (float32 x, y, z; uchar-int vertex_indices), as BOP ships."""
    header = (
        f"ply\nformat binary_little_endian 1.0\nelement vertex {len(vertices)}\nproperty float x\n"
        f"property float y\nproperty float z\nelement face {len(faces)}\nproperty list uchar int vertex_indices\n"
        "end_header\n"
    )
    face_records = np.zeros(len(faces), dtype=[("count", "u1"), ("indices", "<i4", (3,))])
    face_records["count"], face_records["indices"] = 3, faces
    with open(path, "wb") as file:
        file.write(header.encode("ascii"))
        file.write(np.asarray(vertices, "<f4").tobytes())
        file.write(face_records.tobytes())


def _model_info(vertices: np.ndarray) -> dict:
    """BOP's models_info entry: diameter (largest vertex distance, mm) and the bounding box."""
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    hull = vertices if len(vertices) <= 2000 else vertices[np.linspace(0, len(vertices) - 1, 2000).astype(int)]
    diameter = max(float(np.linalg.norm(hull - point, axis=1).max()) for point in hull)
    return {
        "diameter": diameter,
        **{f"min_{axis}": float(value) for axis, value in zip("xyz", low, strict=True)},
        **{f"size_{axis}": float(value) for axis, value in zip("xyz", high - low, strict=True)},
    }


def write_bop(
    splits: dict[str, pd.DataFrame], models: pd.DataFrame, axes: dict, categories: list[str], out_dir: Path
) -> dict[str, int]:
    """Write the BOP layout of the generated-image tables ``splits`` ({split: records}) into ``out_dir``, staged
    and renamed into place whole. Returns the number of images written per split.

    ``models/obj_<id>.ply`` (mm, :func:`bop_model_mesh`; ids 1-based in the asset index's order) with
    ``models/models_info.json``; per split one scene per category (``<split>/<scene>/``, scene ids 1-based in
    the order of ``categories``), images numbered 0.. in image-id order: ``rgb/<im>.png``,
    ``mask/<im>_000000.png`` and ``mask_visib/`` (the render's mask at the image size; one unoccluded object, so
    both the same), ``scene_camera.json`` (``cam_K``, ``depth_scale``), ``scene_gt.json`` (``cam_R_m2c``
    row-major, ``cam_t_m2c`` in mm, ``obj_id``: x = K (R X + t) for model points X in mm, OpenCV axes,
    pixel-corner origin), ``scene_gt_info.json`` (``bbox_obj`` from the projected model, ``bbox_visib`` from the
    mask, ``[x, y, w, h]``; pixel counts inside the image) and dst3d's ``image_keys.json`` (im id -> image id).
    Images whose mask is empty are left out; a stretched render (``render.stretch``) has no one model per id
    and is refused."""
    indices = {model_id: number for number, model_id in enumerate(models["model_id"], start=1)}
    models_by_id = {model["model_id"]: model for model in models.to_dict("records")}
    counts, meshes_mm = {}, {}
    with staged_directory(Path(out_dir)) as staging:
        for split, records in splits.items():
            counts[split] = 0
            stretched = records[["scale_x", "scale_y", "scale_z"]].ne(1.0).any(axis=1)
            if stretched.any():
                raise ValueError(
                    f"{int(stretched.sum())} {split} images are stretched (render.stretch), e.g. "
                    f"{records.loc[stretched, 'image_id'].iloc[0]}: the BOP export needs one model per object id"
                )
            for category, group in records.groupby("category", sort=False):
                scene = staging / split / f"{categories.index(category) + 1:06d}"
                for folder in ("rgb", "mask", "mask_visib"):
                    (scene / folder).mkdir(parents=True, exist_ok=True)
                cameras, ground_truth, info, keys = {}, {}, {}, {}
                for number, record in enumerate(group.sort_values("image_id").to_dict("records")):
                    found = _object_mask(record)
                    if found is None:
                        continue
                    mask, (x0, y0, x1, y1) = found
                    name = f"{number:06d}"
                    image = read_image(record["image_path"])
                    mask_png = mask.astype(np.uint8) * 255
                    for path, pixels in (
                        (scene / "rgb" / f"{name}.png", image),
                        (scene / "mask" / f"{name}_000000.png", mask_png),
                        (scene / "mask_visib" / f"{name}_000000.png", mask_png),
                    ):
                        if not cv2.imwrite(str(path), pixels):
                            raise OSError(f"could not write {path}")
                    K, R, t = image_camera(record), matrix(record, "R"), matrix(record, "t")
                    obj_id = indices[record["model_id"]]
                    if record["model_id"] not in meshes_mm:
                        meshes_mm[record["model_id"]] = bop_model_mesh(models_by_id[record["model_id"]], axes)
                    uv, _ = project(meshes_mm[record["model_id"]][0], K, R, np.asarray(t) * BOP_MM_PER_UNIT)
                    low, high = np.floor(uv.min(axis=0)), np.ceil(uv.max(axis=0))
                    cameras[str(number)] = {"cam_K": K.reshape(-1).tolist(), "depth_scale": 1.0}
                    ground_truth[str(number)] = [
                        {
                            "cam_R_m2c": R.reshape(-1).tolist(),
                            "cam_t_m2c": (np.asarray(t) * BOP_MM_PER_UNIT).tolist(),
                            "obj_id": obj_id,
                        }
                    ]
                    visible = [x0, y0, x1 - x0, y1 - y0]
                    info[str(number)] = [
                        {
                            "bbox_obj": [int(low[0]), int(low[1]), int(high[0] - low[0]), int(high[1] - low[1])],
                            "bbox_visib": visible,
                            "px_count_all": int(mask.sum()),
                            "px_count_valid": int(mask.sum()),
                            "px_count_visib": int(mask.sum()),
                            "visib_fract": 1.0,
                        }
                    ]
                    keys[str(number)] = record["image_id"]
                    counts[split] += 1
                for file_name, data in (
                    ("scene_camera.json", cameras),
                    ("scene_gt.json", ground_truth),
                    ("scene_gt_info.json", info),
                    ("image_keys.json", keys),
                ):
                    (scene / file_name).write_text(json.dumps(data, indent=1))
        (staging / "models").mkdir()
        models_info = {}
        for model_id, (vertices, faces) in sorted(meshes_mm.items(), key=lambda item: indices[item[0]]):
            model = models_by_id[model_id]
            write_ply(staging / "models" / f"obj_{indices[model['model_id']]:06d}.ply", vertices, faces)
            models_info[str(indices[model["model_id"]])] = _model_info(vertices)
        (staging / "models" / "models_info.json").write_text(json.dumps(models_info, indent=1))
    return counts


def variant_records(
    train_tables: list[str], test_tables: list[str], kept_csv: str | None
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """(exported, generated) records per split of a synthetic variant: the generated shard tables of each split
    and, for a -kcf variant (``kept_csv``: KCF's kept list), only the kept training images in ``exported``."""
    from dst3d.io import read_tables

    generated = {"train": read_tables(train_tables), "test": read_tables(test_tables)}
    exported = dict(generated)
    if kept_csv is not None:  # the images the variant trains on
        kept = set(read_csv(kept_csv)["image_id"])
        exported["train"] = generated["train"][generated["train"]["image_id"].isin(kept)]
    return exported, generated
