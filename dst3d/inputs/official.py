"""Model tables of the published systems, read as they are released, into the workflow's model table
(:mod:`dst3d.inputs.catalog`), so that a user with the downloads needs no conversion script
(``assets.folders.models_format``):

* ``3d-dst``: the released 3D-DST model table (``3d-dst-models.csv``), read as the official renderer reads it: by
  position, one row per CAD model with synset (an ImageNet WordNet id, the category), model id, distance, azimuth
  offset, elevation offset, strength and sampling mode (the header's names are not used). Model ids resolve as
  the official model loader resolves them: a ShapeNet id to ``<shapenet_dir>/<any synset>/<id>/`` and there
  ``model_normalized.obj``, ``models/model_normalized.obj`` (ShapeNetCore v2) or ``model.obj`` (v1); an Objaverse
  uid to ``<objaverse_dir>/<uid>.glb`` or, as the ``objaverse`` package caches them, ``glbs/<group>/<uid>.glb``
  anywhere below. Rows of other categories are left out.
* ``pascal3d-cad``: a PASCAL3D+ ``CAD`` folder (``<cad_dir>/<category>/<nn>.off``, P3D-Diffusion's models): one
  model per file, no offsets (the files are in the canonical frame), distance ``cad_distance`` (one number or one
  per category), sampling mode ``p3d``.

A model that cannot be found is an error naming it (and the count) unless ``skip_missing_models`` is true; then it
is left out and named in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from dst3d.inputs.catalog import MODEL_COLUMNS, AssetError, read_model_table, validate_model_table
from dst3d.tables import read_csv

log = logging.getLogger(__name__)

#: The official table's columns, by position (scripts/render_synthetic_data.py reads them so).
OFFICIAL_COLUMNS = ("synset", "model_id", "distance", "azimuth", "elevation", "strength", "sampling")
SHAPENET_FILES = ("model_normalized.obj", "models/model_normalized.obj", "model.obj")


def _shapenet_index(root: Path) -> dict[str, Path]:
    """ShapeNet model id -> its folder, over every synset folder of ``root`` (first one wins, sorted)."""
    index: dict[str, Path] = {}
    for synset in sorted(path for path in root.iterdir() if path.is_dir()):
        for model in sorted(path for path in synset.iterdir() if path.is_dir()):
            index.setdefault(model.name, model)
    return index


def _shapenet_mesh(folder: Path) -> Path | None:
    for name in SHAPENET_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


class _ObjaverseIndex:
    """``<uid>.glb`` directly under the root, else anywhere below it (indexed once, on the first miss)."""

    def __init__(self, root: Path):
        self.root, self.nested = root, None

    def find(self, uid: str) -> Path | None:
        direct = self.root / f"{uid}.glb"
        if direct.is_file():
            return direct
        if self.nested is None:
            self.nested = {path.stem: path for path in sorted(self.root.rglob("*.glb"))}
        return self.nested.get(uid)


def read_official_table(
    path: Path, categories: list[str], shapenet_dir: str | None, objaverse_dir: str | None, skip_missing: bool
) -> pd.DataFrame:
    """The released 3D-DST model table as a workflow model table (validated, absolute paths)."""
    path = Path(path)
    if not path.is_file():
        raise AssetError(f"3D-DST model table {path} does not exist: set assets.folders.models_csv to your copy")
    if shapenet_dir is None and objaverse_dir is None:
        raise AssetError(
            "assets.folders.models_format is 3d-dst: set assets.folders.shapenet_dir and/or objaverse_dir to the "
            "folders the table's models are in"
        )
    raw = read_csv(path, dtype=str, keep_default_na=False)
    if raw.shape[1] < len(OFFICIAL_COLUMNS):
        raise AssetError(
            f"{path}: {raw.shape[1]} columns; the 3D-DST model table has {len(OFFICIAL_COLUMNS)} "
            f"({', '.join(OFFICIAL_COLUMNS)}, by position)"
        )
    raw = raw.iloc[:, : len(OFFICIAL_COLUMNS)]
    raw.columns = list(OFFICIAL_COLUMNS)
    raw["line"] = range(2, len(raw) + 2)
    raw = raw[raw["synset"].isin(categories)]
    shapenet = _shapenet_index(Path(shapenet_dir)) if shapenet_dir else {}
    objaverse = _ObjaverseIndex(Path(objaverse_dir)) if objaverse_dir else None
    rows, missing = [], []
    for row in raw.itertuples(index=False):
        mesh = None
        if row.model_id in shapenet:
            mesh = _shapenet_mesh(shapenet[row.model_id])
        if mesh is None and objaverse is not None:
            mesh = objaverse.find(row.model_id)
        if mesh is None:
            missing.append(f"{row.model_id} (line {row.line}, {row.synset})")
            continue
        sampling = row.sampling.strip()
        sampling = str(int(float(sampling))) if sampling.replace(".", "", 1).isdigit() else sampling
        rows.append(
            {
                "category": row.synset,
                "model_id": row.model_id,
                "path": str(mesh.resolve()),
                "azimuth_offset_deg": row.azimuth,
                "elevation_offset_deg": row.elevation,
                "distance": row.distance,
                "sampling_mode": sampling,
                "strength": row.strength,
                "keywords": "",
            }
        )
    if missing:
        message = (
            f"{path}: {len(missing)} of the table's models of the configured categories are in neither "
            f"assets.folders.shapenet_dir ({shapenet_dir}) nor objaverse_dir ({objaverse_dir}): "
            f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
        )
        if not skip_missing:
            raise AssetError(message + "; point the folders at them, or set assets.folders.skip_missing_models: true")
        log.warning("%s; left out (assets.folders.skip_missing_models)", message)
    table = pd.DataFrame(rows, columns=MODEL_COLUMNS)
    return validate_model_table(table, f"3D-DST model table {path}", Path("/"), lines=None)


def read_pascal3d_cad(cad_dir: Path, categories: list[str], distance: float | Mapping | None) -> pd.DataFrame:
    """A PASCAL3D+ ``CAD`` folder as a workflow model table: every ``<category>/<nn>.off`` of the categories."""
    cad_dir = Path(cad_dir)
    if not cad_dir.is_dir():
        raise AssetError(f"PASCAL3D+ CAD folder {cad_dir} does not exist: set assets.folders.cad_dir to it")
    if distance is None:
        raise AssetError("assets.folders.models_format is pascal3d-cad: set assets.folders.cad_distance")
    rows = []
    for category in categories:
        if isinstance(distance, Mapping) and category not in distance:
            raise AssetError(f"assets.folders.cad_distance has no distance for the category {category!r}")
        category_distance = distance[category] if isinstance(distance, Mapping) else distance
        files = sorted((cad_dir / category).glob("*.off")) if (cad_dir / category).is_dir() else []
        if not files:
            raise AssetError(f"{cad_dir / category}: no .off files (PASCAL3D+ CAD/<category>/<nn>.off)")
        rows += [
            {
                "category": category,
                "model_id": file.stem,
                "path": str(file.resolve()),
                "azimuth_offset_deg": 0.0,
                "elevation_offset_deg": 0.0,
                "distance": category_distance,
                "sampling_mode": "p3d",
                "strength": 1,
                "keywords": "",
            }
            for file in files
        ]
    return validate_model_table(pd.DataFrame(rows, columns=MODEL_COLUMNS), f"CAD folder {cad_dir}", Path("/"), None)


def load_models(folders: Mapping[str, Any], categories: list[str]) -> pd.DataFrame:
    """The model table ``assets.folders`` describes, in its ``models_format``."""
    layout = folders.get("models_format", "dst3d")
    if layout == "3d-dst":
        return read_official_table(
            Path(folders["models_csv"]),
            categories,
            folders.get("shapenet_dir"),
            folders.get("objaverse_dir"),
            bool(folders.get("skip_missing_models")),
        )
    if layout == "pascal3d-cad":
        return read_pascal3d_cad(Path(folders["cad_dir"] or ""), categories, folders.get("cad_distance"))
    return read_model_table(Path(folders["models_csv"]))
