"""Readers of the real benchmarks on tiny fixtures in each published format: angles and boxes against the
annotated values converted by hand, the published rotation formula, split lists, skipped objects, and the
category mapping and flag filters of a configured benchmark."""

import math

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from benchmark_fixtures import SPLITS, WRITERS

from dst3d import evaluate, geometry
from dst3d.inputs import datasets
from dst3d.training import cropping, loop, pose


def published_rotation(azimuth_deg, elevation_deg, theta_deg):
    """The rotation of the OOD-CV / PASCAL3D+ evaluation code, written out from degrees."""
    azimuth, elevation, theta = (math.radians(value) for value in (azimuth_deg, elevation_deg, theta_deg))
    a, e = -azimuth, -(math.pi / 2 - elevation)
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(e), -math.sin(e)], [0, math.sin(e), math.cos(e)]])
    rt = np.array([[math.cos(theta), -math.sin(theta), 0], [math.sin(theta), math.cos(theta), 0], [0, 0, 1]])
    return rt @ rx @ rz


@pytest.mark.parametrize("format_name", sorted(WRITERS))
def test_reader_gives_annotated_angles_in_radians_and_corner_boxes(tmp_path, format_name):
    expected = WRITERS[format_name](tmp_path)
    frame = datasets.read_benchmark(format_name, tmp_path, SPLITS[format_name])
    assert list(frame.columns) == datasets.COLUMNS
    assert sorted(frame["image_id"]) == sorted(item["image_id"] for item in expected)
    table = frame.set_index("image_id")
    for item in expected:
        row = table.loc[item["image_id"]]
        assert row["category"] == item["category"]
        assert (row["bbox_x0"], row["bbox_y0"], row["bbox_x1"], row["bbox_y1"]) == pytest.approx(item["box"])
        azimuth_deg, elevation_deg, theta_deg = item["angles_deg"]
        assert row["azimuth"] == pytest.approx(math.radians(azimuth_deg % 360), abs=1e-9)
        assert row["elevation"] == pytest.approx(math.radians(elevation_deg), abs=1e-9)
        assert row["theta"] == pytest.approx(math.radians(theta_deg), abs=1e-9)
        assert 0 <= row["azimuth"] < 2 * np.pi and -np.pi < row["theta"] <= np.pi
        np.testing.assert_allclose(
            geometry.rotation_gl(row["azimuth"], row["elevation"], row["theta"]),
            published_rotation(*item["angles_deg"]),
            atol=1e-9,
        )
        if item["occluded"] is None:
            assert pd.isna(row["occluded"])
        else:
            assert bool(row["occluded"]) == item["occluded"]
        assert (tmp_path / row["image_path"]).is_file()


def test_pascal3d_by_hand(tmp_path):
    WRITERS["pascal3d"](tmp_path)
    frame = datasets.read_pascal3d(tmp_path, "val", ["aeroplane"], sources=("imagenet",)).set_index("image_id")
    # azimuth 30, elevation 15, theta -10 degrees; MATLAB box [11 21 110 80] -> corners (10, 20) .. (110, 80).
    row = frame.loc["aeroplane_imagenet/n02690373_1/0"]
    assert (row["azimuth"], row["elevation"], row["theta"]) == pytest.approx((np.pi / 6, np.pi / 12, -np.pi / 18))
    assert row["distance"] == 5.0 and row["subset"] == "imagenet" and row["viewpoint"] == "fine"
    # The person has no viewpoint. The second image holds a coarse-only and a distance-0 viewpoint: read from their
    # coarse fields by default, left out with viewpoint: fine.
    assert len(frame) == 3
    assert frame.loc["aeroplane_imagenet/n02690373_2/0", "viewpoint"] == "coarse"
    assert np.isnan(frame.loc["aeroplane_imagenet/n02690373_2/1", "distance"])
    fine = datasets.read_pascal3d(tmp_path, "val", ["aeroplane"], ("imagenet",), viewpoint_mode="fine")
    assert list(fine["image_id"]) == ["aeroplane_imagenet/n02690373_1/0"]


def test_missing_split_list_names_the_file(tmp_path):
    WRITERS["pascal3d"](tmp_path)
    with pytest.raises(FileNotFoundError, match="boat_imagenet_val.txt"):
        datasets.read_pascal3d(tmp_path, "val", ["boat"])
    with pytest.raises(FileNotFoundError, match="not a folder"):
        datasets.read_benchmark("pascal3d", tmp_path / "nowhere", "val")
    with pytest.raises(ValueError, match="OOD-CV split"):
        datasets.read_oodcv(tmp_path, "snow")


def test_nemo_prepared_layout_by_hand(tmp_path):
    WRITERS["nemo"](tmp_path)
    frame = datasets.read_nemo(tmp_path, "val", ["car"]).set_index("image_id")
    # Listed under mesh01 and mesh02 (as some OOD-CV samples are): read once.
    assert sorted(frame.index) == ["car/imagenet_car_n02958343_13_00", "car/pascal_car_2008_000027_01"]
    row = frame.loc["car/pascal_car_2008_000027_01"]
    # box_obj (y0, y1, x0, x1) = (20, 60, 30, 90) is the corner box (30, 20) .. (90, 60) of the crop.
    assert (row["bbox_x0"], row["bbox_y0"], row["bbox_x1"], row["bbox_y1"]) == (30, 20, 90, 60)
    assert (row["azimuth"], row["elevation"], row["theta"], row["distance"]) == pytest.approx((0.5, 0.1, 0.0, 5.0))
    assert row["subset"] == "weather" and row["image_path"].endswith("val/images/car/pascal_car_2008_000027_01.JPEG")
    # Azimuth 6.2 rad stays in [0, 2 pi); theta 3.0 rad stays (it is within (-pi, pi]).
    assert frame.loc["car/imagenet_car_n02958343_13_00", "azimuth"] == pytest.approx(6.2)


def test_nemo_nuisance_and_occlusion_level_select_samples(tmp_path):
    WRITERS["nemo"](tmp_path)
    entry = {"name": "oodcv-weather", "format": "nemo", "root": str(tmp_path), "split": "val", "nuisance": "weather"}
    frame = datasets.load_benchmark(entry, ["airplane", "car", "boat"])
    assert sorted(frame["image_id"]) == ["aeroplane/collection_aeroplane_fog_01_00", "car/pascal_car_2008_000027_01"]
    assert set(frame["category"]) == {"airplane", "car"} and set(frame["subset"]) == {"weather"}
    iid = datasets.load_benchmark({**entry, "name": "oodcv-iid", "nuisance": "iid"}, ["car"])
    assert list(iid["image_id"]) == ["car/imagenet_car_n02958343_13_00"]
    # OccludedPASCAL3D+ level 1 lives in carFGL1_BGL1; its objects are occluded, so exclude: [occluded] drops them.
    occluded = {"name": "p3d-l1", "format": "nemo", "root": str(tmp_path), "split": "val", "occlusion_level": 1}
    assert datasets.available_categories("nemo", tmp_path, "val", 1) == ["car"]
    frame = datasets.load_benchmark(occluded, ["airplane", "car"])
    assert list(frame["image_id"]) == ["carFGL1_BGL1/n02958343_13_00"] and frame["occluded"].all()
    assert frame["subset"].tolist() == ["val-FGL1_BGL1"]
    with pytest.raises(ValueError, match="no object of the categories"):
        datasets.load_benchmark({**occluded, "exclude": ["occluded"]}, ["car"])
    with pytest.raises(ValueError, match="no object of the categories"):
        datasets.load_benchmark({**entry, "nuisance": "snow"}, ["car"])


def test_nemo_bad_settings_name_the_key_or_folder(tmp_path):
    WRITERS["nemo"](tmp_path)
    with pytest.raises(ValueError, match="occlusion_level must be one of"):
        datasets.read_nemo(tmp_path, "val", ["car"], occlusion_level=4)
    with pytest.raises(FileNotFoundError, match="lists/boat"):
        datasets.read_nemo(tmp_path, "val", ["boat"])
    WRITERS["oodcv"](tmp_path / "robin")
    with pytest.raises(ValueError, match="apply to format nemo only"):
        datasets.load_benchmark(
            {
                "name": "o",
                "format": "oodcv",
                "root": str(tmp_path / "robin"),
                "split": "weather",
                "nuisance": "weather",
            },
            ["car"],
        )


def test_load_benchmark_maps_names_and_excludes_flags(tmp_path):
    WRITERS["pascal3d"](tmp_path)
    entry = {"name": "p3d", "format": "pascal3d", "root": str(tmp_path), "split": "val"}
    frame = datasets.load_benchmark(entry, ["airplane"])
    assert set(frame["category"]) == {"airplane"} and len(frame) == 4  # 2 fine, 2 coarse
    assert len(datasets.load_benchmark({**entry, "viewpoint": "fine"}, ["airplane"])) == 2
    frame = datasets.load_benchmark({**entry, "exclude": ["occluded"]}, ["airplane", "car"])
    assert sorted(frame["image_id"]) == [
        "aeroplane_imagenet/n02690373_1/0",
        "aeroplane_imagenet/n02690373_2/0",
        "aeroplane_imagenet/n02690373_2/1",
        "car_imagenet/n02958343_1/0",
        "car_pascal/2008_000003/0",
    ]
    frame = datasets.load_benchmark({**entry, "sources": ["pascal"], "category_map": {"car": "auto"}}, ["auto"])
    assert list(frame["image_id"]) == ["car_pascal/2008_000003/0"] and set(frame["category"]) == {"auto"}
    with pytest.raises(ValueError, match="no object of the categories"):
        datasets.load_benchmark(
            {**entry, "exclude": ["truncated", "occluded", "difficult"], "sources": ["pascal"]}, ["airplane", "car"]
        )
    with pytest.raises(ValueError, match="the benchmark has"):
        datasets.load_benchmark(entry, ["boat"])
    # A workflow that uses PASCAL3D+'s own name keeps it: the built-in aeroplane -> airplane rename applies only
    # when airplane is a workflow category.
    frame = datasets.load_benchmark(entry, ["aeroplane", "car"])
    assert "aeroplane" in set(frame["category"]) and "airplane" not in set(frame["category"])


def test_categories_a_benchmark_lacks_are_skipped(tmp_path):
    WRITERS["imagenet3d"](tmp_path)
    entry = {"name": "in3d", "format": "imagenet3d", "root": str(tmp_path), "split": "val"}
    assert set(datasets.load_benchmark(entry, ["airplane", "car"])["category"]) == {"car"}


def test_objectnet3d_keeps_every_category_unless_asked(tmp_path):
    WRITERS["objectnet3d"](tmp_path)
    assert set(datasets.read_objectnet3d(tmp_path, "val")["category"]) == {"chair", "car"}
    assert set(datasets.read_objectnet3d(tmp_path, "val", ["car"])["category"]) == {"car"}
    entry = {"name": "on3d", "format": "objectnet3d", "root": str(tmp_path), "split": "val", "exclude": ["truncated"]}
    # The car with empty fine fields (MATLAB []) is read from its coarse viewpoint; with viewpoint: fine it is not.
    assert list(datasets.load_benchmark(entry, ["chair", "car"])["image_id"]) == ["n03001627_1/0", "n02958343_7/1"]
    fine = datasets.load_benchmark({**entry, "viewpoint": "fine"}, ["chair", "car"])
    assert list(fine["image_id"]) == ["n03001627_1/0"]
    with pytest.raises(ValueError, match="viewpoint .* applies to formats pascal3d and objectnet3d only"):
        datasets.load_benchmark({**entry, "format": "imagenet3d", "viewpoint": "fine"}, ["car"])


@pytest.mark.parametrize("format_name", ["oodcv", "nemo"])
def test_a_pose_estimator_runs_on_a_benchmark_table(tmp_path, format_name):
    WRITERS[format_name](tmp_path)
    entry = {"name": "ood", "format": format_name, "root": str(tmp_path), "split": SPLITS[format_name]}
    if format_name == "nemo":
        entry["nuisance"] = "weather"
    frame = datasets.load_benchmark(entry, ["airplane", "car"])
    settings = {"input_size": 32, "context": 1.2, "crop_jitter": 0.0}
    torch.manual_seed(0)
    model = loop.build_model("resnet18", pretrained=False, outputs=pose.POSE_OUTPUTS)
    predictions = evaluate.predict_poses(model, settings, frame, batch_size=4, flip=False, threads=1)
    assert list(predictions["category"]) == ["airplane", "car"]
    assert predictions["error"].between(0, np.pi).all()
    table = evaluate.metrics_table(predictions)
    assert {"airplane", "car", evaluate.POOLED, evaluate.PER_CATEGORY} == set(table["category"])


def test_crops_of_real_images_follow_the_box(tmp_path):
    image = np.zeros((100, 200, 3), np.uint8)
    image[40:60, 150:170] = 255  # a white square, box (150, 40) .. (170, 60)
    cv2.imwrite(str(tmp_path / "a.png"), image)
    frame = pd.DataFrame(
        {
            "image_path": [str(tmp_path / "a.png")],
            "bbox_x0": [150.0],
            "bbox_y0": [40.0],
            "bbox_x1": [170.0],
            "bbox_y1": [60.0],
        }
    )
    crop = cropping.crops(frame, {"input_size": 24, "context": 2.0, "crop_jitter": 0.0}, threads=1)[0]
    # Context 2: the 20 px box fills the middle half of the 24 px crop.
    assert crop[:, 8:16, 8:16].min() == 255 and crop[:, :4].max() == 0 and crop[:, :, -4:].max() == 0
