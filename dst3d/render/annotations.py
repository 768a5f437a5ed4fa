"""The assets a shard draws from (:class:`ShardAssets`), per-image plans (everything random about an image, drawn
from its identity) and annotation records.

An annotation record holds the canonical pose (PASCAL3D+ conventions, radians) and the model's alignment
offsets as separate fields; K, R, t describe the camera that rendered the normalised model file (offsets
included), in OpenCV axes (see :mod:`dst3d.geometry`). Matrices are stored row-major as flat lists so a shard
is one Parquet table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dst3d import geometry
from dst3d.identity import image_id, image_rng, image_seed
from dst3d.inputs import catalog
from dst3d.inputs.catalog import model_for_image
from dst3d.render.viewpoints import fold_polar, sample_viewpoint
from dst3d.tables import read_csv

#: ``render.preset`` of the official 3D-DST scene (scripts/blender_render.py): one fixed area light of 30 kW, 1 m
#: scaled by 100, at z = 0.5 facing down; Blender's startup world (grey 0.0509, strength 1); Blender 3.2's default
#: view transform (Filmic); filter width 0.01; 3 transparent and transmission bounces.
OFFICIAL_3D_DST = "3d-dst-official"
OFFICIAL_LIGHT_ENERGY_W = 30000.0
OFFICIAL_WORLD_GREY = (0.05087608844041824,) * 3


def render_angles(
    azimuth: float, elevation: float, azimuth_offset: float, elevation_offset: float
) -> tuple[float, float]:
    """The camera's (azimuth, elevation) in the model file's frame (radians): the canonical pose plus the model's
    alignment offsets, a polar angle past the pole folded back (azimuth + pi), azimuth wrapped into [0, 2 pi)."""
    azimuth_deg, polar_deg = fold_polar(
        np.rad2deg(azimuth + azimuth_offset), 90.0 - np.rad2deg(elevation + elevation_offset)
    )
    return float(np.deg2rad(azimuth_deg) % (2 * np.pi)), float(np.deg2rad(90.0 - polar_deg))


@dataclass(frozen=True, eq=False)  # eq=False: tables do not compare to one truth value; identity it is
class ShardAssets:
    """What the images of one shard (one split and category) draw from.

    ``models`` are the category's rows of the model table in table order (:func:`dst3d.inputs.catalog.models_of`),
    ``textures`` and ``backgrounds`` the split's rows of their indexes (:func:`dst3d.inputs.catalog.split_assets`),
    ``environments`` the HDR index; an empty one is stored as ``None`` (no environment maps: a uniform grey world).
    """

    models: pd.DataFrame
    textures: pd.DataFrame
    backgrounds: pd.DataFrame
    environments: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        if self.environments is not None and self.environments.empty:
            object.__setattr__(self, "environments", None)

    @classmethod
    def from_indexes(
        cls,
        split: str,
        category: str,
        models: str | Path,
        textures: str | Path,
        backgrounds: str | Path,
        environments: str | Path | None = None,
    ) -> ShardAssets:
        """The assets of (split, category) read from the workflow's index CSVs (model table, texture, background
        and environment indexes), failing clearly when the category has no model or the split no texture or
        background."""
        return cls(
            models=catalog.models_of(read_csv(models, dtype=catalog.MODEL_INDEX_DTYPES), category),
            textures=catalog.split_assets(read_csv(textures), split, "textures"),
            backgrounds=catalog.split_assets(read_csv(backgrounds), split, "backgrounds"),
            environments=read_csv(environments) if environments is not None else None,
        )

    @property
    def with_environment(self) -> bool:
        """Whether the images are lit by environment maps (else by a uniform grey world)."""
        return self.environments is not None


def plan_image(
    split: str,
    category: str,
    index: int,
    assets: ShardAssets,
    settings: dict,
    global_seed: int,
) -> dict:
    """Everything random about one image, from (global_seed, split, category, index) alone.

    The model is chosen round-robin (``index % number of models``) among ``assets.models`` so every model gets
    the same share; the rest comes from the image's ``render`` stream in a fixed order: viewpoint, texture,
    background, light, then (only with environment maps) the environment map and its rotation about z. The
    texture is drawn even with ``render.keep_materials`` (and recorded as empty), so that switching it changes no
    other draw.
    """
    model = model_for_image(assets.models, index)
    rng = image_rng(global_seed, split, category, index, "render")
    viewpoint_settings = settings["viewpoint"]
    mode = viewpoint_settings["mode"] if viewpoint_settings["mode"] is not None else model["sampling_mode"]
    mode = int(mode) if str(mode).isdigit() else str(mode)
    view = sample_viewpoint(rng, mode, float(model["distance"]), viewpoint_settings)
    texture = assets.textures.iloc[int(rng.integers(len(assets.textures)))]
    background = assets.backgrounds.iloc[int(rng.integers(len(assets.backgrounds)))]
    light = settings["light"]
    light_azimuth, light_elevation = rng.uniform(-1, 1, 2) * np.deg2rad(light["jitter_deg"])
    light_energy = light["energy_w"] * (1 + light["energy_jitter"] * rng.uniform(-1, 1))
    if settings.get("preset") == OFFICIAL_3D_DST:  # drawn all the same (no other draw moves), then recorded as used
        light_azimuth, light_elevation, light_energy = np.nan, np.nan, OFFICIAL_LIGHT_ENERGY_W
    environment_path, environment_rotation = None, None
    if assets.with_environment:
        environment_path = assets.environments.iloc[int(rng.integers(len(assets.environments)))]["path"]
        environment_rotation = float(rng.uniform(0, 2 * np.pi))
    keep_materials = settings["keep_materials"]
    # P3D-Diffusion's per-axis stretch of the CAD model (1 + s * U(-1, 1) per axis; render.stretch = s). Drawn
    # last, so every draw before it is the same whatever s is.
    stretch = float(settings.get("stretch", 0.0))
    scale_x, scale_y, scale_z = 1.0 + stretch * rng.uniform(-1, 1, 3)

    azimuth_offset = np.deg2rad(float(model["azimuth_offset_deg"]))
    elevation_offset = np.deg2rad(float(model["elevation_offset_deg"]))
    render_azimuth, render_elevation = render_angles(view.azimuth, view.elevation, azimuth_offset, elevation_offset)
    return {
        "image_id": image_id(split, category, index),
        "split": split,
        "category": category,
        "image_index": index,
        "seed": image_seed(global_seed, split, category, index, "render"),
        "model_id": model["model_id"],
        "model_path": model["path"],
        "sampling_mode": str(mode),
        "azimuth": view.azimuth,
        "elevation": view.elevation,
        "theta": view.theta,
        "distance": view.distance,
        "azimuth_offset": float(azimuth_offset),
        "elevation_offset": float(elevation_offset),
        "render_azimuth": render_azimuth,
        "render_elevation": render_elevation,
        "texture_path": "" if keep_materials else texture["path"],
        "texture_class": "" if keep_materials else texture["texture_class"],
        "background_path": background["path"],
        "light_azimuth": float(light_azimuth),
        "light_elevation": float(light_elevation),
        "light_energy_w": float(light_energy),
        "environment_path": environment_path,
        "environment_rotation": environment_rotation,
        "scale_x": float(scale_x),
        "scale_y": float(scale_y),
        "scale_z": float(scale_z),
    }


def camera_of(
    plan: dict, width: int, height: int, lens_mm: float, sensor_width_mm: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """K, R, t (OpenCV axes) of the camera that renders ``plan`` (offsets included)."""
    K = geometry.intrinsics(geometry.focal_px(lens_mm, sensor_width_mm, width), width, height)
    R, t = geometry.extrinsics_cv(plan["render_azimuth"], plan["render_elevation"], plan["theta"], plan["distance"])
    return K, R, t


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Tight box (x0, y0, x1, y1), pixel-corner coordinates with exclusive x1/y1, of a boolean mask;
    (-1, -1, -1, -1) when the mask is empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return (-1, -1, -1, -1)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def annotation_record(
    plan: dict,
    K: np.ndarray,
    R: np.ndarray,
    t: np.ndarray,
    width: int,
    height: int,
    model_bbox_min: np.ndarray,
    model_bbox_max: np.ndarray,
    mask: np.ndarray,
    render_path: str,
    mask_path: str,
    depth_path: str | None = None,
    depth_scale: float | None = None,
) -> dict:
    """The annotation record of one rendered image (README.md, "Annotation record"), from its plan, camera and object mask.

    The cuboid is the normalised model's bounding box (stretched by the plan's ``scale_x/y/z``, as the rendered
    object is); its 8 projected corners are listed as (u, v) pixel
    coordinates, each visible when it lies on a box face that faces the camera and inside the image.
    ``depth_path``/``depth_scale``: the depth map, if any, and the model units per stored depth value.
    """
    stretch = np.array([plan.get("scale_x", 1.0), plan.get("scale_y", 1.0), plan.get("scale_z", 1.0)])
    model_bbox_min, model_bbox_max = np.asarray(model_bbox_min) * stretch, np.asarray(model_bbox_max) * stretch
    corners = geometry.cuboid_corners(model_bbox_min, model_bbox_max)
    corners_uv, _ = geometry.project(corners, K, R, t)
    center = -R.T @ t
    inside = (
        (corners_uv[:, 0] >= 0) & (corners_uv[:, 0] < width) & (corners_uv[:, 1] >= 0) & (corners_uv[:, 1] < height)
    )
    visible = geometry.cuboid_corner_visibility(model_bbox_min, model_bbox_max, center) & inside
    x0, y0, x1, y1 = mask_bbox(mask)
    record = {key: plan[key] for key in plan if key != "model_path"}
    record.update(
        {
            "width": width,
            "height": height,
            "K": K.reshape(-1).tolist(),
            "R": R.reshape(-1).tolist(),
            "t": np.asarray(t).tolist(),
            "bbox_x0": x0,
            "bbox_y0": y0,
            "bbox_x1": x1,
            "bbox_y1": y1,
            "mask_area": int(mask.sum()),
            "cuboid_uv": corners_uv.reshape(-1).tolist(),
            "cuboid_visible": visible.tolist(),
            "render_path": render_path,
            "mask_path": mask_path,
            "depth_path": depth_path,
            "depth_scale": depth_scale,
        }
    )
    return record


def matrix(record: pd.Series | dict, key: str) -> np.ndarray:
    """A stored matrix of a record back as an array: K and R 3x3, t 3, cuboid_uv 8x2."""
    shapes = {"K": (3, 3), "R": (3, 3), "t": (3,), "cuboid_uv": (8, 2)}
    return np.asarray(record[key], dtype=float).reshape(shapes[key])
