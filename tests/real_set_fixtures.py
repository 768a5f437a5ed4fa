"""Tiny real-set folders in the published formats of PASCAL3D+, ObjectNet3D, OOD-CV, ImageNet3D and the
NeMo-prepared layout.

Each writer lays out a few annotation files the way the real release does (MATLAB ``record`` structs written
with scipy.io.savemat, OOD-CV's CSV, ROBIN's labels.csv of object crops, the OOD-CV pose challenge's lists and
records, ImageNet3D's npz of object dicts, NeMo's per-sample npz and subtype lists) with small JPEG images, and
returns the objects a reader must find, with their angles in degrees as annotated (``occluded`` None where the
format does not say, ``box`` None where the image is the object's crop).
"""

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import scipy.io

OBJECT_FIELDS = [
    ("class", "O"),
    ("bbox", "O"),
    ("viewpoint", "O"),
    ("truncated", "O"),
    ("occluded", "O"),
    ("difficult", "O"),
]


def write_image(path: Path, width: int = 120, height: int = 90) -> None:
    """A JPEG with a bright rectangle, so crops around boxes are not all black."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((height, width, 3), 40, np.uint8)
    cv2.rectangle(image, (20, 15), (90, 70), (200, 120, 60), -1)
    cv2.imwrite(str(path), image)


def viewpoint(azimuth, elevation, theta, distance=5.0, coarse_only=False, empty_fine=False):
    """A PASCAL3D+ viewpoint struct (degrees); the coarse-only kind has no fine fields, the empty-fine kind has
    them all as MATLAB's empty matrix ``[]`` (as the ObjectNet3D annotation tool leaves them for many objects)."""
    coarse = {"azimuth_coarse": float(round(azimuth / 15) * 15), "elevation_coarse": float(elevation)}
    if coarse_only:
        return coarse
    if empty_fine:
        empty = np.zeros((0, 0))
        return {
            **coarse,
            **{
                name: empty
                for name in ("azimuth", "elevation", "distance", "focal", "px", "py", "theta", "error", "viewport")
            },
        }
    return {
        **coarse,
        "azimuth": float(azimuth),
        "elevation": float(elevation),
        "distance": float(distance),
        "focal": 1.0,
        "px": 60.0,
        "py": 45.0,
        "theta": float(theta),
        "error": 0.0,
        "viewport": 2000.0,
    }


def write_record(path: Path, filename: str, objects: list[tuple]) -> None:
    """A PASCAL3D+/ObjectNet3D annotation file: ``record`` with filename, imgsize and a 1 x N objects struct
    array; each object is (class, [x1 y1 x2 y2] 1-based, viewpoint dict or None, truncated, occluded, difficult)."""
    array = np.zeros((1, len(objects)), dtype=OBJECT_FIELDS)
    for index, (category, box, view, truncated, occluded, difficult) in enumerate(objects):
        array[0, index] = (
            category,
            np.array(box, dtype=float),
            np.zeros((0, 0)) if view is None else view,
            truncated,
            occluded,
            difficult,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(
        path,
        {
            "record": {
                "filename": filename,
                "folder": path.parent.name,
                "imgsize": np.array([120.0, 90.0, 3.0]),
                "database": "fixture",
                "objects": array,
            }
        },
    )


def write_pascal3d(root: Path) -> list[dict]:
    """aeroplane and car, ImageNet and PASCAL VOC sources, val split."""
    sets, voc = root / "Image_sets", root / "PASCAL" / "VOCdevkit" / "VOC2012" / "ImageSets" / "Main"
    sets.mkdir(parents=True)
    voc.mkdir(parents=True)
    (sets / "aeroplane_imagenet_val.txt").write_text("n02690373_1\nn02690373_2\n")
    (sets / "aeroplane_imagenet_train.txt").write_text("n02690373_9\n")
    (sets / "car_imagenet_val.txt").write_text("n02958343_1\n")
    (voc / "aeroplane_val.txt").write_text("2008_000001  1\n2008_000002 -1\n")
    (voc / "car_val.txt").write_text("2008_000003  1\n")
    annotations, images = root / "Annotations", root / "Images"
    write_record(
        annotations / "aeroplane_imagenet" / "n02690373_1.mat",
        "n02690373_1.JPEG",
        [
            ("aeroplane", [11, 21, 110, 80], viewpoint(30, 15, -10), 0, 0, 0),
            ("person", [1, 1, 5, 5], None, 0, 0, 0),
        ],
    )
    write_record(
        annotations / "aeroplane_imagenet" / "n02690373_2.mat",
        "n02690373_2.JPEG",
        [
            ("aeroplane", [5, 5, 50, 40], viewpoint(90, 0, 0, coarse_only=True), 0, 0, 0),
            ("aeroplane", [5, 5, 50, 40], viewpoint(0, 0, 0, distance=0.0), 0, 0, 0),
        ],
    )
    write_record(
        annotations / "aeroplane_pascal" / "2008_000001.mat",
        "2008_000001.jpg",
        [
            ("aeroplane", [31, 11, 100, 60], viewpoint(350, -5, 185), 0, 1, 0),
        ],
    )
    write_record(
        annotations / "car_imagenet" / "n02958343_1.mat",
        "n02958343_1.JPEG",
        [
            ("car", [1, 1, 120, 90], viewpoint(180, 10, 2, distance=3.0), 1, 0, 0),
        ],
    )
    write_record(
        annotations / "car_pascal" / "2008_000003.mat",
        "2008_000003.jpg",
        [
            ("car", [1, 1, 60, 45], viewpoint(45, 30, 0), 0, 0, 1),
        ],
    )
    for name in (
        "aeroplane_imagenet/n02690373_1.JPEG",
        "aeroplane_imagenet/n02690373_2.JPEG",
        "aeroplane_pascal/2008_000001.jpg",
        "car_imagenet/n02958343_1.JPEG",
        "car_pascal/2008_000003.jpg",
    ):
        write_image(images / name)
    return [
        {
            "image_id": "aeroplane_imagenet/n02690373_1/0",
            "category": "aeroplane",
            "box": (10, 20, 110, 80),
            "angles_deg": (30, 15, -10),
            "occluded": False,
        },
        # Coarse viewpoints, read where the fine one is missing or at distance 0 (viewpoint: fine_or_coarse, the
        # default, as the official evaluations do): azimuth_coarse, elevation_coarse, theta 0.
        {
            "image_id": "aeroplane_imagenet/n02690373_2/0",
            "category": "aeroplane",
            "box": (4, 4, 50, 40),
            "angles_deg": (90, 0, 0),
            "occluded": False,
        },
        {
            "image_id": "aeroplane_imagenet/n02690373_2/1",
            "category": "aeroplane",
            "box": (4, 4, 50, 40),
            "angles_deg": (0, 0, 0),
            "occluded": False,
        },
        {
            "image_id": "aeroplane_pascal/2008_000001/0",
            "category": "aeroplane",
            "box": (30, 10, 100, 60),
            "angles_deg": (350, -5, -175),
            "occluded": True,
        },
        {
            "image_id": "car_imagenet/n02958343_1/0",
            "category": "car",
            "box": (0, 0, 120, 90),
            "angles_deg": (180, 10, 2),
            "occluded": False,
        },
        {
            "image_id": "car_pascal/2008_000003/0",
            "category": "car",
            "box": (0, 0, 60, 45),
            "angles_deg": (45, 30, 0),
            "occluded": False,
        },
    ]


def write_objectnet3d(root: Path) -> list[dict]:
    """Two val images, three objects of two categories, one without a viewpoint."""
    (root / "Image_sets").mkdir(parents=True)
    (root / "Image_sets" / "val.txt").write_text("n03001627_1\nn02958343_7\n")
    (root / "Image_sets" / "train.txt").write_text("n03001627_9\n")
    write_record(
        root / "Annotations" / "n03001627_1.mat",
        "n03001627_1.JPEG",
        [
            ("chair", [2, 3, 40, 60], viewpoint(200, 20, 3), 0, 0, 0),
            ("car", [50, 10, 118, 88], viewpoint(270, -10, -30), 1, 1, 0),
        ],
    )
    write_record(
        root / "Annotations" / "n02958343_7.mat",
        "n02958343_7.JPEG",
        [
            ("car", [1, 1, 10, 10], None, 0, 0, 0),
            ("car", [21, 11, 60, 50], viewpoint(100, 10, 0, empty_fine=True), 0, 0, 0),
        ],
    )
    for name in ("n03001627_1.JPEG", "n02958343_7.JPEG"):
        write_image(root / "Images" / name)
    return [
        {
            "image_id": "n03001627_1/0",
            "category": "chair",
            "box": (1, 2, 40, 60),
            "angles_deg": (200, 20, 3),
            "occluded": False,
        },
        {
            "image_id": "n03001627_1/1",
            "category": "car",
            "box": (49, 9, 118, 88),
            "angles_deg": (270, -10, -30),
            "occluded": True,
        },
        {  # empty fine fields: the coarse viewpoint (azimuth 100 rounded to 105 by the fixture, theta 0)
            "image_id": "n02958343_7/1",
            "category": "car",
            "box": (20, 10, 60, 50),
            "angles_deg": (105, 10, 0),
            "occluded": False,
        },
    ]


OODCV_COLUMNS = [
    "source",
    "set",
    "cls_name",
    "im_name",
    "object",
    "cad_index",
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
    "has_keypoints",
    "distance",
    "im_path",
]


def write_oodcv(root: Path) -> list[dict]:
    """The weather nuisance folder (two objects, two categories) and an iid_test folder."""
    rows = [
        [
            "pascal",
            "weather",
            "aeroplane",
            "fog_0001",
            0,
            1,
            0,
            0,
            0,
            100.0,
            12.0,
            -8.0,
            11,
            6,
            100,
            70,
            1,
            4.2,
            "Images/aeroplane/fog_0001.jpg",
        ],
        [
            "pascal",
            "weather",
            "car",
            "rain_0002",
            1,
            2,
            0,
            1,
            0,
            359.5,
            -3.0,
            190.0,
            21,
            16,
            90,
            80,
            1,
            6.0,
            "Images/car/rain_0002.jpg",
        ],
    ]
    folder = root / "nuisances" / "weather"
    folder.mkdir(parents=True)
    pd.DataFrame(rows, columns=OODCV_COLUMNS).to_csv(folder / "weather.csv", index=False)
    for row in rows:
        write_image(folder / row[-1])
    iid = root / "iid_test"
    iid.mkdir()
    pd.DataFrame(
        [
            [
                "imagenet",
                "iid_test",
                "car",
                "n1",
                0,
                1,
                0,
                0,
                0,
                10.0,
                5.0,
                0.0,
                1,
                1,
                50,
                50,
                1,
                5.0,
                "Images/car/n1.jpg",
            ]
        ],
        columns=OODCV_COLUMNS,
    ).to_csv(iid / "iid_test.csv", index=False)
    write_image(iid / "Images" / "car" / "n1.jpg")
    return [
        {
            "image_id": "weather/fog_0001/0",
            "category": "aeroplane",
            "box": (10, 5, 100, 70),
            "angles_deg": (100, 12, -8),
            "occluded": False,
        },
        {
            "image_id": "weather/rain_0002/1",
            "category": "car",
            "box": (20, 15, 90, 80),
            "angles_deg": (359.5, -3, -170),
            "occluded": True,
        },
    ]


ROBIN_LABELS_COLUMNS = ["imgs", "labels", "azimuth", "elevation", "theta", "distance"]


def write_oodcv_labels(root: Path) -> list[dict]:
    """ROBIN's pose reference ``ref/<split>/labels.csv`` (``root`` is ``ref``), split ``context``: object crops
    named by file (one beside the CSV, the others in ``images/``, one image listed twice), angles in degrees
    with azimuth above 180 and 360 and a negative theta, no box (the crop is the object), no flags."""
    rows = [
        ["n02690373_1_00.JPEG", "aeroplane", 200.0, 10.0, -20.0, 4.0],
        ["car_wood_03.JPEG", "car", 370.0, -5.0, 185.0, 6.5],
        ["car_twice.JPEG", "car", 90.0, 0.0, 0.0, 5.0],
        ["car_twice.JPEG", "car", 100.0, 3.0, 1.0, 5.0],
    ]
    folder = root / "context"
    folder.mkdir(parents=True)
    pd.DataFrame(rows, columns=ROBIN_LABELS_COLUMNS).to_csv(folder / "labels.csv", index=False)
    write_image(folder / rows[0][0], width=64, height=48)
    for name in ("car_wood_03.JPEG", "car_twice.JPEG"):
        write_image(folder / "images" / name, width=64, height=48)
    return [
        {
            "image_id": "context/n02690373_1_00.JPEG",
            "category": "aeroplane",
            "box": None,
            "angles_deg": (200, 10, -20),
            "occluded": None,
        },
        {
            "image_id": "context/car_wood_03.JPEG",
            "category": "car",
            "box": None,
            "angles_deg": (370, -5, -175),
            "occluded": None,
        },
        {
            "image_id": "context/car_twice.JPEG/2",
            "category": "car",
            "box": None,
            "angles_deg": (90, 0, 0),
            "occluded": None,
        },
        {
            "image_id": "context/car_twice.JPEG/3",
            "category": "car",
            "box": None,
            "angles_deg": (100, 3, 1),
            "occluded": None,
        },
    ]


def write_oodcv_pose_challenge(root: Path) -> list[dict]:
    """The OOD-CV pose challenge: ``lists/<cat>_<nuisance>.txt``, ``images/<cat>/`` (JPEG and jpg) and
    ``annotations/<cat>/<name>.mat`` records, nuisances iid (aeroplane, car) and weather (car). The iid car image
    holds three objects (a 1 x 3 struct array), one with an empty theta (``[]``, read as 0) and one with all its
    fine viewpoint fields empty (left out: fine viewpoints only); the aeroplane image holds a car too, which only
    a car list would read."""
    lists = root / "lists"
    lists.mkdir(parents=True)
    (lists / "car_iid.txt").write_text("n02958343_5\n")
    (lists / "aeroplane_iid.txt").write_text("n02690373_3\n")
    (lists / "car_weather.txt").write_text("fog_car_7\n")
    empty_theta = {**viewpoint(45, 20, 0), "theta": np.zeros((0, 0))}
    write_record(
        root / "annotations" / "car" / "n02958343_5.mat",
        "n02958343_5.JPEG",
        [
            ("car", [11, 21, 60, 80], viewpoint(250, 5, -15), 0, 1, 0),
            ("car", [61, 11, 120, 50], empty_theta, 1, 0, 0),
            ("car", [1, 1, 10, 10], viewpoint(0, 0, 0, empty_fine=True), 0, 0, 0),
        ],
    )
    write_record(
        root / "annotations" / "aeroplane" / "n02690373_3.mat",
        "n02690373_3.JPEG",
        [
            ("aeroplane", [5, 5, 100, 60], viewpoint(300, -10, 190), 0, 0, 1),
            ("car", [1, 61, 30, 90], viewpoint(10, 0, 0), 0, 0, 0),
        ],
    )
    write_record(
        root / "annotations" / "car" / "fog_car_7.mat",
        "fog_car_7.jpg",
        [("car", [1, 1, 120, 90], viewpoint(30, 0, 0), 0, 0, 0)],
    )
    write_image(root / "images" / "car" / "n02958343_5.JPEG")
    write_image(root / "images" / "aeroplane" / "n02690373_3.JPEG")
    write_image(root / "images" / "car" / "fog_car_7.jpg")
    return [
        {
            "image_id": "car/n02958343_5/0",
            "category": "car",
            "box": (10, 20, 60, 80),
            "angles_deg": (250, 5, -15),
            "occluded": True,
        },
        {
            "image_id": "car/n02958343_5/1",
            "category": "car",
            "box": (60, 10, 120, 50),
            "angles_deg": (45, 20, 0),
            "occluded": False,
        },
        {
            "image_id": "aeroplane/n02690373_3/0",
            "category": "aeroplane",
            "box": (4, 4, 100, 60),
            "angles_deg": (300, -10, -170),
            "occluded": False,
        },
    ]


def write_oodcv_wrong_columns(root: Path) -> Path:
    """A split folder ``iid`` whose CSV has neither OOD-CV column set (a labels.csv with ``label``, ``az``...);
    returns the CSV's path."""
    folder = root / "iid"
    folder.mkdir(parents=True)
    path = folder / "labels.csv"
    pd.DataFrame(
        [["a.JPEG", "car", 10.0, 0.0, 0.0, 5.0]], columns=["imgs", "label", "az", "el", "theta", "dist"]
    ).to_csv(path, index=False)
    return path


def write_imagenet3d(root: Path) -> list[dict]:
    """car and chair, val split; angles in radians as ImageNet3D stores them (elevation as 2 pi - 0.1)."""
    (root / "lists").mkdir(parents=True)
    (root / "lists" / "car_imagenet_val.txt").write_text("n02958343_13\n")
    (root / "lists" / "chair_imagenet_val.txt").write_text("n03001627_4\n")
    (root / "lists" / "car_imagenet_train.txt").write_text("n02958343_99\n")

    def annotation(category, box, azimuth, elevation, theta, distance=4.0, status="status_good"):
        return {
            "class": category,
            "bbox": np.array(box, dtype=float),
            "azimuth": azimuth,
            "elevation": elevation,
            "theta": theta,
            "distance": distance,
            "object_status": status,
            "dense": "dense_no",
            "cad_index": 1,
            "px": 60.0,
            "py": 45.0,
            "focal": 3000.0,
            "viewport": 3000,
            "width": 120,
            "height": 90,
        }

    for category, name, objects in [
        (
            "car",
            "n02958343_13",
            [
                annotation("car", [10, 20, 70, 80], 1.0, 2 * np.pi - 0.1, 0.2),
                annotation("car", [0, 0, 5, 5], 2.0, 0.0, 0.0, status="status_bad"),
                annotation("car", [0, 0, 5, 5], 2.0, 0.0, 0.0, distance=0.0),
            ],
        ),
        ("chair", "n03001627_4", [annotation("chair", [5, 5, 60, 60], 7.0, 0.3, -0.4, status="status_partially")]),
    ]:
        path = root / "annotations" / category / f"{name}.npz"
        path.parent.mkdir(parents=True)
        np.savez(path, annotations=np.array(objects, dtype=object))
        write_image(root / "images" / category / f"{name}.JPEG")
    return [
        {
            "image_id": "car/n02958343_13/0",
            "category": "car",
            "box": (10, 20, 70, 80),
            "angles_deg": (np.degrees(1.0), -np.degrees(0.1), np.degrees(0.2)),
            "occluded": False,
        },
        {
            "image_id": "chair/n03001627_4/0",
            "category": "chair",
            "box": (5, 5, 60, 60),
            "angles_deg": (np.degrees(7.0 - 2 * np.pi), np.degrees(0.3), np.degrees(-0.4)),
            "occluded": True,
        },
    ]


def write_nemo_sample(
    root: Path, split: str, folder: str, name: str, radians: tuple, box_yx: tuple, nuisance: str | None = None
) -> None:
    """One NeMo-prepared sample: the crop as JPEG and its npz (angles in radians, ``box_obj`` =
    (y0, y1, x0, x1, height, width), distance 5 as NeMo's centre-and-resize sets it)."""
    azimuth, elevation, theta = radians
    fields = {
        "name": name.rsplit("_", 1)[0],
        "azimuth": azimuth,
        "elevation": elevation,
        "theta": theta,
        "distance": 5.0,
        "cad_index": 2,
        "box_obj": np.array([*box_yx, 90, 120]),
        "px": 60.0,
        "py": 45.0,
        "height": 375,
        "width": 500,
        "resize_rate": 0.8,
    }
    if nuisance is not None:
        fields["nuisance"] = nuisance
    path = root / split / "annotations" / folder / f"{name}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **fields)
    write_image(root / split / "images" / folder / f"{name}.JPEG")


def write_nemo(root: Path) -> list[dict]:
    """OOD-CV as NeMo prepares it (val split, the nuisance in each sample's npz; one car sample listed under two
    CAD subtypes) plus an OccludedPASCAL3D+ level-1 car folder."""
    samples = [
        ("aeroplane", "collection_aeroplane_fog_01_00", (1.75, 0.2, -0.1), (10, 70, 20, 110), "weather"),
        ("car", "imagenet_car_n02958343_13_00", (6.2, -0.05, 3.0), (15, 80, 5, 95), "iid"),
        ("car", "pascal_car_2008_000027_01", (0.5, 0.1, 0.0), (20, 60, 30, 90), "weather"),
    ]
    for category, name, radians, box_yx, nuisance in samples:
        write_nemo_sample(root, "val", category, name, radians, box_yx, nuisance)
    lists = root / "val" / "lists"
    (lists / "aeroplane").mkdir(parents=True)
    (lists / "aeroplane" / "mesh01.txt").write_text("collection_aeroplane_fog_01_00")  # NeMo writes no final newline
    (lists / "car").mkdir()
    (lists / "car" / "mesh01.txt").write_text("imagenet_car_n02958343_13_00\npascal_car_2008_000027_01")
    (lists / "car" / "mesh02.txt").write_text("pascal_car_2008_000027_01")
    (lists / "car" / "mesh03.txt").write_text("")  # a subtype without samples
    write_nemo_sample(root, "val", "carFGL1_BGL1", "n02958343_13_00", (1.0, 0.0, 0.0), (0, 90, 0, 120))
    (lists / "carFGL1_BGL1").mkdir()
    (lists / "carFGL1_BGL1" / "mesh01.txt").write_text("n02958343_13_00")
    return [
        {
            "image_id": "aeroplane/collection_aeroplane_fog_01_00",
            "category": "aeroplane",
            "box": (20, 10, 110, 70),
            "angles_deg": tuple(np.degrees(samples[0][2])),
            "occluded": None,
        },
        {
            "image_id": "car/imagenet_car_n02958343_13_00",
            "category": "car",
            "box": (5, 15, 95, 80),
            "angles_deg": tuple(np.degrees(samples[1][2])),
            "occluded": None,
        },
        {
            "image_id": "car/pascal_car_2008_000027_01",
            "category": "car",
            "box": (30, 20, 90, 60),
            "angles_deg": tuple(np.degrees(samples[2][2])),
            "occluded": None,
        },
    ]


WRITERS = {
    "pascal3d": write_pascal3d,
    "objectnet3d": write_objectnet3d,
    "oodcv": write_oodcv,
    "imagenet3d": write_imagenet3d,
    "nemo": write_nemo,
}
SPLITS = {"pascal3d": "val", "objectnet3d": "val", "oodcv": "weather", "imagenet3d": "val", "nemo": "val"}
#: The other published layouts of OOD-CV (format ``oodcv``): writer and the split a reader is asked for.
OODCV_VARIANTS = {
    "labels": (write_oodcv_labels, "context"),
    "pose_challenge": (write_oodcv_pose_challenge, "iid"),
}
