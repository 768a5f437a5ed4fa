"""Readers of the real sets on tiny fixtures in each published format: angles and boxes against the
annotated values converted by hand, the published rotation formula, split lists, skipped objects, and the
category mapping and flag filters of a configured real set."""

import math

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from real_set_fixtures import OODCV_VARIANTS, SPLITS, WRITERS, write_oodcv_wrong_columns

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


def check_objects(frame, expected, tmp_path):
    """The rows of ``frame`` are the fixture's objects: ids, categories, boxes (all NaN where the fixture's box is
    None, the whole image), angles in radians wrapped into their ranges, the published rotation, flags, images."""
    assert list(frame.columns) == datasets.COLUMNS
    assert sorted(frame["image_id"]) == sorted(item["image_id"] for item in expected)
    table = frame.set_index("image_id")
    for item in expected:
        row = table.loc[item["image_id"]]
        assert row["category"] == item["category"]
        box = (row["bbox_x0"], row["bbox_y0"], row["bbox_x1"], row["bbox_y1"])
        if item["box"] is None:
            assert np.isnan(box).all()
        else:
            assert box == pytest.approx(item["box"])
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


@pytest.mark.parametrize("format_name", sorted(WRITERS))
def test_reader_gives_annotated_angles_in_radians_and_corner_boxes(tmp_path, format_name):
    expected = WRITERS[format_name](tmp_path)
    check_objects(datasets.read_real_set(format_name, tmp_path, SPLITS[format_name]), expected, tmp_path)


@pytest.mark.parametrize("variant", sorted(OODCV_VARIANTS))
def test_oodcv_variants_give_annotated_angles_in_radians_and_boxes(tmp_path, variant):
    writer, split = OODCV_VARIANTS[variant]
    expected = writer(tmp_path)
    check_objects(datasets.read_real_set("oodcv", tmp_path, split), expected, tmp_path)


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
        datasets.read_real_set("pascal3d", tmp_path / "nowhere", "val")


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
    frame = datasets.load_real_set(entry, ["airplane", "car", "boat"])
    assert sorted(frame["image_id"]) == ["aeroplane/collection_aeroplane_fog_01_00", "car/pascal_car_2008_000027_01"]
    assert set(frame["category"]) == {"airplane", "car"} and set(frame["subset"]) == {"weather"}
    iid = datasets.load_real_set({**entry, "name": "oodcv-iid", "nuisance": "iid"}, ["car"])
    assert list(iid["image_id"]) == ["car/imagenet_car_n02958343_13_00"]
    # OccludedPASCAL3D+ level 1 lives in carFGL1_BGL1; its objects are occluded, so exclude: [occluded] drops them.
    occluded = {"name": "p3d-l1", "format": "nemo", "root": str(tmp_path), "split": "val", "occlusion_level": 1}
    assert datasets.available_categories("nemo", tmp_path, "val", 1) == ["car"]
    frame = datasets.load_real_set(occluded, ["airplane", "car"])
    assert list(frame["image_id"]) == ["carFGL1_BGL1/n02958343_13_00"] and frame["occluded"].all()
    assert frame["subset"].tolist() == ["val-FGL1_BGL1"]
    with pytest.raises(ValueError, match="no object of the categories"):
        datasets.load_real_set({**occluded, "exclude": ["occluded"]}, ["car"])
    with pytest.raises(ValueError, match="no object of the categories"):
        datasets.load_real_set({**entry, "nuisance": "snow"}, ["car"])


def test_nemo_bad_settings_name_the_key_or_folder(tmp_path):
    WRITERS["nemo"](tmp_path)
    with pytest.raises(ValueError, match="occlusion_level must be one of"):
        datasets.read_nemo(tmp_path, "val", ["car"], occlusion_level=4)
    with pytest.raises(FileNotFoundError, match="lists/boat"):
        datasets.read_nemo(tmp_path, "val", ["boat"])
    WRITERS["oodcv"](tmp_path / "robin")
    with pytest.raises(ValueError, match="apply to format nemo only"):
        datasets.load_real_set(
            {
                "name": "o",
                "format": "oodcv",
                "root": str(tmp_path / "robin"),
                "split": "weather",
                "nuisance": "weather",
            },
            ["car"],
        )


def test_load_real_set_maps_names_and_excludes_flags(tmp_path):
    WRITERS["pascal3d"](tmp_path)
    entry = {"name": "p3d", "format": "pascal3d", "root": str(tmp_path), "split": "val"}
    frame = datasets.load_real_set(entry, ["airplane"])
    assert set(frame["category"]) == {"airplane"} and len(frame) == 4  # 2 fine, 2 coarse
    assert len(datasets.load_real_set({**entry, "viewpoint": "fine"}, ["airplane"])) == 2
    frame = datasets.load_real_set({**entry, "exclude": ["occluded"]}, ["airplane", "car"])
    assert sorted(frame["image_id"]) == [
        "aeroplane_imagenet/n02690373_1/0",
        "aeroplane_imagenet/n02690373_2/0",
        "aeroplane_imagenet/n02690373_2/1",
        "car_imagenet/n02958343_1/0",
        "car_pascal/2008_000003/0",
    ]
    frame = datasets.load_real_set({**entry, "sources": ["pascal"], "category_map": {"car": "auto"}}, ["auto"])
    assert list(frame["image_id"]) == ["car_pascal/2008_000003/0"] and set(frame["category"]) == {"auto"}
    with pytest.raises(ValueError, match="no object of the categories"):
        datasets.load_real_set(
            {**entry, "exclude": ["truncated", "occluded", "difficult"], "sources": ["pascal"]}, ["airplane", "car"]
        )
    with pytest.raises(ValueError, match="the real set has"):
        datasets.load_real_set(entry, ["boat"])
    # A workflow that uses PASCAL3D+'s own name keeps it: the built-in aeroplane -> airplane rename applies only
    # when airplane is a workflow category.
    frame = datasets.load_real_set(entry, ["aeroplane", "car"])
    assert "aeroplane" in set(frame["category"]) and "airplane" not in set(frame["category"])


def test_categories_a_real_set_lacks_are_skipped(tmp_path):
    WRITERS["imagenet3d"](tmp_path)
    entry = {"name": "in3d", "format": "imagenet3d", "root": str(tmp_path), "split": "val"}
    assert set(datasets.load_real_set(entry, ["airplane", "car"])["category"]) == {"car"}


def test_objectnet3d_keeps_every_category_unless_asked(tmp_path):
    WRITERS["objectnet3d"](tmp_path)
    assert set(datasets.read_objectnet3d(tmp_path, "val")["category"]) == {"chair", "car"}
    assert set(datasets.read_objectnet3d(tmp_path, "val", ["car"])["category"]) == {"car"}
    entry = {"name": "on3d", "format": "objectnet3d", "root": str(tmp_path), "split": "val", "exclude": ["truncated"]}
    # The car with empty fine fields (MATLAB []) is read from its coarse viewpoint; with viewpoint: fine it is not.
    assert list(datasets.load_real_set(entry, ["chair", "car"])["image_id"]) == ["n03001627_1/0", "n02958343_7/1"]
    fine = datasets.load_real_set({**entry, "viewpoint": "fine"}, ["chair", "car"])
    assert list(fine["image_id"]) == ["n03001627_1/0"]
    with pytest.raises(ValueError, match="viewpoint .* applies to formats pascal3d and objectnet3d only"):
        datasets.load_real_set({**entry, "format": "imagenet3d", "viewpoint": "fine"}, ["car"])


@pytest.mark.parametrize("format_name", ["oodcv", "nemo", "oodcv-labels"])
def test_a_pose_estimator_runs_on_a_real_set_table(tmp_path, format_name):
    if format_name == "oodcv-labels":  # ROBIN's object crops: NaN boxes, cropped as the whole image
        writer, split = OODCV_VARIANTS["labels"]
        writer(tmp_path)
        entry = {"name": "ood", "format": "oodcv", "root": str(tmp_path), "split": split}
    else:
        WRITERS[format_name](tmp_path)
        entry = {"name": "ood", "format": format_name, "root": str(tmp_path), "split": SPLITS[format_name]}
    if format_name == "nemo":
        entry["nuisance"] = "weather"
    frame = datasets.load_real_set(entry, ["airplane", "car"])
    settings = {"input_size": 32, "context": 1.2, "crop_jitter": 0.0}
    torch.manual_seed(0)
    model = loop.build_model("resnet18", pretrained=False, outputs=pose.POSE_OUTPUTS)
    predictions = evaluate.predict_poses(model, settings, frame, batch_size=4, flip=False, threads=1)
    expected = ["airplane", "car", "car", "car"] if format_name == "oodcv-labels" else ["airplane", "car"]
    assert list(predictions["category"]) == expected
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


def test_oodcv_split_folder_is_any_existing_folder_and_a_missing_one_names_both_paths(tmp_path):
    WRITERS["oodcv"](tmp_path)
    # iid_test lies at the top, weather under nuisances/; a ref-style split name is no error in itself.
    assert list(datasets.read_oodcv(tmp_path, "iid_test")["image_id"]) == ["iid_test/n1/0"]
    assert len(datasets.read_oodcv(tmp_path, "weather", ["car"])) == 1
    with pytest.raises(FileNotFoundError) as error:
        datasets.read_oodcv(tmp_path, "snow")
    message = str(error.value)
    assert str(tmp_path / "snow") in message and str(tmp_path / "nuisances" / "snow") in message
    assert "'iid_test'" in message and "'nuisances/weather'" in message


def test_oodcv_labels_csv_by_hand(tmp_path):
    OODCV_VARIANTS["labels"][0](tmp_path)
    frame = datasets.read_oodcv(tmp_path, "context").set_index("image_id")
    row = frame.loc["context/n02690373_1_00.JPEG"]
    # Degrees: azimuth 200 (above 180 stays, in [0, 2 pi)), elevation 10, theta -20.
    assert (row["azimuth"], row["elevation"], row["theta"]) == pytest.approx(np.radians([200, 10, -20]))
    assert row["distance"] == 4.0 and row["subset"] == "context" and row["category"] == "aeroplane"
    assert row["image_path"] == str(tmp_path / "context" / "n02690373_1_00.JPEG")  # beside the CSV
    assert all(pd.isna(row[flag]) for flag in datasets.FLAGS)
    # Azimuth 370 wraps to 10, theta 185 to -175; the image is under images/.
    row = frame.loc["context/car_wood_03.JPEG"]
    assert (row["azimuth"], row["theta"]) == pytest.approx(np.radians([10, -175]))
    assert row["image_path"] == str(tmp_path / "context" / "images" / "car_wood_03.JPEG")
    # An image named twice: one row each, told apart by the row index.
    assert {"context/car_twice.JPEG/2", "context/car_twice.JPEG/3"} <= set(frame.index)
    assert frame[["bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"]].isna().all().all()
    cars = datasets.read_oodcv(tmp_path, "context", ["car"])
    assert set(cars["category"]) == {"car"} and len(cars) == 3
    # The crop of a whole-image (NaN) box is the crop of the explicit whole-image box (the JPEG is 64 x 48).
    settings = {"input_size": 24, "context": 1.0, "crop_jitter": 0.0}
    aeroplane = frame.reset_index().iloc[:1]
    crop = cropping.crops(aeroplane, settings, threads=1)[0].permute(1, 2, 0).numpy()
    explicit = cropping.load_crop(aeroplane["image_path"][0], np.array([0.0, 0.0, 64.0, 48.0]), 24, 1.0)
    np.testing.assert_array_equal(crop, explicit)


def test_oodcv_labels_csv_without_its_image_names_the_csv_and_both_paths(tmp_path):
    OODCV_VARIANTS["labels"][0](tmp_path)
    (tmp_path / "context" / "images" / "car_wood_03.JPEG").unlink()
    with pytest.raises(FileNotFoundError) as error:
        datasets.read_oodcv(tmp_path, "context")
    message = str(error.value)
    assert str(tmp_path / "context" / "labels.csv") in message
    assert str(tmp_path / "context" / "car_wood_03.JPEG") in message
    assert str(tmp_path / "context" / "images" / "car_wood_03.JPEG") in message
    # The aeroplane crop is still there: asking for it alone reads it.
    assert len(datasets.read_oodcv(tmp_path, "context", ["aeroplane"])) == 1


def test_oodcv_csv_of_other_columns_is_refused_with_both_column_lists(tmp_path):
    path = write_oodcv_wrong_columns(tmp_path)
    with pytest.raises(ValueError) as error:
        datasets.read_oodcv(tmp_path, "iid")
    message = str(error.value)
    assert str(path) in message
    for column in ("cls_name", "inplane_rotation", "im_path", "imgs", "labels", "theta", "az", "dist"):
        assert repr(column) in message, column


def test_oodcv_pose_challenge_by_hand(tmp_path):
    OODCV_VARIANTS["pose_challenge"][0](tmp_path)
    frame = datasets.read_oodcv(tmp_path, "iid").set_index("image_id")
    # Three objects in the car image: two rows (the third has no fine viewpoint); the aeroplane image's car is
    # not an aeroplane and is read by no car list.
    assert sorted(frame.index) == ["aeroplane/n02690373_3/0", "car/n02958343_5/0", "car/n02958343_5/1"]
    row = frame.loc["car/n02958343_5/0"]
    assert (row["bbox_x0"], row["bbox_y0"], row["bbox_x1"], row["bbox_y1"]) == (10, 20, 60, 80)
    assert (row["azimuth"], row["elevation"], row["theta"]) == pytest.approx(np.radians([250, 5, -15]))
    assert row["distance"] == 5.0 and row["subset"] == "iid" and row["viewpoint"] == "fine" and row["occluded"]
    assert frame.loc["car/n02958343_5/1", "theta"] == 0.0 and frame.loc["car/n02958343_5/1", "truncated"]
    assert frame.loc["aeroplane/n02690373_3/0", "theta"] == pytest.approx(np.radians(-170))
    assert row["image_path"] == str(tmp_path / "images" / "car" / "n02958343_5.JPEG")
    cars = datasets.read_oodcv(tmp_path, "iid", ["car"])
    assert list(cars["image_id"]) == ["car/n02958343_5/0", "car/n02958343_5/1"]
    # The weather nuisance has a car list only; its image is a .jpg.
    weather = datasets.read_oodcv(tmp_path, "weather")
    assert list(weather["image_id"]) == ["car/fog_car_7/0"]
    assert weather["image_path"][0] == str(tmp_path / "images" / "car" / "fog_car_7.jpg")
    with pytest.raises(FileNotFoundError, match="lists/aeroplane_weather.txt"):
        datasets.read_oodcv(tmp_path, "weather", ["aeroplane", "car"])
    with pytest.raises(FileNotFoundError, match="_snow.txt"):
        datasets.read_oodcv(tmp_path, "snow")
    # Configured as a real set, the workflow's categories the nuisance has no list for are skipped, not an error.
    entry = {"name": "oodcv-weather", "format": "oodcv", "root": str(tmp_path), "split": "weather"}
    loaded = datasets.load_real_set(entry, ["airplane", "car", "boat"])
    assert list(loaded["image_id"]) == ["car/fog_car_7/0"]
    (tmp_path / "images" / "car" / "fog_car_7.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="fog_car_7.png"):
        datasets.read_oodcv(tmp_path, "weather")


def test_nan_box_crops_the_whole_image(tmp_path):
    image = np.zeros((30, 50, 3), np.uint8)
    image[5:25, 10:40] = (0, 128, 255)
    cv2.imwrite(str(tmp_path / "crop.png"), image)
    path = str(tmp_path / "crop.png")
    whole = cropping.load_crop(path, np.full(4, np.nan), 16, 1.2)
    np.testing.assert_array_equal(whole, cropping.load_crop(path, np.array([0.0, 0.0, 50.0, 30.0]), 16, 1.2))
    with pytest.raises(ValueError, match="partly NaN"):
        cropping.load_crop(path, np.array([0.0, np.nan, 50.0, 30.0]), 16, 1.2)
    # object_boxes keeps a NaN box where a row has no render size: without a width column, or with it missing.
    nan_box = {"bbox_x0": [np.nan], "bbox_y0": [np.nan], "bbox_x1": [np.nan], "bbox_y1": [np.nan]}
    assert np.isnan(cropping.object_boxes(pd.DataFrame(nan_box))).all()
    mixed = pd.DataFrame(
        {
            "bbox_x0": [10.0, np.nan, 1.0],
            "bbox_y0": [20.0, np.nan, 2.0],
            "bbox_x1": [30.0, np.nan, 3.0],
            "bbox_y1": [40.0, np.nan, 4.0],
            "width": [64, np.nan, np.nan],
            "height": [64, np.nan, np.nan],
            "image_width": [128, np.nan, np.nan],
            "image_height": [128, np.nan, np.nan],
        }
    )
    boxes = cropping.object_boxes(mixed)
    np.testing.assert_array_equal(boxes[0], [20, 40, 60, 80])
    assert np.isnan(boxes[1]).all()
    np.testing.assert_array_equal(boxes[2], [1, 2, 3, 4])
