"""Render-stage inputs without rendering: the real DTD's layout and split files, OFF parsing, file axes as
Blender converts them, and the camera against the PASCAL3D+ toolkit's own projection."""

import itertools

import numpy as np
import pandas as pd
import pytest

from dst3d import geometry
from dst3d.inputs import catalog, meshes
from dst3d.render.annotations import ShardAssets, camera_of


def make_dtd(root, classes=("banded", "braided"), per_class=4):
    """A tiny DTD: images/<class>/<class>_000k.jpg, ten-split label files as the real DTD ships them
    (``labels/train1.txt`` lines like ``banded/banded_0002.jpg``), and the stray file the real DTD has."""
    for texture_class in classes:
        (root / "images" / texture_class).mkdir(parents=True)
        for number in range(1, per_class + 1):
            (root / "images" / texture_class / f"{texture_class}_{number:04d}.jpg").write_bytes(b"jpeg")
    (root / "images" / classes[0] / ".directory").write_text("[Dolphin]\n")
    (root / "labels").mkdir()
    for split in (1, 2):
        parts = {"train": [], "val": [], "test": []}
        for texture_class in classes:
            names = [f"{texture_class}/{texture_class}_{number:04d}.jpg" for number in range(1, per_class + 1)]
            rotated = names[split - 1 :] + names[: split - 1]  # each split puts other images in test
            parts["train"] += rotated[:2]
            parts["val"] += rotated[2:3]
            parts["test"] += rotated[3:]
        for name, lines in parts.items():
            (root / "labels" / f"{name}{split}.txt").write_text("\n".join(lines) + "\n")
    (root / "labels" / "labels_joint_anno.txt").write_text("banded/banded_0001.jpg banded\n")


def test_real_dtd_layout_and_split_files(tmp_path):
    make_dtd(tmp_path)
    first = catalog.index_textures(tmp_path, 0.2)
    assert len(first) == 8 and set(first["texture_class"]) == {"banded", "braided"}
    assert (first["split"] == "test").sum() == 2  # one test image per class; train1 + val1 are our train
    test_names = sorted(path.rsplit("/", 1)[1] for path in first.loc[first["split"] == "test", "path"])
    assert test_names == ["banded_0004.jpg", "braided_0004.jpg"]
    second = catalog.index_textures(tmp_path, 0.2, dtd_split=2)
    assert sorted(path.rsplit("/", 1)[1] for path in second.loc[second["split"] == "test", "path"]) == [
        "banded_0001.jpg",
        "braided_0001.jpg",
    ]


def test_dtd_split_files_that_name_missing_images_or_come_alone_are_errors(tmp_path):
    make_dtd(tmp_path)
    with open(tmp_path / "labels" / "test1.txt", "a") as handle:
        handle.write("banded/banded_0099.jpg\n")
    with pytest.raises(catalog.AssetError, match="banded/banded_0099.jpg"):
        catalog.index_textures(tmp_path, 0.2)
    (tmp_path / "labels" / "test1.txt").unlink()
    with pytest.raises(catalog.AssetError, match="only one of train1.txt and test1.txt"):
        catalog.index_textures(tmp_path, 0.2)


def test_dtd_without_split_files_splits_by_hash(tmp_path):
    make_dtd(tmp_path, per_class=20)
    for label_file in (tmp_path / "labels").iterdir():
        label_file.unlink()
    table = catalog.index_textures(tmp_path, 0.3)
    assert len(table) == 40 and 0 < (table["split"] == "test").sum() < 40


def test_environment_folder_index(tmp_path):
    assert catalog.index_environments(None).empty
    with pytest.raises(catalog.AssetError, match="no .hdr/.exr"):
        catalog.index_environments(tmp_path)
    (tmp_path / "sky.hdr").write_bytes(b"#?RADIANCE")
    assert catalog.index_environments(tmp_path)["path"].str.endswith("sky.hdr").all()


def test_shard_assets_read_from_the_index_tables(embedded_assets, tmp_path):
    """The render job's inputs as scripts/render_shard.py reads them: the category's models, the split's textures
    and backgrounds; an empty HDR index means no environment maps."""
    for name in ("models", "textures", "backgrounds"):
        embedded_assets[name].to_csv(tmp_path / f"{name}.csv", index=False)
    catalog.index_environments(None).to_csv(tmp_path / "environments.csv", index=False)
    tables = [tmp_path / f"{name}.csv" for name in ("models", "textures", "backgrounds", "environments")]
    assets = ShardAssets.from_indexes("test", "chair", *tables)
    assert set(assets.models["category"]) == {"chair"} and assets.models["model_id"].is_monotonic_increasing
    assert set(assets.textures["split"]) == {"test"} and set(assets.backgrounds["split"]) == {"test"}
    assert assets.environments is None and not assets.with_environment
    (tmp_path / "sky.hdr").write_bytes(b"#?RADIANCE")
    catalog.index_environments(tmp_path).to_csv(tmp_path / "environments.csv", index=False)
    assert ShardAssets.from_indexes("train", "car", *tables).with_environment
    with pytest.raises(catalog.AssetError, match="no model of category 'bike'"):
        ShardAssets.from_indexes("train", "bike", *tables)


def test_off_reader_handles_pascal3d_and_modelnet_headers(tmp_path):
    pascal = tmp_path / "pascal.off"
    pascal.write_text("OFF\n# a comment\n4 2 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n4 0 1 2 3\n3 0 2 3 255 0 0\n")
    vertices, faces = meshes.read_off(pascal)
    assert vertices.shape == (4, 3) and faces.tolist() == [[0, 1, 2], [0, 2, 3], [0, 2, 3]]
    modelnet = tmp_path / "modelnet.off"
    modelnet.write_text("OFF3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")
    assert meshes.read_off(modelnet)[1].tolist() == [[0, 1, 2]]
    for text, message in (
        ("3 1 0\n", "no OFF header"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 3\n", "outside"),
        ("OFF\n4 1 0\n0 0 0\n", "fewer"),
    ):
        broken = tmp_path / "broken.off"
        broken.write_text(text)
        with pytest.raises(ValueError, match=message):
            meshes.read_off(broken)


def test_axis_matrix_equals_blenders_axis_conversion():
    import bpy  # noqa: F401  (puts Blender's script modules, bpy_extras among them, on the path)
    from bpy_extras.io_utils import axis_conversion

    for forward, up in itertools.product(meshes.AXES, repeat=2):
        if forward[-1] == up[-1]:
            with pytest.raises(ValueError, match="different axes"):
                meshes.axis_matrix(forward, up)
            continue
        blender_names = forward.replace("NEGATIVE_", "-"), up.replace("NEGATIVE_", "-")
        expected = np.array(axis_conversion(from_forward=blender_names[0], from_up=blender_names[1]))
        np.testing.assert_allclose(meshes.axis_matrix(forward, up), expected, atol=1e-12, err_msg=f"{forward} {up}")
    # ShapeNet / glTF: y up, a point in front of the model (+z in the file) lands at -y, our front.
    np.testing.assert_allclose(meshes.axis_matrix(*meshes.Y_UP) @ [0, 0, 1], [0, -1, 0], atol=1e-12)


def pascal3d_project(points, azimuth_deg, elevation_deg, theta_deg, distance, focal, principal):
    """The PASCAL3D+ toolkit's projection (project_3d.m), transcribed: viewport 1, focal in pixels."""
    a, e, theta = np.deg2rad([azimuth_deg, elevation_deg, theta_deg])
    C = distance * np.array([np.cos(e) * np.sin(a), -np.cos(e) * np.cos(a), np.sin(e)])
    a, e = -a, -(np.pi / 2 - e)
    Rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    Rx = np.array([[1, 0, 0], [0, np.cos(e), -np.sin(e)], [0, np.sin(e), np.cos(e)]])
    R = Rx @ Rz
    P = np.diag([focal, focal, -1.0]) @ np.hstack([R, (-R @ C)[:, None]])
    x = P @ np.vstack([points.T, np.ones(len(points))])
    x = x[:2] / x[2]
    R2d = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    x = (R2d @ x).T
    return np.stack([x[:, 0] + principal[0], -x[:, 1] + principal[1]], axis=1)


@pytest.mark.parametrize(
    "azimuth_deg, elevation_deg, theta_deg, distance",
    [
        (0, 0, 0, 2.0),
        (90, 0, 0, 3.0),
        (30, 20, 10, 2.5),
        (200, -15, -25, 4.0),
        (315, 60, 5, 2.2),
    ],
)
def test_stored_camera_projects_as_the_pascal3d_toolkit(azimuth_deg, elevation_deg, theta_deg, distance):
    width, height = 160, 120
    plan = {
        "render_azimuth": np.deg2rad(azimuth_deg),
        "render_elevation": np.deg2rad(elevation_deg),
        "theta": np.deg2rad(theta_deg),
        "distance": distance,
    }
    K, R, t = camera_of(plan, width, height, 35, 32)
    points = np.random.default_rng(0).uniform(-0.5, 0.5, (50, 3))
    ours, _ = geometry.project(points, K, R, t)
    theirs = pascal3d_project(points, azimuth_deg, elevation_deg, theta_deg, distance, K[0, 0], (K[0, 2], K[1, 2]))
    np.testing.assert_allclose(ours, theirs, atol=1e-9)
    # And back: the angles recovered from the stored R are the ones drawn.
    recovered = geometry.angles_from_rotation_gl(geometry.GL_TO_CV.T @ R)
    np.testing.assert_allclose(
        recovered, [np.deg2rad(azimuth_deg) % (2 * np.pi), np.deg2rad(elevation_deg), np.deg2rad(theta_deg)], atol=1e-9
    )


def test_index_paths_inside_the_working_folder_become_relative_the_others_stay(tmp_path):
    inside = tmp_path / "work" / "results" / "assets" / "a.jpg"
    outside = tmp_path / "data" / "b.jpg"
    frame = pd.DataFrame({"path": [str(inside), str(outside)], "split": ["train", "test"]})
    relative = catalog.relative_inside(frame, tmp_path / "work")
    assert relative["path"].tolist() == ["results/assets/a.jpg", str(outside)]
    assert relative["split"].tolist() == ["train", "test"] and frame["path"].iloc[0] == str(inside)
    assert catalog.relative_inside(frame.iloc[:0], tmp_path).empty
