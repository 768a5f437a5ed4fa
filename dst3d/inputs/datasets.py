"""Readers of real sets (real 3D pose image sets) in their published formats, into one object table.

Every reader returns one row per annotated object with the columns of :data:`COLUMNS`:

* ``image_id``: a unique id of the object (annotation file and object index), ``image_path`` its image;
* ``category`` as the real set names it (``aeroplane``, not our ``airplane``: see :func:`map_categories`);
* ``bbox_x0, bbox_y0, bbox_x1, bbox_y1``: the object's box in image pixels with the pixel-corner origin (the
  convention of our renders): the MATLAB boxes of PASCAL3D+, ObjectNet3D and OOD-CV, 1-based and inclusive
  ``[x1 y1 x2 y2]``, become ``(x1 - 1, y1 - 1, x2, y2)``;
* ``azimuth, elevation, theta`` in radians in our (= PASCAL3D+) convention, azimuth in [0, 2 pi), elevation
  and theta in (-pi, pi]; ``distance`` as annotated;
* ``truncated, occluded, difficult`` (booleans; missing where a format has no such flag) and ``subset`` (the
  source or nuisance the object comes from).

The formats share the PASCAL3D+ viewpoint convention (camera at ``d (cos e sin a, -cos e cos a,
sin e)``, ``R = Rz(theta) Rx(e - pi/2) Rz(-a)``), so reading them is a change of units and box origin only.

Formats (``root`` is the real set's top folder as published):

* ``pascal3d`` (PASCAL3D+ release 1.1): ``Annotations/<cat>_<source>/<name>.mat`` holding ``record`` (filename,
  objects: class, bbox, truncated, occluded, difficult, viewpoint with azimuth, elevation, theta, distance in
  degrees), images in ``Images/<cat>_<source>/``; split lists ``Image_sets/<cat>_imagenet_<split>.txt`` (source
  ``imagenet``) and ``PASCAL/VOCdevkit/VOC2012/ImageSets/Main/<cat>_<split>.txt`` (source ``pascal``).
* ``objectnet3d``: ``Image_sets/<split>.txt``, ``Annotations/<name>.mat`` (same record), ``Images/``.
* ``oodcv`` (OOD-CV / ROBIN), in three published layouts:

  - v1.1 CSV: one CSV per split folder, ``train/``, ``iid_test/`` and
    ``nuisances/<shape|pose|texture|context|weather|occlusion>/``, with columns cls_name, im_name, object,
    truncated, occluded, difficult, azimuth, elevation, inplane_rotation (degrees), left, upper, right, lower
    (the PASCAL3D+ box), distance, im_path (relative to the split folder).
  - ROBIN's pose reference (``evaluation/pose_ref/ref/<split>/labels.csv`` of the ROBIN repository, ``root``
    being ``ref``): columns imgs (the image file name), labels (the category name), azimuth, elevation, theta
    (degrees), distance. The images are object crops, in the split folder or its ``images/``: the box is the
    whole image, left NaN in ``bbox_*`` (the crop code takes the whole decoded image), and the flags are unknown.
  - the pose challenge (taken when ``<root>/lists/`` exists): ``lists/<cat>_<nuisance>.txt`` naming the images
    of a nuisance (``iid``, ``context``, ``pose``, ``shape``, ``texture``, ``weather``, ``occlusion``: the
    split), ``images/<cat>/<name>.JPEG`` (or ``.jpg``, ``.png``) and ``annotations/<cat>/<name>.mat`` holding a
    PASCAL3D+ ``record`` (several objects per image possible); objects without a fine viewpoint are left out.

  The split folder of the two CSV layouts is ``<root>/<split>`` or else ``<root>/nuisances/<split>``, whatever
  the split's name (the reference has its own); a CSV with neither column set is refused.
* ``imagenet3d``: ``lists/<cat>_imagenet_<split>.txt``, ``images/<cat>/<name>.JPEG`` and
  ``annotations/<cat>/<name>.npz`` whose ``annotations`` array holds one dict per object (azimuth, elevation,
  theta in radians, distance, bbox ``(x1, y1, x2, y2)`` in pixels, object_status, optionally ignore).
* ``nemo`` (the prepared layout of the NeMo code base, in which the OOD-CV pose challenge and NeMo's
  PASCAL3D+ and OccludedPASCAL3D+ releases are distributed): ``<split>/lists/<cat><occ>/mesh<NN>.txt`` naming
  the samples of each CAD subtype, ``<split>/images/<cat><occ>/<name>.JPEG`` (crops centred on the object)
  and ``<split>/annotations/<cat><occ>/<name>.npz`` with azimuth, elevation, theta in radians, distance,
  cad_index, ``box_obj`` = ``(y0, y1, x0, x1, height, width)`` in the crop's pixels and, in OOD-CV's
  evaluation split, ``nuisance`` (``iid``, ``context``, ``pose``, ``shape``, ``texture``, ``weather``...).
  ``<occ>`` is empty for the unoccluded data and ``FGL<n>_BGL<n>`` for occlusion level n of
  OccludedPASCAL3D+. A sample named in two subtype lists (OOD-CV has some) is read once.

Objects without a fine viewpoint are left out, as the published evaluation code does: PASCAL3D+/ObjectNet3D
objects whose viewpoint is empty, coarse only or has distance 0, and ImageNet3D objects marked
``status_bad``, ``ignore`` or with distance 0. OOD-CV's CSV and the NeMo-prepared samples are their own
ground truth and are taken whole.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io

from dst3d.geometry import wrap_to_pi
from dst3d.tables import read_csv

COLUMNS = [
    "image_id",
    "image_path",
    "category",
    "bbox_x0",
    "bbox_y0",
    "bbox_x1",
    "bbox_y1",
    "azimuth",
    "elevation",
    "theta",
    "distance",
    "truncated",
    "occluded",
    "difficult",
    "subset",
    "viewpoint",
]
#: ``viewpoint`` of an ``evaluate.real_sets`` entry (PASCAL3D+ and ObjectNet3D): ``fine`` reads only objects with
#: a fine viewpoint; ``fine_or_coarse`` (the default) falls back to ``azimuth_coarse``/``elevation_coarse`` (theta
#: 0, distance unknown) where the fine fields are missing, empty or the distance is 0, as the official evaluation
#: codes do: ObjectNet3D's toolbox, and for PASCAL3D+ the VDPM evaluation and ViewpointsAndKeypoints.
VIEWPOINT_MODES = ("fine", "fine_or_coarse")
FORMATS = ("pascal3d", "objectnet3d", "oodcv", "imagenet3d", "nemo")
PASCAL3D_SOURCES = ("imagenet", "pascal")
#: The split folders of OOD-CV's v1.1 CSV release (for reference: the readers take any split folder there is).
OODCV_SPLITS = ("train", "iid_test", "shape", "pose", "texture", "context", "weather", "occlusion")
NEMO_OCCLUSION_LEVELS = (0, 1, 2, 3)
#: Real-set category names that differ from ours; a real set entry's ``category_map`` adds to it.
DEFAULT_CATEGORY_MAP = {"aeroplane": "airplane"}
FLAGS = ("truncated", "occluded", "difficult")


def _read_list(path: Path) -> list[str]:
    """Names in a split list (first token of each line); a missing list is an error naming the file."""
    if not path.is_file():
        raise FileNotFoundError(f"real set split list {path} does not exist: check the real set's root and split")
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def _finish(rows: list[dict]) -> pd.DataFrame:
    """The table in :data:`COLUMNS` order, angles wrapped into their canonical ranges."""
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["viewpoint"] = frame["viewpoint"].fillna("fine")
    frame["azimuth"] = np.mod(frame["azimuth"].to_numpy(dtype=float), 2 * np.pi)
    for column in ("elevation", "theta"):
        frame[column] = wrap_to_pi(frame[column].to_numpy(dtype=float))
    return frame


def _matlab_box(box) -> dict:
    """A 1-based inclusive MATLAB box ``[x1 y1 x2 y2]`` in pixel-corner coordinates."""
    x1, y1, x2, y2 = (float(value) for value in np.asarray(box, dtype=float).ravel()[:4])
    return {"bbox_x0": x1 - 1.0, "bbox_y0": y1 - 1.0, "bbox_x1": x2, "bbox_y1": y2}


def _field(struct, name: str, default=None):
    return getattr(struct, name) if name in getattr(struct, "_fieldnames", ()) else default


def _number(struct, name: str) -> float | None:
    """A numeric field of a MATLAB struct as a float; None when it is absent or empty (``[]``, as the annotation
    tools leave unset fields)."""
    value = _field(struct, name)
    if value is None:
        return None
    array = np.asarray(value, dtype=float).ravel()
    return float(array[0]) if array.size else None


def _viewpoint_angles(viewpoint, mode: str) -> dict | None:
    """azimuth, elevation, theta (radians), distance and which annotation they come from, or None when the object
    has no usable viewpoint under ``mode`` (see :data:`VIEWPOINT_MODES`)."""
    if not hasattr(viewpoint, "_fieldnames"):
        return None
    azimuth, elevation = _number(viewpoint, "azimuth"), _number(viewpoint, "elevation")
    distance = _number(viewpoint, "distance")
    if azimuth is not None and elevation is not None and distance is not None and distance > 0:
        theta = _number(viewpoint, "theta") or 0.0
        return {
            "azimuth": np.radians(azimuth),
            "elevation": np.radians(elevation),
            "theta": np.radians(theta),
            "distance": distance,
            "viewpoint": "fine",
        }
    if mode == "fine":
        return None
    azimuth, elevation = _number(viewpoint, "azimuth_coarse"), _number(viewpoint, "elevation_coarse")
    if azimuth is None or elevation is None:
        return None
    return {
        "azimuth": np.radians(azimuth),
        "elevation": np.radians(elevation),
        "theta": 0.0,
        "distance": float("nan"),
        "viewpoint": "coarse",
    }


def read_record_objects(
    mat_path: Path,
    image_dir: Path,
    id_prefix: str,
    subset: str,
    only_category: str | None = None,
    viewpoint_mode: str = "fine_or_coarse",
) -> list[dict]:
    """Rows of the objects with a viewpoint in one PASCAL3D+/ObjectNet3D ``record`` annotation file (a fine one,
    or with ``fine_or_coarse`` the coarse one where the fine one is missing: :data:`VIEWPOINT_MODES`)."""
    if viewpoint_mode not in VIEWPOINT_MODES:
        raise ValueError(f"real set viewpoint must be one of {VIEWPOINT_MODES}, got {viewpoint_mode!r}")
    record = scipy.io.loadmat(mat_path, squeeze_me=True, struct_as_record=False)["record"]
    rows = []
    for index, obj in enumerate(np.atleast_1d(record.objects)):
        category = str(_field(obj, "class", ""))
        if only_category is not None and category != only_category:
            continue
        angles = _viewpoint_angles(_field(obj, "viewpoint"), viewpoint_mode)
        if angles is None:
            continue
        rows.append(
            {
                "image_id": f"{id_prefix}/{index}",
                "image_path": str(image_dir / str(record.filename)),
                "category": category,
                **_matlab_box(obj.bbox),
                **angles,
                **{flag: bool(_number(obj, flag) or 0) for flag in FLAGS},  # an empty flag ([]) reads as 0
                "subset": subset,
            }
        )
    return rows


def read_pascal3d(
    root: str | Path,
    split: str,
    categories: list[str] | None = None,
    sources: tuple[str, ...] = PASCAL3D_SOURCES,
    viewpoint_mode: str = "fine_or_coarse",
) -> pd.DataFrame:
    """PASCAL3D+ objects of ``split`` (``train`` or ``val``) from the ImageNet and/or PASCAL VOC sources."""
    root = Path(root)
    annotations = root / "Annotations"
    if categories is None:
        categories = available_categories("pascal3d", root, split)
    rows = []
    for category in categories:
        for source in sources:
            if source not in PASCAL3D_SOURCES:
                raise ValueError(f"PASCAL3D+ source must be one of {PASCAL3D_SOURCES}, got {source!r}")
            if source == "imagenet":
                names = _read_list(root / "Image_sets" / f"{category}_imagenet_{split}.txt")
            else:
                voc_list = root / "PASCAL" / "VOCdevkit" / "VOC2012" / "ImageSets" / "Main" / f"{category}_{split}.txt"
                names = _read_list(voc_list)
            folder = f"{category}_{source}"
            for name in names:
                mat_path = annotations / folder / f"{name}.mat"
                if source == "pascal" and not mat_path.is_file():
                    continue  # the VOC list names every VOC image; only those with the category are annotated
                rows += read_record_objects(
                    mat_path, root / "Images" / folder, f"{folder}/{name}", source, category, viewpoint_mode
                )
    return _finish(rows)


def read_objectnet3d(
    root: str | Path, split: str, categories: list[str] | None = None, viewpoint_mode: str = "fine_or_coarse"
) -> pd.DataFrame:
    """ObjectNet3D objects of ``split`` (``train``, ``val`` or ``test``), optionally of some categories only."""
    root = Path(root)
    rows = []
    for name in _read_list(root / "Image_sets" / f"{split}.txt"):
        rows += read_record_objects(
            root / "Annotations" / f"{name}.mat", root / "Images", name, split, viewpoint_mode=viewpoint_mode
        )
    frame = _finish(rows)
    return frame if categories is None else frame[frame["category"].isin(categories)].reset_index(drop=True)


#: Columns of OOD-CV's per-split annotation CSV (ROBIN v1.1's ``train/``, ``iid_test/``, ``nuisances/<n>/``).
_OODCV_CSV_COLUMNS = (
    "cls_name",
    "im_name",
    "object",
    "truncated",
    "occluded",
    "difficult",
    "azimuth",
    "elevation",
    "inplane_rotation",
    "left",
    "upper",
    "right",
    "lower",
    "distance",
    "im_path",
)
#: Columns of the ROBIN repository's pose reference ``evaluation/pose_ref/ref/<split>/labels.csv`` (object crops).
_OODCV_LABELS_COLUMNS = ("imgs", "labels", "azimuth", "elevation", "theta", "distance")
#: Image file endings of the OOD-CV pose-challenge layout, in the order they are tried.
_OODCV_IMAGE_SUFFIXES = (".JPEG", ".jpg", ".png")


def _oodcv_split_folder(root: Path, split: str) -> Path:
    """The first existing of ``<root>/<split>`` and ``<root>/nuisances/<split>``; FileNotFoundError names both and
    the split folders there are."""
    tried = [root / split, root / "nuisances" / split]
    for folder in tried:
        if folder.is_dir():
            return folder
    found = sorted(
        str(path.relative_to(root))
        for base in (root, root / "nuisances")
        if base.is_dir()
        for path in base.iterdir()
        if path.is_dir() and path.name != "nuisances" and any(path.glob("*.csv"))
    )
    raise FileNotFoundError(
        f"OOD-CV split folder for split {split!r} not found: tried {tried[0]} and {tried[1]}; "
        f"the split folders with a CSV under {root} are {found}: check the real set's root and split"
    )


def _oodcv_csv_rows(path: Path, table: pd.DataFrame, folder: Path, split: str) -> list[dict]:
    """Rows of one OOD-CV annotation CSV (:data:`_OODCV_CSV_COLUMNS`): degrees, MATLAB boxes, flags."""
    return [
        {
            "image_id": f"{split}/{row.im_name}/{row.object}",
            "image_path": str(folder / row.im_path),
            "category": row.cls_name,
            **_matlab_box([row.left, row.upper, row.right, row.lower]),
            "azimuth": np.radians(row.azimuth),
            "elevation": np.radians(row.elevation),
            "theta": np.radians(row.inplane_rotation),
            "distance": float(row.distance),
            **{flag: bool(getattr(row, flag)) for flag in FLAGS},
            "subset": split,
        }
        for row in table.itertuples(index=False)
    ]


def _oodcv_labels_rows(path: Path, table: pd.DataFrame, folder: Path, split: str) -> list[dict]:
    """Rows of a ROBIN pose reference ``labels.csv`` (:data:`_OODCV_LABELS_COLUMNS`, degrees): each image is an
    object crop, so the box is the whole image (NaN ``bbox_*``, see :func:`dst3d.training.cropping.load_crop`);
    the flags are unknown. An image named twice gets the row index in its id."""
    counts = table["imgs"].astype(str).value_counts()
    rows = []
    for index, row in zip(table.index, table.itertuples(index=False), strict=True):
        name = str(row.imgs)
        tried = [folder / name, folder / "images" / name]
        image_path = next((candidate for candidate in tried if candidate.is_file()), None)
        if image_path is None:
            raise FileNotFoundError(
                f"OOD-CV labels CSV {path} names image {name!r}, found neither at {tried[0]} nor at {tried[1]}"
            )
        rows.append(
            {
                "image_id": f"{split}/{name}" if counts[name] == 1 else f"{split}/{name}/{index}",
                "image_path": str(image_path),
                "category": str(row.labels),
                "bbox_x0": np.nan,
                "bbox_y0": np.nan,
                "bbox_x1": np.nan,
                "bbox_y1": np.nan,
                "azimuth": np.radians(float(row.azimuth)),
                "elevation": np.radians(float(row.elevation)),
                "theta": np.radians(float(row.theta)),
                "distance": float(row.distance),
                **{flag: np.nan for flag in FLAGS},
                "subset": split,
            }
        )
    return rows


def _read_oodcv_pose_challenge(root: Path, nuisance: str, categories: list[str] | None) -> pd.DataFrame:
    """Objects of the OOD-CV pose-challenge layout (``lists/<cat>_<nuisance>.txt``, ``images/<cat>/``,
    ``annotations/<cat>/<name>.mat`` records; see the module docstring), fine viewpoints only."""
    suffix = f"_{nuisance}.txt"
    if categories is None:
        categories = sorted(path.name[: -len(suffix)] for path in (root / "lists").glob(f"*{suffix}"))
        if not categories:
            present = sorted(path.name for path in (root / "lists").glob("*.txt"))
            raise FileNotFoundError(
                f"no OOD-CV list {root / 'lists'}/<category>{suffix} for nuisance {nuisance!r} "
                f"(the lists there are {present}): check the real set's root and split"
            )
    rows = []
    for category in categories:
        list_path = root / "lists" / f"{category}{suffix}"
        for name in _read_list(list_path):
            image_dir = root / "images" / category
            tried = [image_dir / f"{name}{ending}" for ending in _OODCV_IMAGE_SUFFIXES]
            image_path = next((candidate for candidate in tried if candidate.is_file()), None)
            if image_path is None:
                raise FileNotFoundError(
                    f"OOD-CV list {list_path} names {name!r}, whose image is none of {[str(p) for p in tried]}"
                )
            mat_path = root / "annotations" / category / f"{name}.mat"
            if not mat_path.is_file():
                raise FileNotFoundError(
                    f"OOD-CV list {list_path} names {name!r}, whose annotation {mat_path} does not exist"
                )
            objects = read_record_objects(mat_path, image_dir, f"{category}/{name}", nuisance, category, "fine")
            rows += [{**obj, "image_path": str(image_path)} for obj in objects]
    return _finish(rows)


def read_oodcv(root: str | Path, split: str, categories: list[str] | None = None) -> pd.DataFrame:
    """OOD-CV objects of ``split`` in one of its published layouts (see the module docstring).

    With a ``lists/`` folder under ``root``, the pose-challenge layout, ``split`` being the nuisance (``iid``,
    ``context``, ``pose``, ...); otherwise the CSVs of the split folder (``<root>/<split>`` or
    ``<root>/nuisances/<split>``), each either OOD-CV's annotation CSV (:data:`_OODCV_CSV_COLUMNS`) or ROBIN's
    pose reference ``labels.csv`` (:data:`_OODCV_LABELS_COLUMNS`). A CSV with neither column set is a ValueError
    naming it."""
    root = Path(root)
    if (root / "lists").is_dir():
        return _read_oodcv_pose_challenge(root, split, categories)
    folder = _oodcv_split_folder(root, split)
    tables = sorted(folder.glob("*.csv"))
    if not tables:
        raise FileNotFoundError(f"no OOD-CV annotation CSV in {folder}: check the real set's root and split")
    rows = []
    for path in tables:
        table = read_csv(path)
        columns = set(table.columns)
        if columns.issuperset(_OODCV_CSV_COLUMNS):
            category_column, read_rows = "cls_name", _oodcv_csv_rows
        elif columns.issuperset(_OODCV_LABELS_COLUMNS):
            category_column, read_rows = "labels", _oodcv_labels_rows
        else:
            raise ValueError(
                f"OOD-CV CSV {path} has columns {list(table.columns)}, neither OOD-CV's annotation columns "
                f"{list(_OODCV_CSV_COLUMNS)} nor ROBIN's labels.csv columns {list(_OODCV_LABELS_COLUMNS)}"
            )
        if categories is not None:
            table = table[table[category_column].astype(str).isin(categories)]
        rows += read_rows(path, table, folder, split)
    return _finish(rows)


def read_imagenet3d(root: str | Path, split: str, categories: list[str] | None = None) -> pd.DataFrame:
    """ImageNet3D objects of ``split`` (``train`` or ``val``); all categories with a list when none are given."""
    root = Path(root)
    if categories is None:
        categories = available_categories("imagenet3d", root, split)
    rows = []
    for category in categories:
        for name in _read_list(root / "lists" / f"{category}_imagenet_{split}.txt"):
            objects = np.load(root / "annotations" / category / f"{name}.npz", allow_pickle=True)["annotations"]
            for index, obj in enumerate(objects):
                status = str(obj.get("object_status", "status_good"))
                if status == "status_bad" or obj.get("ignore", 0) > 0 or float(obj["distance"]) <= 0:
                    continue
                x0, y0, x1, y1 = (float(value) for value in np.asarray(obj["bbox"], dtype=float)[:4])
                rows.append(
                    {
                        "image_id": f"{category}/{name}/{index}",
                        "image_path": str(root / "images" / category / f"{name}.JPEG"),
                        "category": category,
                        "bbox_x0": x0,
                        "bbox_y0": y0,
                        "bbox_x1": x1,
                        "bbox_y1": y1,
                        "azimuth": float(obj["azimuth"]),
                        "elevation": float(obj["elevation"]),
                        "theta": float(obj["theta"]),
                        "distance": float(obj["distance"]),
                        "truncated": np.nan,
                        "occluded": status in ("status_partially", "status_barely"),
                        "difficult": np.nan,
                        "subset": split,
                    }
                )
    return _finish(rows)


def nemo_folder_suffix(occlusion_level: int) -> str:
    """The suffix NeMo's prepared folders give an OccludedPASCAL3D+ level (none for level 0)."""
    if occlusion_level not in NEMO_OCCLUSION_LEVELS:
        raise ValueError(f"NeMo occlusion_level must be one of {NEMO_OCCLUSION_LEVELS}, got {occlusion_level!r}")
    return "" if occlusion_level == 0 else f"FGL{occlusion_level}_BGL{occlusion_level}"


def read_nemo(
    root: str | Path,
    split: str,
    categories: list[str] | None = None,
    occlusion_level: int = 0,
    nuisance: str | None = None,
) -> pd.DataFrame:
    """Objects of a NeMo-prepared ``split`` folder (see the module docstring) at ``occlusion_level``; with
    ``nuisance``, only the samples whose annotation names that nuisance (OOD-CV's evaluation split)."""
    suffix = nemo_folder_suffix(occlusion_level)
    base = Path(root) / split
    if categories is None:
        categories = available_categories("nemo", root, split, occlusion_level)
    rows = []
    for category in categories:
        folder = f"{category}{suffix}"
        lists = sorted((base / "lists" / folder).glob("*.txt"))
        if not lists:
            raise FileNotFoundError(
                f"no sample list in {base / 'lists' / folder}: check the real set's root, split and occlusion_level"
            )
        names = sorted({name for path in lists for name in _read_list(path)})
        for name in names:
            with np.load(base / "annotations" / folder / f"{name}.npz", allow_pickle=True) as npz:
                annotation = {key: npz[key] for key in ("azimuth", "elevation", "theta", "distance", "box_obj")}
                subset = str(npz["nuisance"]) if "nuisance" in npz.files else split
            if nuisance is not None and subset != nuisance:
                continue
            y0, y1, x0, x1 = (float(value) for value in np.asarray(annotation["box_obj"], dtype=float).ravel()[:4])
            rows.append(
                {
                    "image_id": f"{folder}/{name}",
                    "image_path": str(base / "images" / folder / f"{name}.JPEG"),
                    "category": category,
                    "bbox_x0": x0,
                    "bbox_y0": y0,
                    "bbox_x1": x1,
                    "bbox_y1": y1,
                    "azimuth": float(annotation["azimuth"]),
                    "elevation": float(annotation["elevation"]),
                    "theta": float(annotation["theta"]),
                    "distance": float(annotation["distance"]),
                    "truncated": np.nan,
                    "occluded": True if occlusion_level > 0 else np.nan,
                    "difficult": np.nan,
                    "subset": subset if occlusion_level == 0 else f"{subset}-{suffix}",
                }
            )
    return _finish(rows)


def available_categories(format_name: str, root: str | Path, split: str, occlusion_level: int = 0) -> list[str] | None:
    """The categories a PASCAL3D+ (annotation folders), ImageNet3D (split lists), OOD-CV pose-challenge (lists of
    the nuisance) or NeMo-prepared (list folders of the occlusion level) release holds; None for the formats whose
    categories are only known from their annotations (ObjectNet3D, OOD-CV's CSVs)."""
    root = Path(root)
    if format_name == "nemo":
        suffix = nemo_folder_suffix(occlusion_level)
        folders = [path.name for path in (root / split / "lists").glob("*") if path.is_dir()]
        if suffix:
            return sorted(name[: -len(suffix)] for name in folders if name.endswith(suffix))
        return sorted(name for name in folders if "FGL" not in name)
    if format_name == "pascal3d":
        folders = (root / "Annotations").glob("*_*")
        return sorted({folder.name.rsplit("_", 1)[0] for folder in folders if folder.is_dir()})
    if format_name == "oodcv" and (root / "lists").is_dir():  # the pose-challenge layout: lists/<cat>_<split>.txt
        suffix = f"_{split}.txt"
        return sorted(path.name[: -len(suffix)] for path in (root / "lists").glob(f"*{suffix}"))
    if format_name == "imagenet3d":
        suffix = f"_imagenet_{split}.txt"
        return sorted(path.name[: -len(suffix)] for path in (root / "lists").glob(f"*{suffix}"))
    return None


def read_real_set(
    format_name: str,
    root: str | Path,
    split: str,
    categories: list[str] | None = None,
    sources: tuple[str, ...] = PASCAL3D_SOURCES,
    occlusion_level: int = 0,
    nuisance: str | None = None,
    viewpoint_mode: str = "fine_or_coarse",
) -> pd.DataFrame:
    """Objects of one real set split in its published format (see the module docstring); ``categories`` are
    the real set's own names (None: all); ``occlusion_level`` and ``nuisance`` apply to ``nemo`` only,
    ``viewpoint_mode`` (:data:`VIEWPOINT_MODES`) to ``pascal3d`` and ``objectnet3d``."""
    if not Path(root).is_dir():
        raise FileNotFoundError(f"real set root {root} is not a folder: set evaluate.real_sets[].root")
    if format_name == "pascal3d":
        return read_pascal3d(root, split, categories, tuple(sources), viewpoint_mode)
    if format_name == "objectnet3d":
        return read_objectnet3d(root, split, categories, viewpoint_mode)
    if format_name == "oodcv":
        return read_oodcv(root, split, categories)
    if format_name == "imagenet3d":
        return read_imagenet3d(root, split, categories)
    if format_name == "nemo":
        return read_nemo(root, split, categories, occlusion_level, nuisance)
    raise ValueError(f"real set format must be one of {FORMATS}, got {format_name!r}")


def category_map(overrides: dict[str, str] | None = None) -> dict[str, str]:
    """Real-set category name -> our category name: :data:`DEFAULT_CATEGORY_MAP` updated by ``overrides``."""
    return {**DEFAULT_CATEGORY_MAP, **(overrides or {})}


def check_entries(entries: list[dict], key: str = "evaluate.real_sets") -> None:
    """The checks of ``evaluate.real_sets`` (or ``train.real``: ``key``) that the schema cannot express (unique
    names, nemo-only keys); ValueError names the key and the entry. The workflow runs them when it reads its
    config, :func:`load_real_set` for every entry it loads."""
    names = [entry["name"] for entry in entries]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"config: {key} has entries with the same name {repeated}; names must be unique")
    for entry in entries:
        if entry["format"] not in ("pascal3d", "objectnet3d") and "viewpoint" in entry:
            raise ValueError(
                f"config: {key} entry {entry['name']!r}: viewpoint (fine or fine_or_coarse) applies "
                "to formats pascal3d and objectnet3d only (the others have no coarse viewpoints)"
            )
        if entry["format"] != "nemo" and ("occlusion_level" in entry or "nuisance" in entry):
            raise ValueError(
                f"config: {key} entry {entry['name']!r}: occlusion_level and nuisance apply to format "
                "nemo only (OOD-CV's CSV release takes the nuisance as its split)"
            )


def load_real_set(entry: dict, categories: list[str]) -> pd.DataFrame:
    """The objects of a configured real set (an ``evaluate.real_sets`` entry: name, format, root, split,
    sources, occlusion_level, nuisance, exclude, category_map) whose category is one of ours, renamed to our category names, without
    the objects carrying an excluded flag. An empty result is an error that names what was found."""
    # Rename only into a workflow category: with categories [aeroplane, ...] (config/paper.yaml, PASCAL3D+'s
    # names) PASCAL3D+'s aeroplane stays aeroplane, as the synthetic rows call it.
    mapping = {theirs: ours for theirs, ours in category_map(entry.get("category_map")).items() if ours in categories}
    to_real_set = {ours: theirs for theirs, ours in mapping.items()}
    wanted = [to_real_set.get(category, category) for category in categories]
    split = entry.get("split", "val")
    check_entries([entry])
    occlusion_level = int(entry.get("occlusion_level", 0))
    available = available_categories(entry["format"], entry["root"], split, occlusion_level)
    frame = read_real_set(
        entry["format"],
        entry["root"],
        split,
        wanted if available is None else [name for name in wanted if name in available],
        tuple(entry.get("sources", PASCAL3D_SOURCES)),
        occlusion_level,
        entry.get("nuisance"),
        entry.get("viewpoint", "fine_or_coarse"),
    )
    found = sorted(frame["category"].unique()) if available is None else available
    frame = frame[frame["category"].isin(wanted)].copy()
    frame["category"] = frame["category"].map(lambda name: mapping.get(name, name))
    for flag in entry.get("exclude", []):
        if flag not in FLAGS:
            raise ValueError(f"real set {entry['name']}: exclude takes {FLAGS}, got {flag!r}")
        frame = frame[~frame[flag].astype("boolean").fillna(False).astype(bool)]  # a missing flag keeps the object
    if frame.empty:
        raise ValueError(
            f"real set {entry['name']}: no object of the categories {categories} is left "
            f"(the real set has {found}; names mapped with {mapping}; excluded: {entry.get('exclude', [])})"
        )
    return frame.reset_index(drop=True)
