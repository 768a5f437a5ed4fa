"""The generate stage's package entry: the generated-image contract, atomic publishing, the composite backend's
pixels, and the sample figure's cuboid at the generated image's size."""

from __future__ import annotations

from collections import namedtuple

import cv2
import numpy as np
import pandas as pd
import pytest

from dst3d.figures import draw_cuboid
from dst3d.generate import (
    GENERATED_COLUMNS,
    ContractError,
    check_generated,
    generate_shard,
    merge_generated,
    prepare_records,
)
from dst3d.generate.composite import fit_background

SIZE = 16


@pytest.fixture
def records(tmp_path) -> pd.DataFrame:
    """Two render records: RGBA renders with alpha 255 (left third), 128 (middle) and 0 (right), and a wide
    background photo of a horizontal ramp."""
    rows = []
    for index in range(2):
        rgba = np.zeros((SIZE, SIZE + 2, 4), np.uint8)
        rgba[..., :3] = (40 + 100 * index, 200, 10)
        rgba[:, :6, 3], rgba[:, 6:12, 3] = 255, 128
        background = np.repeat(np.repeat(np.arange(0, 4 * (SIZE + 2), 4, dtype=np.uint8)[None, :, None], SIZE, 0), 3, 2)
        cv2.imwrite(str(tmp_path / f"render-{index}.png"), rgba)
        cv2.imwrite(str(tmp_path / f"background-{index}.png"), background)
        rows.append(
            {
                "image_id": f"train-car-{index:06d}",
                "split": "train",
                "category": "car",
                "image_index": index,
                "seed": 11 + index,
                "render_path": str(tmp_path / f"render-{index}.png"),
                "background_path": str(tmp_path / f"background-{index}.png"),
                "width": SIZE + 2,
                "height": SIZE,
            }
        )
    return pd.DataFrame(rows)


def test_composite_table_is_the_record_then_the_contract(records, tmp_path):
    out = tmp_path / "generated" / "000"
    table = generate_shard("composite", records, out, None, global_seed=0)

    assert list(table.columns) == [*records.columns, *GENERATED_COLUMNS]
    pd.testing.assert_frame_equal(table[records.columns], records)
    assert table["image_path"].tolist() == [f"{out.as_posix()}/{image_id}.png" for image_id in records["image_id"]]
    assert (table["backend"] == "composite").all()
    assert table[["image_width", "image_height"]].values.tolist() == [[SIZE + 2, SIZE]] * 2
    assert table["prompt"].isna().all() and table["generate_seed"].isna().all()
    assert sorted(path.name for path in out.parent.iterdir()) == ["000"]  # no staging folder left


def test_composite_pixels_follow_alpha(records, tmp_path):
    table = generate_shard("composite", records, tmp_path / "out", None, global_seed=0)
    image = cv2.imread(table["image_path"].iloc[1]).astype(int)
    render = cv2.imread(records["render_path"].iloc[1], cv2.IMREAD_UNCHANGED).astype(int)
    background = cv2.imread(records["background_path"].iloc[1]).astype(int)  # the photo has the render's size
    assert np.array_equal(image[:, :6], render[:, :6, :3])  # alpha 255: the render
    assert np.array_equal(image[:, 12:], background[:, 12:])  # alpha 0: the photo
    blend = np.round(render[:, 6:12, :3] * 128 / 255 + background[:, 6:12] * (1 - 128 / 255))
    assert np.abs(image[:, 6:12] - blend).max() <= 1


def test_background_is_centre_cropped_to_the_render_aspect():
    photo = np.arange(40 * 20 * 3).reshape(20, 40, 3).astype(np.uint8)
    fitted = fit_background(photo, 10, 10)
    assert fitted.shape == (10, 10, 3)
    expected = cv2.resize(photo[:, 10:30], (10, 10), interpolation=cv2.INTER_AREA)
    assert np.array_equal(fitted, expected)


def test_a_failed_backend_publishes_nothing(records, tmp_path):
    broken = records.copy()
    cv2.imwrite(broken["render_path"].iloc[1], np.zeros((SIZE, SIZE, 3), np.uint8))  # no alpha channel
    with pytest.raises(ValueError, match="has no alpha channel"):
        generate_shard("composite", broken, tmp_path / "out" / "000", None, global_seed=0)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_diffusion_inputs_come_from_the_prompt_set_and_the_identity(records, tmp_path):
    prompt_set = {
        "split": "train",
        "category": "car",
        "prompts": {"train-car-000000": "a red car", "train-car-000001": "a blue car"},
    }
    prepared = prepare_records(records, "controlnet", 0, prompt_set, tmp_path / "edges")
    assert prepared["prompt"].tolist() == ["a red car", "a blue car"]
    assert prepared["edge_path"].tolist() == [
        f"{(tmp_path / 'edges').as_posix()}/train-car-00000{i}.png" for i in (0, 1)
    ]
    assert prepared["generate_seed"].nunique() == 2 and not set(prepared["generate_seed"]) & set(records["seed"])
    again = prepare_records(records.iloc[::-1], "controlnet", 0, prompt_set, tmp_path / "edges")
    assert (
        again.set_index("image_id")["generate_seed"].to_dict()
        == prepared.set_index("image_id")["generate_seed"].to_dict()
    )

    del prompt_set["prompts"]["train-car-000001"]
    with pytest.raises(ValueError, match=r"no prompt for the images \['train-car-000001'\].*write_prompts"):
        prepare_records(records, "controlnet", 0, prompt_set, tmp_path / "edges")


def test_a_backend_breaking_the_contract_fails_naming_the_column(records, tmp_path):
    generated = pd.DataFrame(
        {
            "image_id": records["image_id"],
            "image_path": ["a.png", "b.png"],
            "image_width": [8, 8],
            "image_height": [8, 8],
            "backend": "controlnet",
        }
    )
    with pytest.raises(ContractError, match=r"\['seed'\].*never overwrites"):
        merge_generated(records, generated.assign(seed=[1, 2]), "controlnet")
    with pytest.raises(ContractError, match=r"\['score'\].*not in dst3d.generate.GENERATED_COLUMNS"):
        merge_generated(records, generated.assign(score=[1, 2]), "controlnet")
    with pytest.raises(ContractError, match="left image_width empty"):
        check_generated(
            merge_generated(records, generated.assign(image_width=[8, None]), "controlnet"),
            records.columns,
            "controlnet",
        )
    with pytest.raises(ContractError, match="lacks the columns"):
        check_generated(generated, records.columns, "controlnet")
    with pytest.raises(ContractError, match="did not write the images"):
        check_generated(merge_generated(records, generated, "controlnet"), records.columns, "controlnet")


def test_the_cuboid_is_drawn_at_the_corners_scaled_to_the_generated_image():
    Record = namedtuple("Record", "cuboid_uv cuboid_visible width height image_width image_height")
    corners = np.array([[4, 4], [12, 4], [4, 12], [12, 12], [5, 5], [11, 5], [5, 11], [11, 11]], float)
    record = Record(corners.reshape(-1).tolist(), [True] * 8, 16, 16, 64, 64)  # rendered at 16, generated at 64
    drawn = draw_cuboid(np.zeros((64, 64, 3), np.uint8), record)
    for u, v in corners * 4:
        assert drawn[int(v), int(u)].tolist() == [0, 220, 0], (u, v)
    assert not drawn[30:34, 30:34].any()  # inside the cuboid's faces, away from every edge
    assert drawn[60:, 60:].sum() == 0  # beyond the scaled box (unscaled corners would stop at 12)


def test_the_viewpoint_plot_shows_each_category_at_its_angles(tmp_path):
    from dst3d.figures import viewpoint_figure, viewpoint_plot

    annotations = pd.DataFrame(
        {
            "category": ["car", "car", "boat"],
            "azimuth": np.radians([10.0, 350.0, 180.0]),
            "elevation": np.radians([5.0, 40.0, -10.0]),
        }
    )
    figure = viewpoint_figure(annotations, azimuth_bins=24)
    car_azimuth, car_elevation, boat_azimuth, boat_elevation = figure.axes
    assert car_azimuth.get_title() == "car (n=2)\nazimuth" and boat_azimuth.get_title() == "boat (n=1)\nazimuth"
    assert car_azimuth.name == "polar"
    # 15-degree azimuth bins: car's 10 and 350 degrees fill the first and the last, boat's 180 the 13th.
    heights = [patch.get_height() for patch in car_azimuth.patches]
    assert heights[0] == heights[23] == 1 and sum(heights) == 2
    assert [patch.get_height() for patch in boat_azimuth.patches].index(1) == 12
    # 10-degree elevation bins from -90: car's 5 and 40 degrees in the 10th and 14th, boat's -10 in the 9th.
    car_bins = [patch.get_height() for patch in car_elevation.patches]
    assert car_bins[9] == car_bins[13] == 1 and sum(car_bins) == 2
    assert [patch.get_height() for patch in boat_elevation.patches].index(1) == 8
    assert car_elevation.get_xlim() == (-90, 90) and car_elevation.get_xlabel() == "elevation (deg)"
    viewpoint_plot(annotations, tmp_path / "viewpoints.png", tmp_path / "viewpoints.pdf")
    assert cv2.imread(str(tmp_path / "viewpoints.png")).shape[1] > 400
    assert (tmp_path / "viewpoints.pdf").read_bytes().startswith(b"%PDF")
