"""The render stage against the pixels: projected meshes fill the masks, renders are reproducible and
independent of the shard size, and bad inputs stop with messages naming the file or row."""

import copy
import zlib

import cv2
import numpy as np
import pandas as pd
import pytest

from dst3d import geometry
from dst3d.geometry import project
from dst3d.inputs import catalog, meshes
from dst3d.io import without_png_text
from dst3d.render.annotations import matrix
from dst3d.render.blender import RenderError, ShardAssets, render_shard
from dst3d.tables import read_csv


def _render(embedded_assets, settings, category, indices, out_dir, split="train"):
    return render_shard(
        split,
        category,
        indices,
        ShardAssets(
            catalog.models_of(embedded_assets["models"], category),
            catalog.split_assets(embedded_assets["textures"], split, "textures"),
            catalog.split_assets(embedded_assets["backgrounds"], split, "backgrounds"),
        ),
        settings,
        0,
        out_dir,
        threads=2,
    )


def shapenet_to_canonical(vertices):
    """A y-up OBJ point (ShapeNet's model_normalized.obj, Blender's default OBJ axes) in our z-up frame: (x, -z, y)."""
    return np.stack([vertices[:, 0], -vertices[:, 2], vertices[:, 1]], axis=1)


def embedded_mesh(models, model_id):
    """An embedded model's mesh read back from its OBJ file and normalised as 3D-DST does."""
    vertices, faces = meshes.read_obj(models.loc[model_id, "path"])
    vertices = shapenet_to_canonical(vertices)
    centre, scale = meshes.normalisation(vertices)
    return (vertices - centre) * scale, faces


def rasterise(vertices, faces, record, supersample=8):
    """Silhouette of a mesh projected with the record's K, R, t; supersampled, then thresholded at half cover."""
    uv, depth = project(vertices, matrix(record, "K"), matrix(record, "R"), matrix(record, "t"))
    assert (depth > 0).all()
    width, height = record["width"], record["height"]
    canvas = np.zeros((height * supersample, width * supersample), np.uint8)
    for triangle in faces:
        # Pixel-corner coordinates -> OpenCV's pixel-centre coordinates, in 1/16 pixel fixed point.
        points = np.round((uv[triangle] * supersample - 0.5) * 16).astype(np.int32)
        cv2.fillPoly(canvas, [points], 255, lineType=cv2.LINE_8, shift=4)
    return cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA) >= 128


@pytest.fixture(scope="module")
def rendered(embedded_assets, tmp_path_factory):
    from tests.conftest import RENDER

    out = tmp_path_factory.mktemp("render")
    tables = {
        category: _render(embedded_assets, RENDER, category, range(0, 4), out / category)[0]
        for category in ("car", "chair", "airplane", "boat")
    }
    return out, tables


def test_projected_mesh_fills_the_rendered_mask(rendered, embedded_assets):
    _, tables = rendered
    models = embedded_assets["models"].set_index("model_id")
    for table in tables.values():
        for record in table.to_dict("records"):
            projected = rasterise(*embedded_mesh(models, record["model_id"]), record)
            mask = cv2.imread(record["mask_path"], cv2.IMREAD_GRAYSCALE) > 0
            iou = (projected & mask).sum() / (projected | mask).sum()
            assert iou >= 0.95, (record["image_id"], iou)


def test_annotation_box_and_cuboid_match_the_mask(rendered):
    _, tables = rendered
    for table in tables.values():
        for record in table.to_dict("records"):
            mask = cv2.imread(record["mask_path"], cv2.IMREAD_GRAYSCALE) > 0
            ys, xs = np.nonzero(mask)
            assert (record["bbox_x0"], record["bbox_y0"], record["bbox_x1"], record["bbox_y1"]) == (
                xs.min(),
                ys.min(),
                xs.max() + 1,
                ys.max() + 1,
            )
            # The object's silhouette lies inside the hull of its projected bounding cuboid.
            hull = cv2.convexHull(matrix(record, "cuboid_uv").astype(np.float32))
            inside = [
                cv2.pointPolygonTest(hull, (float(x) + 0.5, float(y) + 0.5), True) >= -1.0
                for x, y in zip(xs, ys, strict=True)
            ]
            assert all(inside), record["image_id"]
            assert 0 < sum(record["cuboid_visible"]) <= 7  # a box never shows all eight corners


def test_records_carry_canonical_pose_and_offsets_separately(rendered):
    _, tables = rendered
    table = tables["car"]
    for column in (
        "azimuth",
        "elevation",
        "theta",
        "distance",
        "azimuth_offset",
        "elevation_offset",
        "K",
        "R",
        "t",
        "texture_path",
        "background_path",
        "seed",
        "model_id",
        "image_index",
    ):
        assert column in table.columns
    assert table["image_index"].tolist() == [0, 1, 2, 3]
    assert (table["azimuth_offset"] == 0).all()


def test_same_config_renders_identical_images_whatever_the_shard_size(rendered, embedded_assets, tmp_path):
    from tests.conftest import RENDER

    out, tables = rendered
    again, _ = _render(embedded_assets, RENDER, "boat", range(2, 4), tmp_path / "boat")
    first = tables["boat"].iloc[2:].reset_index(drop=True)
    columns = [c for c in first.columns if not c.endswith("_path") or c in ("texture_path", "background_path")]
    pd.testing.assert_frame_equal(first[columns], again[columns])
    for image_id in again["image_id"]:
        # Byte-identical files, not only pixels: no date or render time in the PNG metadata, no PNG text at all.
        written = (out / "boat" / f"{image_id}.png").read_bytes()
        assert written == (tmp_path / "boat" / f"{image_id}.png").read_bytes()
        assert without_png_text(written) == written
        assert (out / "boat" / f"{image_id}_mask.png").read_bytes() == (
            tmp_path / "boat" / f"{image_id}_mask.png"
        ).read_bytes()


def test_corrupt_mesh_names_the_file_and_leaves_previous_output(embedded_assets, render_settings, tmp_path):
    broken = tmp_path / "broken.obj"
    broken.write_text("this is not a mesh\n")
    models = catalog.models_of(embedded_assets["models"], "car").copy()
    models["path"] = str(broken)
    out = tmp_path / "shard"
    out.mkdir()
    (out / "earlier.png").write_bytes(b"kept")
    with pytest.raises(RenderError, match="broken.obj"):
        render_shard(
            "train",
            "car",
            range(2),
            ShardAssets(
                models,
                catalog.split_assets(embedded_assets["textures"], "train", "t"),
                catalog.split_assets(embedded_assets["backgrounds"], "train", "b"),
            ),
            render_settings,
            0,
            out,
        )
    assert (out / "earlier.png").read_bytes() == b"kept"
    assert not (tmp_path / "shard.partial").exists()


def test_missing_mesh_names_the_file(embedded_assets, render_settings, tmp_path):
    models = catalog.models_of(embedded_assets["models"], "car").copy()
    models["path"] = str(tmp_path / "nowhere.obj")
    with pytest.raises(RenderError, match="nowhere.obj does not exist"):
        render_shard(
            "train",
            "car",
            range(1),
            ShardAssets(
                models,
                catalog.split_assets(embedded_assets["textures"], "train", "t"),
                catalog.split_assets(embedded_assets["backgrounds"], "train", "b"),
            ),
            render_settings,
            0,
            tmp_path / "s",
        )


def test_bad_metadata_row_names_the_line(embedded_assets, tmp_path):
    table = read_csv(embedded_assets["root"] / "models.csv", dtype={"sampling_mode": str})
    table["path"] = [str(embedded_assets["root"] / path) for path in table["path"]]
    table.loc[3, "sampling_mode"] = "9"
    table.to_csv(tmp_path / "models.csv", index=False)
    with pytest.raises(catalog.AssetError, match=r"line 5 .*sampling_mode must be 1-5 or p3d"):
        catalog.read_model_table(tmp_path / "models.csv")
    table.loc[3, "sampling_mode"] = "3"
    table.loc[1, "distance"] = -1
    table.to_csv(tmp_path / "models.csv", index=False)
    with pytest.raises(catalog.AssetError, match=r"line 3 .*distance must be positive"):
        catalog.read_model_table(tmp_path / "models.csv")


def test_empty_texture_folder_is_a_clear_error(tmp_path):
    (tmp_path / "images" / "banded").mkdir(parents=True)
    with pytest.raises(catalog.AssetError, match="holds no .jpg/.png images"):
        catalog.index_textures(tmp_path, 0.2)


def test_nothing_but_the_object_is_opaque(rendered, embedded_assets):
    """The film is transparent: no light, world or stray geometry shows outside the projected silhouette."""
    _, tables = rendered
    models = embedded_assets["models"].set_index("model_id")
    for table in tables.values():
        for record in table.to_dict("records"):
            silhouette = rasterise(*embedded_mesh(models, record["model_id"]), record).astype(np.uint8)
            near = cv2.dilate(silhouette, np.ones((5, 5), np.uint8)) > 0
            alpha = cv2.imread(record["render_path"], cv2.IMREAD_UNCHANGED)[:, :, 3]
            assert alpha[~near].max() == 0, record["image_id"]


def test_text_chunks_are_dropped_and_pixels_kept(tmp_path):
    image = np.arange(4 * 5 * 4, dtype=np.uint8).reshape(4, 5, 4)
    ok, encoded = cv2.imencode(".png", image)
    data = encoded.tobytes()
    # A tEXt chunk after IHDR, as Cycles writes "cycles.ViewLayer.render_time".
    text = b"tEXt" + b"render_time\x0000:01.23"
    chunk = len(text[4:]).to_bytes(4, "big") + text + zlib.crc32(text).to_bytes(4, "big")
    header_end = 8 + 12 + 13
    stamped = data[:header_end] + chunk + data[header_end:]
    assert np.array_equal(cv2.imdecode(np.frombuffer(stamped, np.uint8), cv2.IMREAD_UNCHANGED), image)
    assert without_png_text(stamped) == data
    with pytest.raises(ValueError, match="truncated"):
        without_png_text(stamped[:-5])
    with pytest.raises(ValueError, match="not a PNG"):
        without_png_text(b"GIF89a")


def _object_brightness(embedded_assets, preset, elevation_deg, out_dir):
    from tests.conftest import RENDER

    settings = copy.deepcopy(RENDER)
    settings["preset"] = preset
    p3d = {"mean": elevation_deg, "sd": 0, "low": -89, "high": 89}
    settings["viewpoint"] = {**settings["viewpoint"], "mode": "p3d", "theta_sd_deg": 0, "p3d": p3d}
    table, _ = _render(embedded_assets, settings, "car", range(0, 3), out_dir)
    values = []
    for record in table.itertuples():
        image = cv2.imread(str(out_dir / f"{record.image_id}.png"), cv2.IMREAD_UNCHANGED)
        mask = cv2.imread(str(out_dir / f"{record.image_id}_mask.png"), cv2.IMREAD_GRAYSCALE) > 127
        values.append(image[..., :3][mask].mean())
    return float(np.mean(values)), table


def test_official_scene_lights_from_above_and_dst3d_follows_the_camera(embedded_assets, tmp_path):
    # The official 3D-DST scene: one fixed area light above the object, so a view from 45 degrees below sees a
    # much darker object than one from 45 degrees above (measured 118 vs 55 grey levels); dst3d's light follows the
    # camera (160 vs 164).
    above, table = _object_brightness(embedded_assets, "3d-dst-official", 45, tmp_path / "official-above")
    below, _ = _object_brightness(embedded_assets, "3d-dst-official", -45, tmp_path / "official-below")
    assert above / below > 1.6
    assert set(table["light_energy_w"]) == {30000.0} and table["light_azimuth"].isna().all()
    above, _ = _object_brightness(embedded_assets, None, 45, tmp_path / "dst3d-above")
    below, _ = _object_brightness(embedded_assets, None, -45, tmp_path / "dst3d-below")
    assert 0.8 < above / below < 1.25


def test_stretched_models_fill_their_masks_and_the_cuboid_follows(embedded_assets, tmp_path):
    from tests.conftest import RENDER

    settings = {**copy.deepcopy(RENDER), "stretch": 0.3}  # exaggerated (P3D-Diffusion: 0.05) to be visible
    table, _ = _render(embedded_assets, settings, "car", range(0, 3), tmp_path / "stretched")
    models = embedded_assets["models"].set_index("model_id")
    for record in table.to_dict("records"):
        scale = np.array([record["scale_x"], record["scale_y"], record["scale_z"]])
        assert np.all(np.abs(scale - 1) <= 0.3) and np.abs(scale - 1).max() > 0.02
        vertices, faces = embedded_mesh(models, record["model_id"])
        mask = cv2.imread(record["mask_path"], cv2.IMREAD_GRAYSCALE) > 0
        stretched = rasterise(vertices * scale, faces, record)
        plain = rasterise(vertices, faces, record)
        iou = (stretched & mask).sum() / (stretched | mask).sum()
        assert iou >= 0.95, (record["image_id"], iou)
        assert iou > (plain & mask).sum() / (plain | mask).sum()
        corners = geometry.cuboid_corners(vertices.min(0) * scale, vertices.max(0) * scale)
        uv, _ = project(corners, matrix(record, "K"), matrix(record, "R"), matrix(record, "t"))
        np.testing.assert_allclose(matrix(record, "cuboid_uv"), uv, atol=1e-3)
    # Without stretch every other draw is the same: the same viewpoints, textures and backgrounds.
    plain_table, _ = _render(embedded_assets, RENDER, "car", range(0, 3), tmp_path / "plain")
    columns = ["azimuth", "elevation", "theta", "distance", "texture_path", "background_path"]
    pd.testing.assert_frame_equal(plain_table[columns], table[columns])
    assert set(plain_table["scale_x"]) == {1.0}
