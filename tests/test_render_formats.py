"""Mesh formats against the pixels: OBJ in ShapeNet's layout, OFF (PASCAL3D+ CAD), GLB and glTF (Objaverse) and
.blend files of one known mesh, built here, render masks that the mesh projected with the stored K, R, t fills
(IoU >= 0.95); an azimuth offset compensates a rotated model file; own materials, UV mappings, depth and HDR
environment maps work; broken files stop the job with a message that names them."""

import cv2
import numpy as np
import pandas as pd
import pytest

from dst3d import geometry
from dst3d.inputs import catalog, meshes, procedural_meshes
from dst3d.render.annotations import matrix
from dst3d.render.blender import DEPTH_SCALE, RenderError, ShardAssets, read_depth_exr, render_shard
from tests.conftest import RENDER, schema_defaults
from tests.test_render import rasterise

BOX_SIZE = (0.15, 0.2, 0.12)
BOX_CENTRES = ((0.42, 0.25, 0.3), (0.42, -0.05, 0.3))  # the second = the first + ARRAY_OFFSET


def body_mesh():
    return procedural_meshes.car(np.random.default_rng(3))


def truth_mesh():
    """The mesh every file below holds, in the canonical frame (z up, front -y), before normalisation."""
    return procedural_meshes.merge([body_mesh(), *(procedural_meshes.box(centre, BOX_SIZE) for centre in BOX_CENTRES)])


def normalised(vertices):
    centre, scale = meshes.normalisation(vertices)
    return (vertices - centre) * scale


def _link_mesh_object(name, vertices, faces, matrix_world=None, material=None):
    import bpy
    from mathutils import Matrix

    if matrix_world is not None:  # store local coordinates so that the object's world placement gives `vertices`
        local = np.linalg.inv(np.asarray(matrix_world))
        vertices = vertices @ local[:3, :3].T + local[:3, 3]
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(vertices.tolist(), [], faces.tolist())
    if material is not None:
        mesh.materials.append(material)
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    if matrix_world is not None:
        obj.matrix_world = Matrix(np.asarray(matrix_world).tolist())
    return obj


def build_blender_scene(with_array_modifier: bool, material_colour=None):
    """The truth mesh as a Blender scene that exercises the importer: the body under a transformed parent
    empty, the two boxes as two objects sharing one mesh (or one box with an Array modifier), and a camera
    and a light that must not end up in the model."""
    import bpy
    from mathutils import Matrix

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    material = None
    if material_colour is not None:
        material = bpy.data.materials.new("own")
        material.node_tree.nodes["Principled BSDF"].inputs["Base Color"].default_value = (*material_colour, 1.0)
    parent = bpy.data.objects.new("parent", None)
    scene.collection.objects.link(parent)
    parent.matrix_world = Matrix.Translation((0.3, -0.2, 0.1)) @ Matrix.Rotation(0.4, 4, "Z") @ Matrix.Scale(2.0, 4)
    body_vertices, body_faces = body_mesh()
    local = Matrix.Translation((0.0, 0.1, 0.0)) @ Matrix.Rotation(-0.3, 4, "X")
    body = _link_mesh_object("body", body_vertices, body_faces, np.asarray(parent.matrix_world @ local), material)
    body_world = body.matrix_world.copy()
    body.parent = parent
    body.matrix_world = body_world
    box_vertices, box_faces = procedural_meshes.box((0, 0, 0), BOX_SIZE)
    first = _link_mesh_object("box", box_vertices, box_faces, material=material)
    first.location = BOX_CENTRES[0]
    if with_array_modifier:
        array = first.modifiers.new("array", "ARRAY")
        array.count, array.use_relative_offset, array.use_constant_offset = 2, False, True
        array.constant_offset_displace = np.subtract(BOX_CENTRES[1], BOX_CENTRES[0]).tolist()
    else:
        second = bpy.data.objects.new("box.instance", first.data)
        scene.collection.objects.link(second)
        second.location = BOX_CENTRES[1]
    camera = bpy.data.objects.new("file camera", bpy.data.cameras.new("file camera"))
    scene.collection.objects.link(camera)
    light = bpy.data.objects.new("file light", bpy.data.lights.new("file light", "POINT"))
    light.data.energy = 5000.0
    scene.collection.objects.link(light)


def write_model_files(folder, material_colour=None):
    """The truth mesh in every format; returns {model_id: path}."""
    import bpy

    vertices, faces = truth_mesh()
    paths = {
        "obj": folder / "shapenet" / "02958343" / "1a2b3c" / "models" / "model_normalized.obj",
        "off": folder / "pascal3d" / "car_01.off",
        "glb": folder / "objaverse" / "model.glb",
        "gltf": folder / "objaverse" / "separate" / "model.gltf",
        "blend": folder / "blend" / "model.blend",
    }
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    # ShapeNet's model_normalized.obj is y up: a canonical point (x, y, z) is stored as (x, z, -y).
    meshes.write_obj(paths["obj"], np.stack([vertices[:, 0], vertices[:, 2], -vertices[:, 1]], axis=1), faces)
    meshes.write_off(paths["off"], vertices, faces)
    build_blender_scene(with_array_modifier=False, material_colour=material_colour)
    for key, file_format in (("glb", "GLB"), ("gltf", "GLTF_SEPARATE")):
        bpy.ops.export_scene.gltf(
            filepath=str(paths[key]), export_format=file_format, export_cameras=True, export_lights=True
        )
    build_blender_scene(with_array_modifier=True, material_colour=material_colour)
    bpy.ops.wm.save_as_mainfile(filepath=str(paths["blend"]))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return paths


def write_model_table(folder, paths, **columns):
    rows = [
        {
            "category": "thing",
            "model_id": model_id,
            "path": str(path),
            "azimuth_offset_deg": 0.0,
            "elevation_offset_deg": 0.0,
            "distance": 2.0,
            "sampling_mode": "5",
            "strength": 1.0,
            "keywords": "",
            **columns,
        }
        for model_id, path in paths.items()
    ]
    pd.DataFrame(rows).to_csv(folder / "models.csv", index=False)
    return catalog.read_model_table(folder / "models.csv")


def split_of(embedded_assets, key):
    return catalog.split_assets(embedded_assets[key], "train", key)


def iou(first, second):
    return (first & second).sum() / (first | second).sum()


def read_mask(record):
    return cv2.imread(record["mask_path"], cv2.IMREAD_GRAYSCALE) > 0


@pytest.fixture(scope="module")
def formats(embedded_assets, tmp_path_factory):
    folder = tmp_path_factory.mktemp("formats")
    models = write_model_table(folder, write_model_files(folder))
    table, _ = render_shard(
        "train",
        "thing",
        range(10),
        ShardAssets(
            catalog.models_of(models, "thing"),
            split_of(embedded_assets, "textures"),
            split_of(embedded_assets, "backgrounds"),
        ),
        RENDER,
        0,
        folder / "shard",
        threads=2,
    )
    return models, table


def test_model_table_knows_every_format(formats):
    models, table = formats
    assert dict(zip(models["model_id"], models["format"], strict=True)) == {
        "obj": "obj",
        "off": "off",
        "glb": "gltf",
        "gltf": "gltf",
        "blend": "blend",
    }
    assert sorted(table["model_id"].value_counts().items()) == [(m, 2) for m in ("blend", "glb", "gltf", "obj", "off")]


def test_every_format_renders_masks_that_the_projected_mesh_fills(formats):
    _, table = formats
    vertices, faces = truth_mesh()
    vertices = normalised(vertices)
    for record in table.to_dict("records"):
        score = iou(rasterise(vertices, faces, record), read_mask(record))
        assert score >= 0.95, (record["model_id"], record["image_id"], score)


def test_alignment_offset_compensates_a_rotated_model_file(embedded_assets, tmp_path):
    """A file holding the mesh turned by +90 degrees about z, with azimuth offset +90, renders the same image and
    the same canonical pose as the unturned file at the same canonical viewpoint."""
    vertices, faces = truth_mesh()
    meshes.write_off(tmp_path / "plain.off", vertices, faces)
    meshes.write_off(tmp_path / "turned.off", vertices @ geometry.rot_z(np.pi / 2).T, faces)
    flat = tmp_path / "flat.png"
    cv2.imwrite(str(flat), np.full((8, 8, 3), 170, np.uint8))
    textures = pd.DataFrame({"path": [str(flat)], "texture_class": ["flat"], "split": ["train"]})
    settings = schema_defaults(
        "render", {"width": 96, "height": 96, "samples": 16, "denoise": False, "viewpoint": {"theta_sd_deg": 10.0}}
    )
    tables = {}
    for name, offset in (("plain", 0.0), ("turned", 90.0)):
        folder = tmp_path / name
        folder.mkdir()
        models = write_model_table(folder, {name: tmp_path / f"{name}.off"}, azimuth_offset_deg=offset)
        tables[name], _ = render_shard(
            "train",
            "thing",
            range(3),
            ShardAssets(catalog.models_of(models, "thing"), textures, split_of(embedded_assets, "backgrounds")),
            settings,
            0,
            folder / "shard",
        )
    for plain, turned in zip(tables["plain"].to_dict("records"), tables["turned"].to_dict("records"), strict=True):
        for key in ("azimuth", "elevation", "theta", "distance", "elevation_offset", "K", "t"):
            np.testing.assert_allclose(plain[key], turned[key], atol=1e-9, err_msg=key)
        assert turned["azimuth_offset"] == pytest.approx(np.pi / 2) and plain["azimuth_offset"] == 0
        # R maps the file's points; the file holds Rz(90) X for each canonical point X.
        np.testing.assert_allclose(matrix(turned, "R") @ geometry.rot_z(np.pi / 2), matrix(plain, "R"), atol=1e-9)
        assert iou(read_mask(plain), read_mask(turned)) >= 0.99
        difference = np.abs(
            cv2.imread(plain["render_path"], cv2.IMREAD_UNCHANGED).astype(int)
            - cv2.imread(turned["render_path"], cv2.IMREAD_UNCHANGED).astype(int)
        )
        assert difference.mean() < 2.0, difference.mean()


@pytest.mark.parametrize("model_id", ["obj", "glb"])
def test_keep_materials_renders_the_models_own_colour(embedded_assets, tmp_path, model_id):
    paths = write_model_files(tmp_path, material_colour=(0.8, 0.05, 0.05))
    if model_id == "obj":  # ShapeNet's OBJ files carry their materials in an MTL file
        obj = paths["obj"]
        obj.with_suffix(".mtl").write_text("newmtl red\nKd 0.8 0.05 0.05\n")
        obj.write_text(f"mtllib {obj.with_suffix('.mtl').name}\nusemtl red\n" + obj.read_text())
    models = write_model_table(tmp_path, {model_id: paths[model_id]})
    settings = schema_defaults(
        "render", {"width": 64, "height": 64, "samples": 4, "denoise": False, "keep_materials": True}
    )
    table, _ = render_shard(
        "train",
        "thing",
        range(2),
        ShardAssets(
            catalog.models_of(models, "thing"),
            split_of(embedded_assets, "textures"),
            split_of(embedded_assets, "backgrounds"),
        ),
        settings,
        0,
        tmp_path / "shard",
    )
    for record in table.to_dict("records"):
        pixels = cv2.imread(record["render_path"], cv2.IMREAD_UNCHANGED)[read_mask(record)].astype(float)
        blue, green, red = pixels[:, 0].mean(), pixels[:, 1].mean(), pixels[:, 2].mean()
        assert red > 2 * max(green, blue), (red, green, blue)
        assert record["texture_path"] == "" and record["texture_class"] == ""


@pytest.mark.parametrize("texture_mapping", ["smart_uv", "uv", "box"])
def test_texture_mappings_put_the_texture_on_a_mesh_without_uvs(embedded_assets, tmp_path, texture_mapping):
    """An OFF mesh has no UV map: every mapping must still spread a black-and-white checker over the object
    (a missing UV map would read one texel and paint the whole object one colour)."""
    vertices, faces = truth_mesh()
    meshes.write_off(tmp_path / "model.off", vertices, faces)
    checker = np.kron((np.indices((8, 8)).sum(axis=0) % 2) * 255, np.ones((16, 16))).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "checker.png"), np.dstack([checker] * 3))
    textures = pd.DataFrame({"path": [str(tmp_path / "checker.png")], "texture_class": ["checker"], "split": ["train"]})
    models = write_model_table(tmp_path, {"model": tmp_path / "model.off"})
    settings = schema_defaults(
        "render", {"width": 96, "height": 96, "samples": 8, "denoise": False, "texture_mapping": texture_mapping}
    )
    table, _ = render_shard(
        "train",
        "thing",
        range(2),
        ShardAssets(catalog.models_of(models, "thing"), textures, split_of(embedded_assets, "backgrounds")),
        settings,
        0,
        tmp_path / "shard",
    )
    for record in table.to_dict("records"):
        grey = cv2.imread(record["render_path"], cv2.IMREAD_GRAYSCALE)[read_mask(record)]
        # Shading alone spreads a flat texture over about 70 grey levels; black and white squares span 200.
        darkest, brightest = np.percentile(grey, [5, 95])
        assert darkest < 70 and brightest > 200, (texture_mapping, darkest, brightest)


def ray_box_depth(record, box_min, box_max):
    """Depth (camera z) of the first hit of each pixel centre's ray with an axis-aligned box; NaN for misses."""
    K, R, t = matrix(record, "K"), matrix(record, "R"), matrix(record, "t")
    v, u = np.mgrid[0 : record["height"], 0 : record["width"]] + 0.5
    rays = np.stack([u, v, np.ones_like(u)], axis=-1) @ np.linalg.inv(K).T  # camera z = 1
    directions, origin = rays @ R, -R.T @ t  # in the object frame
    with np.errstate(divide="ignore", invalid="ignore"):
        low, high = (box_min - origin) / directions, (box_max - origin) / directions
    near = np.minimum(low, high).max(axis=-1)
    far = np.maximum(low, high).min(axis=-1)
    return np.where((near <= far) & (near > 0), near, np.nan)


@pytest.mark.parametrize("depth_format", ["png16", "exr"])
def test_depth_map_is_the_distance_along_the_optical_axis(embedded_assets, tmp_path, depth_format):
    cube_vertices, cube_faces = procedural_meshes.box((0, 0, 0), (1, 1, 1))
    meshes.write_off(tmp_path / "cube.off", cube_vertices, cube_faces)
    models = write_model_table(tmp_path, {"cube": tmp_path / "cube.off"})
    settings = schema_defaults(
        "render",
        {
            "width": 64,
            "height": 64,
            "samples": 2,
            "denoise": False,
            "depth": depth_format,
            "viewpoint": {"theta_sd_deg": 15.0},
        },
    )
    table, _ = render_shard(
        "train",
        "thing",
        range(3),
        ShardAssets(
            catalog.models_of(models, "thing"),
            split_of(embedded_assets, "textures"),
            split_of(embedded_assets, "backgrounds"),
        ),
        settings,
        0,
        tmp_path / "shard",
    )
    for record in table.to_dict("records"):
        assert record["depth_path"].endswith(f"_depth.{depth_format.removesuffix('16')}")
        if depth_format == "png16":
            stored = cv2.imread(record["depth_path"], cv2.IMREAD_UNCHANGED)
            assert stored.dtype == np.uint16 and record["depth_scale"] == DEPTH_SCALE
            depth = np.where(stored > 0, stored * record["depth_scale"], np.nan)
        else:
            depth = read_depth_exr(record["depth_path"])
            depth = np.where(depth < 1e9, depth, np.nan)
        expected = ray_box_depth(record, np.full(3, -0.5), np.full(3, 0.5))
        # Interior pixels (away from the silhouette's edge) agree to the PNG's resolution.
        interior = cv2.erode(read_mask(record).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        assert np.isfinite(expected[interior]).all() and np.isfinite(depth[interior]).all()
        assert np.abs(depth[interior] - expected[interior]).max() < 2 * DEPTH_SCALE
        assert np.isnan(depth[~np.isfinite(expected)]).all()  # no depth where the ray misses the object


def test_environment_maps_light_the_object_and_are_drawn_per_image(embedded_assets, tmp_path):
    folder = tmp_path / "hdr"
    folder.mkdir()
    for name, colour in (("red", (0.0, 0.0, 4.0)), ("blue", (4.0, 0.0, 0.0))):  # OpenCV order: B, G, R
        cv2.imwrite(str(folder / f"{name}.hdr"), np.full((8, 16, 3), colour, np.float32))
    environments = catalog.index_environments(folder)
    white = tmp_path / "white.png"
    cv2.imwrite(str(white), np.full((8, 8, 3), 255, np.uint8))
    textures = pd.DataFrame({"path": [str(white)], "texture_class": ["white"], "split": ["train"]})
    vertices, faces = truth_mesh()
    meshes.write_off(tmp_path / "model.off", vertices, faces)
    models = write_model_table(tmp_path, {"model": tmp_path / "model.off"})
    settings = schema_defaults(
        "render", {"width": 48, "height": 48, "samples": 8, "denoise": False, "light": {"energy_w": 0.0}}
    )
    table, _ = render_shard(
        "train",
        "thing",
        range(6),
        ShardAssets(
            catalog.models_of(models, "thing"),
            textures,
            split_of(embedded_assets, "backgrounds"),
            environments=environments,
        ),
        settings,
        0,
        tmp_path / "shard",
    )
    assert set(table["environment_path"]) == set(environments["path"])  # both maps drawn in six images
    assert ((table["environment_rotation"] >= 0) & (table["environment_rotation"] < 2 * np.pi)).all()
    for record in table.to_dict("records"):
        pixels = cv2.imread(record["render_path"], cv2.IMREAD_UNCHANGED)[read_mask(record)].astype(float)
        red, blue = pixels[:, 2].mean(), pixels[:, 0].mean()
        assert (red > 3 * blue) if record["environment_path"].endswith("red.hdr") else (blue > 3 * red)


@pytest.mark.parametrize(
    "model_id, content",
    [
        ("glb", b"glTF\x02\x00\x00\x00 not really a binary glTF"),
        ("gltf", b'{"asset": {"version": "2.0"}, "meshes": [{"primitives": [{"attributes": {"POSITION": 7}}]}]}'),
        ("blend", b"BLENDER but not a blend file"),
        ("off", b"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 5\n"),
        ("obj", b"v 0 0 0\nv 1 0 0\nv 0 1 0\n"),
    ],
    ids=["glb", "gltf", "blend", "off", "obj"],
)
def test_broken_model_file_names_the_file_and_keeps_earlier_output(embedded_assets, tmp_path, model_id, content):
    path = tmp_path / f"broken.{model_id}"
    path.write_bytes(content)
    models = write_model_table(tmp_path, {model_id: path})
    out = tmp_path / "shard"
    out.mkdir()
    (out / "earlier.png").write_bytes(b"kept")
    with pytest.raises(RenderError, match=f"broken.{model_id}"):
        render_shard(
            "train",
            "thing",
            range(1),
            ShardAssets(
                catalog.models_of(models, "thing"),
                split_of(embedded_assets, "textures"),
                split_of(embedded_assets, "backgrounds"),
            ),
            RENDER,
            0,
            out,
        )
    assert (out / "earlier.png").read_bytes() == b"kept"
    assert not (tmp_path / "shard.partial").exists()


def test_model_table_errors_name_the_line(tmp_path):
    vertices, faces = truth_mesh()
    meshes.write_off(tmp_path / "model.off", vertices, faces)
    good = {
        "category": "thing",
        "model_id": "a",
        "path": "model.off",
        "azimuth_offset_deg": 0,
        "elevation_offset_deg": 0,
        "distance": 2,
        "sampling_mode": "1",
        "strength": 1,
        "keywords": "",
    }
    cases = [
        ({"path": "missing.off"}, r"line 3 .*missing.off does not exist"),
        ({"path": "model.stl"}, r"line 3 .*not a supported mesh format"),
        ({"forward_axis": "Y"}, r"line 3 .*both forward_axis and up_axis"),
        ({"forward_axis": "Z", "up_axis": "NEGATIVE_Z"}, r"line 3 .*must be different axes"),
        ({"distance": "far"}, r"line 3 .*must be numbers"),
    ]
    for change, message in cases:
        rows = [good, {**good, "model_id": "b", **change}]
        pd.DataFrame(rows).to_csv(tmp_path / "models.csv", index=False)
        with pytest.raises(catalog.AssetError, match=message):
            catalog.read_model_table(tmp_path / "models.csv")


def test_unreadable_texture_names_the_file(embedded_assets, tmp_path):
    """Blender loads a corrupt image as an empty one (rendered magenta); the render stage must stop instead."""
    broken = tmp_path / "images" / "banded" / "banded_0001.jpg"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a jpeg")
    textures = pd.DataFrame({"path": [str(broken)], "texture_class": ["banded"], "split": ["train"]})
    car = catalog.models_of(embedded_assets["models"], "car")
    with pytest.raises(RenderError, match="banded_0001.jpg cannot be read"):
        render_shard(
            "train",
            "car",
            range(1),
            ShardAssets(car, textures, split_of(embedded_assets, "backgrounds")),
            RENDER,
            0,
            tmp_path / "shard",
        )
    assert not (tmp_path / "shard").exists() and not (tmp_path / "shard.partial").exists()
