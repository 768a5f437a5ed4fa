"""The workflow's input tables: the model table (CAD files with their 3D-DST metadata), and the indexes of
texture, background and HDR environment folders, each split into train and test.

Model table (CSV, one row per CAD model): category, model_id, path (relative to the table's folder or
absolute), azimuth_offset_deg, elevation_offset_deg, distance, sampling_mode (1-5 or ``p3d``), strength, keywords
(``;``-separated CAD tags), and optionally forward_axis, up_axis (the file's axes, see
:mod:`dst3d.inputs.meshes`; empty: the format's default from ``render.axes``). Offsets align the model file to its
category's canonical pose: the camera is placed at the canonical angles plus the offsets. Mesh formats: ``.obj``
(ShapeNet's ``model_normalized.obj`` included), ``.glb``/``.gltf`` (Objaverse), ``.off`` (PASCAL3D+ CAD) and
``.blend``.

Every error is an :class:`AssetError` that names the file (and the line of a table) and says what to fix.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from dst3d.inputs import meshes
from dst3d.tables import read_csv

MODEL_COLUMNS = [
    "category",
    "model_id",
    "path",
    "azimuth_offset_deg",
    "elevation_offset_deg",
    "distance",
    "sampling_mode",
    "strength",
    "keywords",
]
OPTIONAL_MODEL_COLUMNS = ["forward_axis", "up_axis"]
#: Column types for reading a model table or index back with pandas (empty axes stay empty strings).
MODEL_INDEX_DTYPES = {"model_id": str, "sampling_mode": str, "keywords": str, "forward_axis": str, "up_axis": str}
#: Mesh formats by file suffix.
MESH_FORMATS = {".obj": "obj", ".glb": "gltf", ".gltf": "gltf", ".off": "off", ".blend": "blend"}
HDR_SUFFIXES = {".hdr", ".exr"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


class AssetError(ValueError):
    """A problem with an input asset; the message names the file or row and says how to fix it."""


def read_model_table(path: Path) -> pd.DataFrame:
    """Read and validate a model table; ``path`` is resolved to absolute paths and every mesh file must exist.

    Adds the optional columns (empty when absent) and ``format`` (``obj``, ``gltf``, ``off`` or ``blend``).
    Every error names the table, the line and the model and says what to fix.
    """
    path = Path(path)
    if not path.is_file():
        raise AssetError(
            f"model table {path} does not exist: set assets.models_csv to a CSV with columns {MODEL_COLUMNS}"
        )
    table = read_csv(path, dtype=MODEL_INDEX_DTYPES)
    missing = [column for column in MODEL_COLUMNS if column not in table.columns]
    if missing:
        raise AssetError(f"model table {path} lacks columns {missing}; expected {MODEL_COLUMNS}")
    return validate_model_table(table, f"model table {path}", path.parent)


def validate_model_table(table: pd.DataFrame, name: str, base: Path, lines: bool | None = True) -> pd.DataFrame:
    """Check a model table (columns ``MODEL_COLUMNS``) row by row, resolve its paths against ``base`` (every mesh
    file must exist) and add the optional columns and ``format``. ``name`` says where the table came from in the
    errors; with ``lines``, each error gives the row's CSV line."""
    table = table.copy()
    for column in ["keywords", *OPTIONAL_MODEL_COLUMNS]:
        table[column] = table[column].fillna("") if column in table.columns else ""
    resolved, formats = [], []
    for row_number, row in enumerate(table.itertuples(index=False), start=2):
        where = f"{name}, line {row_number} (model {row.model_id!r})" if lines else f"{name} (model {row.model_id!r})"
        if pd.isna(row.category) or pd.isna(row.model_id) or pd.isna(row.path):
            raise AssetError(f"{where}: category, model_id and path must not be empty")
        try:
            float(row.azimuth_offset_deg), float(row.elevation_offset_deg), float(row.strength)
            distance = float(row.distance)
        except (TypeError, ValueError) as error:
            raise AssetError(f"{where}: offsets, distance and strength must be numbers") from error
        if not all(np.isfinite([float(row.azimuth_offset_deg), float(row.elevation_offset_deg), distance])):
            raise AssetError(f"{where}: offsets and distance must be finite numbers")
        if not distance > 0:
            raise AssetError(f"{where}: distance must be positive, got {row.distance}")
        if str(row.sampling_mode) not in {"1", "2", "3", "4", "5", "p3d"}:
            raise AssetError(f"{where}: sampling_mode must be 1-5 or p3d, got {row.sampling_mode!r}")
        suffix = Path(str(row.path)).suffix.lower()
        if suffix not in MESH_FORMATS:
            raise AssetError(f"{where}: {row.path} is not a supported mesh format ({sorted(MESH_FORMATS)})")
        if bool(row.forward_axis) != bool(row.up_axis):
            raise AssetError(f"{where}: give both forward_axis and up_axis, or neither")
        if row.forward_axis:
            try:
                meshes.axis_matrix(row.forward_axis, row.up_axis)
            except ValueError as error:
                raise AssetError(f"{where}: {error}") from error
        mesh_path = (base / str(row.path)).resolve()
        if not mesh_path.is_file():
            raise AssetError(f"{where}: mesh file {mesh_path} does not exist: fix the path (relative to the table)")
        resolved.append(str(mesh_path))
        formats.append(MESH_FORMATS[suffix])
    if table.duplicated(["category", "model_id"]).any():
        duplicates = table.loc[table.duplicated(["category", "model_id"]), ["category", "model_id"]].values.tolist()
        raise AssetError(f"{name}: duplicate (category, model_id) rows {duplicates}")
    table["path"], table["format"] = resolved, formats
    return table


def models_of(table: pd.DataFrame, category: str) -> pd.DataFrame:
    """The models of one category, in a fixed order (by model_id) so that image -> model is stable."""
    subset = table[table["category"] == category].sort_values("model_id").reset_index(drop=True)
    if subset.empty:
        raise AssetError(f"no model of category {category!r} in the model table: add rows or drop the category")
    return subset


def _stable_fraction(text: str) -> float:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") / 2**64


def index_textures(root: Path, test_fraction: float, dtd_split: int = 1) -> pd.DataFrame:
    """Index a DTD-style texture folder: ``images/<class>/*.jpg`` and optional ``labels/{train,val,test}<k>.txt``.

    The real DTD (Cimpoi et al. 2014) ships ten splits, ``labels/train1.txt`` ... ``test10.txt``, each line an
    image path relative to ``images/`` (``banded/banded_0002.jpg``). With split ``dtd_split``'s files, its
    train and val lists form our ``train`` split and its test list our ``test`` split; images in none of them
    are left out. Without split files, each image goes to ``test`` when a hash of its relative path falls
    below ``test_fraction``. Returns columns path (absolute), texture_class, split.
    """
    root = Path(root)
    images_dir = root / "images"
    if not images_dir.is_dir():
        raise AssetError(f"texture folder {root} has no images/ subfolder (expected DTD layout images/<class>/*.jpg)")
    files = sorted(p for p in images_dir.glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise AssetError(f"texture folder {images_dir} holds no .jpg/.png images in class subfolders")
    split_of = {}
    labels = root / "labels"
    train_file, test_file = labels / f"train{dtd_split}.txt", labels / f"test{dtd_split}.txt"
    if train_file.is_file() != test_file.is_file():
        raise AssetError(
            f"texture folder {root}: found only one of {train_file.name} and {test_file.name}; "
            "a DTD split needs both (val is optional)"
        )
    if train_file.is_file():
        val_file = labels / f"val{dtd_split}.txt"
        for split_file, split in ((train_file, "train"), (val_file, "train"), (test_file, "test")):
            if split_file.is_file():
                for line in split_file.read_text().splitlines():
                    relative = line.strip().replace("\\", "/").removeprefix("images/")
                    if relative:
                        split_of[relative] = split
        known = {file.relative_to(images_dir).as_posix() for file in files}
        unknown = sorted(set(split_of) - known)
        if unknown:
            raise AssetError(
                f"texture folder {root}: {len(unknown)} entries of the split files name no image under "
                f"images/, e.g. {unknown[0]!r}"
            )
    rows = []
    for file in files:
        relative = file.relative_to(images_dir).as_posix()
        split = (
            split_of.get(relative) if split_of else ("test" if _stable_fraction(relative) < test_fraction else "train")
        )
        if split is not None:
            rows.append({"path": str(file.resolve()), "texture_class": file.parent.name, "split": split})
    return pd.DataFrame(rows, columns=["path", "texture_class", "split"])


def index_backgrounds(root: Path, test_fraction: float) -> pd.DataFrame:
    """Index a folder of background photos (searched recursively). Subfolders named ``train``/``test`` decide the
    split where present; otherwise a hash of the relative path does. Returns columns path, split."""
    root = Path(root)
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if root.is_dir() else []
    if not files:
        raise AssetError(f"background folder {root} holds no .jpg/.png images: set assets.backgrounds_dir")
    rows = []
    for file in files:
        relative = file.relative_to(root).as_posix()
        top = relative.split("/")[0]
        split = top if top in ("train", "test") else ("test" if _stable_fraction(relative) < test_fraction else "train")
        rows.append({"path": str(file.resolve()), "split": split})
    return pd.DataFrame(rows, columns=["path", "split"])


def index_environments(root: Path | None) -> pd.DataFrame:
    """Index a folder of HDR environment maps (``.hdr``/``.exr``, searched recursively); ``None`` gives an empty
    index (no environment maps: the world is a uniform grey). Returns column path."""
    if root is None:
        return pd.DataFrame({"path": pd.Series([], dtype=str)})
    root = Path(root)
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in HDR_SUFFIXES) if root.is_dir() else []
    if not files:
        raise AssetError(
            f"environment map folder {root} holds no .hdr/.exr files: add some or set assets.environments_dir: null"
        )
    return pd.DataFrame({"path": [str(file.resolve()) for file in files]})


def model_for_image(models: pd.DataFrame, image_index: int) -> pd.Series:
    """The model of image ``image_index`` among a category's ``models`` (in table order): round-robin, so every
    model gets the same share of a split's images and an image keeps its model whatever the shard size."""
    return models.iloc[image_index % len(models)]


def split_assets(table: pd.DataFrame, split: str, source: str) -> pd.DataFrame:
    """The rows of a texture/background index for one split, failing clearly when there are none."""
    subset = table[table["split"] == split].reset_index(drop=True)
    if subset.empty:
        raise AssetError(f"no {source} in the {split!r} split: add images or change the split files")
    return subset


def relative_inside(frame: pd.DataFrame, root: Path, column: str = "path") -> pd.DataFrame:
    """``frame`` with the paths of ``column`` that lie inside ``root`` made relative to it (POSIX form), the others
    left absolute: the asset index of a run points into its working folder the way its results do, so a results
    folder moved with its working folder stays valid; the user's own asset folders elsewhere stay absolute."""
    root = Path(root).resolve()

    def relative(path: str) -> str:
        resolved = Path(path).resolve()
        return resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else str(path)

    return frame.assign(**{column: [relative(path) for path in frame[column]]}) if len(frame) else frame
