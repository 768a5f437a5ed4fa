"""Blender (bpy) rendering of one shard in one Blender session.

The scene is built once per shard: a camera (lens/sensor from the config, principal point at the centre),
one large area light placed near the camera with jitter (3D-DST uses one large area light, P3D-Diffusion
lamps at the camera), a world that is a uniform grey or an HDR environment map, and a transparent film;
Blender's stamp metadata is off, so no file carries a date, a render time or Cycles' statistics and the same
image always has the same bytes. Each model of the shard is imported once, turned into one mesh in the
canonical frame (file axes converted, modifiers, parenting and instancing applied, cameras/lights/empties of the
file dropped) and normalised (largest bounding-box side 1, centred, as 3D-DST); per image only the camera, the
light, the texture, the environment, the model's stretch and Cycles' seed change, which costs nothing
measurable next to the render itself.

:func:`render_shard` plans every image (:func:`dst3d.render.annotations.plan_image`, from the shard's
:class:`~dst3d.render.annotations.ShardAssets`), then renders the plans grouped by model in named steps:
:func:`_build_stage` (the scene, once), :func:`_switch_model` (when the model changes), :func:`_apply_plan`,
:func:`_render_image` (render, read back, mask) and :func:`_record` (the annotation record).

Mesh formats: OBJ (Blender's OBJ importer), glTF/GLB (Blender's glTF importer), OFF (:func:`dst3d.inputs.meshes.read_off`)
and ``.blend`` (mesh-like objects appended). Textures: a DTD image on the Principled BSDF's base colour, mapped
by a smart UV projection (P3D-Diffusion), the mesh's own UV map (smart projection where it has none) or a box
projection of object coordinates (no UVs needed); or the model's own materials (3D-DST). Optional depth: the Z
pass (distance along the optical axis, model units) written by the compositor.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from dst3d import geometry
from dst3d.inputs import meshes
from dst3d.inputs.meshes import model_axes
from dst3d.io import staged_directory
from dst3d.logs import Progress
from dst3d.render.annotations import (
    OFFICIAL_3D_DST,
    OFFICIAL_LIGHT_ENERGY_W,
    OFFICIAL_WORLD_GREY,
    ShardAssets,
    annotation_record,
    camera_of,
    plan_image,
)

_log = logging.getLogger(__name__)

#: Axes that Blender's importer of a format converts from by itself (the others read coordinates as stored).
IMPORTER_AXES = {"obj": meshes.Z_UP, "gltf": meshes.Y_UP, "off": meshes.Z_UP, "blend": meshes.Z_UP}
#: Object types that become part of the model; cameras, lights, empties and armatures of a file are dropped.
_GEOMETRY_TYPES = {"MESH", "CURVE", "SURFACE", "FONT", "META"}
#: Depth PNGs store depth / DEPTH_SCALE as uint16 (0 = no object): 1/1000 of the model's largest side.
DEPTH_SCALE = 0.001
_NO_DEPTH = 1e9  # Cycles writes 1e10 where no surface is hit
#: Blender's stamp metadata fields, all switched off (see :func:`_configure_scene`).
_STAMP_FLAGS = (
    "use_stamp_date",
    "use_stamp_time",
    "use_stamp_render_time",
    "use_stamp_frame",
    "use_stamp_frame_range",
    "use_stamp_memory",
    "use_stamp_hostname",
    "use_stamp_camera",
    "use_stamp_lens",
    "use_stamp_scene",
    "use_stamp_marker",
    "use_stamp_filename",
    "use_stamp_sequencer_strip",
    "use_stamp_note",
)


class RenderError(RuntimeError):
    """Rendering failed; the message names the model or file."""


def _bpy():
    import bpy  # imported lazily: loading Blender takes a second and only the render stage needs it

    return bpy


def _configure_scene(settings: dict, threads: int, with_environment: bool) -> None:
    bpy = _bpy()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.samples = settings["samples"]
    scene.cycles.use_adaptive_sampling = False
    scene.cycles.use_denoising = settings["denoise"]
    scene.cycles.max_bounces = settings["diffuse_bounces"] + settings["glossy_bounces"]
    scene.cycles.diffuse_bounces = settings["diffuse_bounces"]
    scene.cycles.glossy_bounces = settings["glossy_bounces"]
    scene.cycles.transmission_bounces = 0
    scene.cycles.volume_bounces = 0
    if settings["device"] == "gpu":
        _enable_gpu(scene)
    else:
        scene.cycles.device = "CPU"
    scene.render.threads_mode = "FIXED"
    scene.render.threads = max(1, threads)
    scene.render.film_transparent = True
    scene.render.resolution_x, scene.render.resolution_y = settings["width"], settings["height"]
    scene.render.resolution_percentage = 100
    scene.render.use_persistent_data = True
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.render.image_settings.color_depth = "8"
    # No metadata in the files, so the same image always has the same bytes. By default Blender writes the file
    # name, date, time, frame, camera, scene and render time as PNG text, and with them Cycles' statistics
    # ("cycles.ViewLayer.samples", "...total_time", "...render_time", "...synchronization_time"); with every
    # stamp field off it writes no text chunk at all, Cycles' included, and the depth EXRs lose their Date and
    # RenderTime attributes too (measured with bpy 5.0.1; only "Software" stays). use_stamp_labels stays on: off,
    # it sets a "hide labels" bit that brings the whole metadata block back.
    scene.render.use_stamp = False  # no text burnt into the pixels (off by default)
    for flag in _STAMP_FLAGS:
        setattr(scene.render, flag, False)
    official = settings.get("preset") == OFFICIAL_3D_DST
    # Standard keeps texture colours as they are (AgX would tone-map); the official scene has Blender 3.2's
    # default, Filmic, and its filter width and transparent/transmission bounces.
    scene.view_settings.view_transform = "Filmic" if official else "Standard"
    if official:
        scene.cycles.filter_width = 0.01
        scene.cycles.transparent_max_bounces = 3
        scene.cycles.transmission_bounces = 3

    world = bpy.data.worlds.new("dst3d_world")
    scene.world = world
    background = world.node_tree.nodes["Background"]
    if with_environment:
        nodes, links = world.node_tree.nodes, world.node_tree.links
        coordinates = nodes.new("ShaderNodeTexCoord")
        mapping = nodes.new("ShaderNodeMapping")
        mapping.name = "dst3d_environment_rotation"
        environment = nodes.new("ShaderNodeTexEnvironment")
        environment.name = "dst3d_environment"
        links.new(coordinates.outputs["Generated"], mapping.inputs["Vector"])
        links.new(mapping.outputs["Vector"], environment.inputs["Vector"])
        links.new(environment.outputs["Color"], background.inputs["Color"])
        background.inputs["Strength"].default_value = settings["environment_strength"]
        # The map's importance table is rebuilt whenever the map or its rotation changes, i.e. per image:
        # AUTOMATIC takes seconds for it, a fixed 512 table milliseconds (it only steers where samples go).
        world.cycles.sampling_method = "MANUAL"
        world.cycles.sample_map_resolution = 512
    elif official:  # Blender's startup world: a dark grey of strength 1
        background.inputs["Color"].default_value = (*OFFICIAL_WORLD_GREY, 1.0)
        background.inputs["Strength"].default_value = 1.0
    else:
        background.inputs["Color"].default_value = (1.0, 1.0, 1.0, 1.0)
        background.inputs["Strength"].default_value = settings["light"]["ambient"]

    camera_data = bpy.data.cameras.new("dst3d_camera")
    camera_data.lens = settings["lens_mm"]
    camera_data.sensor_width = settings["sensor_width_mm"]
    camera_data.sensor_fit = "HORIZONTAL"
    camera_data.clip_start, camera_data.clip_end = 0.01, 1000.0
    camera = bpy.data.objects.new("dst3d_camera", camera_data)
    scene.collection.objects.link(camera)
    scene.camera = camera

    light_data = bpy.data.lights.new("dst3d_light", type="AREA")
    light_data.size = settings["light"]["size"]
    light = bpy.data.objects.new("dst3d_light", light_data)
    light.visible_camera = False  # a large light near the camera can reach into the view; it must only light
    scene.collection.objects.link(light)
    if official:  # one fixed area light: 30 kW, 1 m scaled by 100, 0.5 above the origin, facing down
        light_data.size, light_data.energy = 1.0, OFFICIAL_LIGHT_ENERGY_W
        light.location, light.scale = (0.0, 0.0, 0.5), (100.0, 100.0, 100.0)
    if settings["depth"] != "none":
        _add_depth_output(scene)


def _add_depth_output(scene) -> None:
    """Compositor: the combined image passes through unchanged; the Z pass goes to a float EXR per image."""
    bpy = _bpy()
    scene.view_layers[0].use_pass_z = True
    tree = bpy.data.node_groups.new("dst3d_compositor", "CompositorNodeTree")
    scene.compositing_node_group = tree
    layers = tree.nodes.new("CompositorNodeRLayers")
    output = tree.nodes.new("NodeGroupOutput")
    tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    tree.links.new(layers.outputs["Image"], output.inputs[0])
    depth = tree.nodes.new("CompositorNodeOutputFile")
    depth.name = "dst3d_depth"
    depth.format.media_type = "IMAGE"
    depth.format.file_format = "OPEN_EXR"
    depth.format.color_depth = "32"
    depth.format.color_mode = "BW"
    depth.format.exr_codec = "ZIP"
    depth.file_output_items.new("FLOAT", "depth")
    tree.links.new(layers.outputs["Depth"], depth.inputs["depth"])


def _enable_gpu(scene) -> None:
    """Cycles on the first available CUDA/OptiX/HIP/oneAPI devices; fails clearly when there is none."""
    bpy = _bpy()
    preferences = bpy.context.preferences.addons["cycles"].preferences
    for backend in ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL"):
        try:
            preferences.compute_device_type = backend
        except TypeError:
            continue
        preferences.get_devices()
        devices = [device for device in preferences.devices if device.type == backend]
        if devices:
            for device in preferences.devices:
                device.use = device.type == backend
            scene.cycles.device = "GPU"
            return
    raise RenderError("render.device is 'gpu' but Cycles found no GPU device: set render.device: cpu")


def _make_material(texture_mapping: str, texture_scale: float):
    """The DTD texture material: an image on the base colour, by UV map or by box projection."""
    bpy = _bpy()
    material = bpy.data.materials.new("dst3d_texture")
    material.use_fake_user = True  # survives the purge of a finished model's data
    nodes, links = material.node_tree.nodes, material.node_tree.links
    shader = nodes["Principled BSDF"]
    shader.inputs["Roughness"].default_value = 0.6
    coordinates = nodes.new("ShaderNodeTexCoord")
    mapping = nodes.new("ShaderNodeMapping")
    mapping.inputs["Scale"].default_value = (texture_scale,) * 3
    image_node = nodes.new("ShaderNodeTexImage")
    if texture_mapping == "box":
        image_node.projection = "BOX"
        image_node.projection_blend = 0.25
        links.new(coordinates.outputs["Object"], mapping.inputs["Vector"])
    else:
        links.new(coordinates.outputs["UV"], mapping.inputs["Vector"])
    links.new(mapping.outputs["Vector"], image_node.inputs["Vector"])
    links.new(image_node.outputs["Color"], shader.inputs["Base Color"])
    return material, image_node


def _import_objects(path: str, file_format: str) -> tuple[list, list]:
    """Import a mesh file into the scene; returns (the new objects of the geometry types, all new objects).

    Nothing is removed yet: a part's placement can depend on a parent, its shape on an armature."""
    bpy = _bpy()
    before = set(bpy.data.objects)
    if file_format == "obj":
        bpy.ops.wm.obj_import(filepath=path, forward_axis="Y", up_axis="Z")
    elif file_format == "gltf":
        bpy.ops.import_scene.gltf(filepath=path)
    elif file_format == "off":
        vertices, faces = meshes.read_off(path)
        mesh = bpy.data.meshes.new(Path(path).stem)
        mesh.from_pydata(vertices.tolist(), [], faces.tolist())
        mesh.validate()
        obj = bpy.data.objects.new(Path(path).stem, mesh)
        bpy.context.scene.collection.objects.link(obj)
    elif file_format == "blend":
        with bpy.data.libraries.load(path, link=False) as (source, target):
            target.objects = list(source.objects)
        for obj in target.objects:
            if obj is not None and obj.type in _GEOMETRY_TYPES:
                bpy.context.scene.collection.objects.link(obj)
    else:
        raise RenderError(f"mesh file {path}: unknown format {file_format!r}")
    new_objects = [obj for obj in bpy.data.objects if obj not in before]
    parts = [obj for obj in new_objects if obj.type in _GEOMETRY_TYPES and obj.users_scene and not obj.hide_render]
    return parts, new_objects


def _import_model(path: str, file_format: str, axes: tuple[str, str], settings: dict):
    """Import a mesh file as one normalised mesh object in the canonical frame.

    ``axes`` are the file's (forward, up). Modifiers, parenting and instancing are applied, all parts are
    joined, then the mesh is centred and scaled so that its largest bounding-box side is 1.
    Returns (object, bbox_min, bbox_max) of the normalised mesh.
    """
    bpy = _bpy()
    from mathutils import Matrix

    if not os.path.isfile(path):
        raise RenderError(f"mesh file {path} does not exist: fix its path in the model table")
    path = os.path.abspath(path)  # index paths may be relative to the working folder; Blender wants them whole
    try:
        parts, imported = _import_objects(path, file_format)
    except (RuntimeError, OSError, ValueError) as error:
        raise RenderError(f"mesh file {path} cannot be imported (corrupt {file_format} file?): {error}") from error
    if not parts:
        raise RenderError(
            f"mesh file {path} holds no mesh (corrupt or empty {file_format} file?): "
            "fix or remove it in the model table"
        )
    # File axes -> canonical frame, undoing the importer's own conversion first.
    to_canonical = meshes.axis_matrix(*axes) @ meshes.axis_matrix(*IMPORTER_AXES[file_format]).T
    to_canonical_4 = Matrix([[*row, 0.0] for row in to_canonical.tolist()] + [[0.0, 0.0, 0.0, 1.0]])
    depsgraph = bpy.context.evaluated_depsgraph_get()
    joined = []
    for part in parts:
        evaluated = part.evaluated_get(depsgraph)
        mesh = bpy.data.meshes.new_from_object(evaluated, preserve_all_data_layers=True, depsgraph=depsgraph)
        if len(mesh.polygons):
            mesh.transform(to_canonical_4 @ evaluated.matrix_world)
            obj = bpy.data.objects.new(f"dst3d_part_{len(joined)}", mesh)
            bpy.context.scene.collection.objects.link(obj)
            joined.append(obj)
    bpy.data.batch_remove(imported)
    if not joined:
        raise RenderError(
            f"mesh file {path} holds no faces (corrupt or empty {file_format} file?): "
            "fix or remove it in the model table"
        )
    if len(joined) > 1:
        with bpy.context.temp_override(active_object=joined[0], selected_editable_objects=joined):
            bpy.ops.object.join()
    model = joined[0]
    model.name = "dst3d_model"
    coordinates = np.empty(len(model.data.vertices) * 3)
    model.data.vertices.foreach_get("co", coordinates)
    coordinates = coordinates.reshape(-1, 3)
    try:
        if not np.isfinite(coordinates).all():
            raise ValueError("mesh has non-finite vertex coordinates")
        centre, scale = meshes.normalisation(coordinates)
    except ValueError as error:
        raise RenderError(f"mesh file {path}: {error}: fix or remove it in the model table") from error
    coordinates = (coordinates - centre) * scale
    model.data.vertices.foreach_set("co", coordinates.reshape(-1))
    model.data.update()
    return model, coordinates.min(axis=0), coordinates.max(axis=0)


def _project_uvs(model, texture_mapping: str) -> None:
    """Give the model the UV map the material reads: a smart UV projection (``smart_uv``, or ``uv`` for a
    mesh without a UV map) with Blender's defaults (66 degree angle limit, no island margin)."""
    if texture_mapping == "box" or (texture_mapping == "uv" and len(model.data.uv_layers)):
        return
    bpy = _bpy()
    view_layer = bpy.context.view_layer
    view_layer.objects.active = model
    model.select_set(True)
    bpy.ops.object.mode_set(mode="EDIT")
    bpy.ops.mesh.select_all(action="SELECT")
    bpy.ops.uv.smart_project(angle_limit=math.radians(66.0), island_margin=0.0)
    bpy.ops.object.mode_set(mode="OBJECT")
    model.select_set(False)


def _load_image(path: str, what: str):
    """An image datablock (loaded once per shard); Blender returns an empty image for an unreadable file,
    which would render magenta, so that is an error naming the file."""
    bpy = _bpy()
    try:
        image = bpy.data.images.load(os.path.abspath(path), check_existing=True)
    except RuntimeError as error:
        raise RenderError(f"{what} {path} cannot be read: {error}") from error
    if 0 in image.size[:]:  # reading the size loads the file; an unreadable one has none
        raise RenderError(f"{what} {path} cannot be read (corrupt or not an image): replace or remove it")
    return image


def _place(obj, azimuth: float, elevation: float, theta: float, distance: float) -> None:
    """Put a camera-like object (looking down its -z) at a PASCAL3D+ viewpoint, looking at the origin."""
    from mathutils import Matrix

    rotation = geometry.rotation_gl(azimuth, elevation, theta)
    world = np.eye(4)
    world[:3, :3] = rotation.T
    world[:3, 3] = geometry.camera_center(azimuth, elevation, distance)
    obj.matrix_world = Matrix(world.tolist())


def render_shard(
    split: str,
    category: str,
    indices: range,
    assets: ShardAssets,
    settings: dict,
    global_seed: int,
    image_dir: Path,
    threads: int = 1,
    log: logging.Logger = _log,
) -> tuple[pd.DataFrame, dict]:
    """Render the images ``indices`` of (split, category) into ``image_dir`` (created atomically).

    Writes ``<image_id>.png`` (RGBA, transparent film) and ``<image_id>_mask.png`` (255 = object) per image,
    and ``<image_id>_depth.png`` (uint16, depth / DEPTH_SCALE, 0 = no object) or ``_depth.exr`` (float32,
    Cycles' 1e10 = no object) with ``render.depth``. ``assets`` are the category's models and the split's
    textures, backgrounds and environment maps (:class:`ShardAssets`; no environment maps: a uniform grey world).
    Returns the shard's annotation table (sorted by index) and timing figures in seconds: ``render_s`` inside
    Blender's render call, ``import_s`` importing models, ``setup_s`` building the scene (and loading Blender
    if not yet loaded), ``total_s`` the whole call (bench/render).
    """
    started = time.perf_counter()
    image_dir = Path(image_dir)
    plans = [plan_image(split, category, index, assets, settings, global_seed) for index in indices]
    model_rows = {row["model_id"]: row for row in assets.models.to_dict("records")}
    with staged_directory(image_dir) as staging:
        records, timing = _render_plans(
            plans, model_rows, settings, threads, image_dir, staging, assets.with_environment, log
        )
    table = pd.DataFrame(records).sort_values("image_index").reset_index(drop=True)
    return table, {"images": len(plans), **timing, "total_s": time.perf_counter() - started}


@dataclass(frozen=True)
class _Stage:
    """The shard's scene as built once, and the parts of it that the per-image steps change."""

    scene: Any
    material: Any  # the DTD texture material (unused with render.keep_materials)
    image_node: Any  # its image node, given each image's texture
    light: Any
    depth_output: Any | None  # the compositor's depth File Output node, with render.depth
    environment_node: Any | None  # the world's environment texture and its rotation, with environment maps
    environment_rotation: Any | None


@dataclass(frozen=True)
class _Model:
    """The model in the scene: its id and file (for messages), its normalised mesh object and bounding box."""

    model_id: str
    path: str
    obj: Any
    bbox_min: np.ndarray
    bbox_max: np.ndarray


def _build_stage(settings: dict, threads: int, with_environment: bool) -> _Stage:
    """A fresh scene (:func:`_configure_scene`) with the texture material, and the handles of what changes per image."""
    bpy = _bpy()
    _configure_scene(settings, threads, with_environment)
    scene = bpy.context.scene
    material, image_node = _make_material(settings["texture_mapping"], settings["texture_scale"])
    world_nodes = scene.world.node_tree.nodes
    return _Stage(
        scene=scene,
        material=material,
        image_node=image_node,
        light=bpy.data.objects["dst3d_light"],
        depth_output=scene.compositing_node_group.nodes["dst3d_depth"] if settings["depth"] != "none" else None,
        environment_node=world_nodes["dst3d_environment"] if with_environment else None,
        environment_rotation=world_nodes["dst3d_environment_rotation"] if with_environment else None,
    )


def _switch_model(stage: _Stage, previous: _Model | None, row: dict, settings: dict) -> _Model:
    """Replace the scene's model by the model of ``row``: the previous one is removed and its data purged, the
    new one imported (:func:`_import_model`) and, unless ``render.keep_materials``, given the texture material
    and the UV map it reads."""
    bpy = _bpy()
    if previous is not None:
        bpy.data.objects.remove(previous.obj, do_unlink=True)
        bpy.data.orphans_purge(do_recursive=True)
    obj, bbox_min, bbox_max = _import_model(row["path"], row["format"], model_axes(row, settings), settings)
    if not settings["keep_materials"]:
        obj.data.materials.clear()
        obj.data.materials.append(stage.material)
        _project_uvs(obj, settings["texture_mapping"])
    return _Model(row["model_id"], row["path"], obj, bbox_min, bbox_max)


def _apply_plan(stage: _Stage, model: _Model, plan: dict, settings: dict) -> None:
    """Set up the scene for one image: texture, environment map and its rotation, the model's stretch, camera,
    light (unless the official scene's fixed one) and Cycles' seed."""
    if not settings["keep_materials"]:
        stage.image_node.image = _load_image(plan["texture_path"], "texture")
    if stage.environment_node is not None:
        stage.environment_node.image = _load_image(plan["environment_path"], "environment map")
        stage.environment_rotation.inputs["Rotation"].default_value = (0.0, 0.0, plan["environment_rotation"])
    model.obj.scale = (plan["scale_x"], plan["scale_y"], plan["scale_z"])  # about the origin, the model's centre
    _place(stage.scene.camera, plan["render_azimuth"], plan["render_elevation"], plan["theta"], plan["distance"])
    if settings.get("preset") != OFFICIAL_3D_DST:  # the official light stays where it is
        _place(
            stage.light,
            plan["render_azimuth"] + plan["light_azimuth"],
            float(np.clip(plan["render_elevation"] + plan["light_elevation"], -1.5, 1.5)),
            0.0,
            plan["distance"] * settings["light"]["distance_factor"],
        )
        stage.light.data.energy = plan["light_energy_w"]
    stage.scene.cycles.seed = plan["seed"] % 2**31  # per-image noise, the same whatever the shard


def _render_image(stage: _Stage, plan: dict, staging: Path, model: _Model) -> tuple[Path, Path, np.ndarray, float]:
    """Render the scene as set up for ``plan`` into ``staging`` (and its depth EXR, with ``render.depth``), read
    the RGBA image back and write the object mask (alpha >= 128). Returns the render's and the mask's paths, the
    mask and the seconds spent in Blender's render call."""
    bpy = _bpy()
    render_path = staging / f"{plan['image_id']}.png"
    stage.scene.render.filepath = str(render_path)
    if stage.depth_output is not None:
        stage.depth_output.directory = str(staging)
        stage.depth_output.file_name = f"{plan['image_id']}_"
    render_started = time.perf_counter()
    bpy.ops.render.render(write_still=True)
    render_seconds = time.perf_counter() - render_started

    rgba = cv2.imread(str(render_path), cv2.IMREAD_UNCHANGED)  # None: no file, or not a readable image
    if rgba is None or rgba.ndim != 3 or rgba.shape[2] != 4:
        raise RenderError(f"Blender wrote no RGBA image for {plan['image_id']} (model {model.path})")
    mask = rgba[:, :, 3] >= 128
    mask_path = staging / f"{plan['image_id']}_mask.png"
    cv2.imwrite(str(mask_path), mask.astype(np.uint8) * 255)
    return render_path, mask_path, mask, render_seconds


def _record(
    plan: dict,
    settings: dict,
    model: _Model,
    mask: np.ndarray,
    image_dir: Path,
    render_path: Path,
    mask_path: Path,
    depth_name: str | None,
) -> dict:
    """The annotation record of a rendered image, its file paths in the published ``image_dir``."""
    width, height = settings["width"], settings["height"]
    final_dir = image_dir.as_posix()
    K, R, t = camera_of(plan, width, height, settings["lens_mm"], settings["sensor_width_mm"])
    return annotation_record(
        plan,
        K,
        R,
        t,
        width,
        height,
        model.bbox_min,
        model.bbox_max,
        mask,
        render_path=f"{final_dir}/{render_path.name}",
        mask_path=f"{final_dir}/{mask_path.name}",
        depth_path=f"{final_dir}/{depth_name}" if depth_name else None,
        depth_scale=DEPTH_SCALE if settings["depth"] == "png16" else (1.0 if depth_name else None),
    )


def _render_plans(
    plans: list[dict],
    model_rows: dict,
    settings: dict,
    threads: int,
    image_dir: Path,
    staging: Path,
    with_environment: bool,
    log,
) -> tuple[list[dict], dict]:
    """Render the plans in one scene, grouped by model (each model imported once), into ``staging``; returns
    their annotation records and the ``render_s``, ``import_s`` and ``setup_s`` timings."""
    setup_started = time.perf_counter()
    stage = _build_stage(settings, threads, with_environment)
    records, render_seconds, import_seconds = [], 0.0, 0.0
    setup_seconds = time.perf_counter() - setup_started
    model = None
    progress = Progress(log, len(plans), "images")
    for plan in sorted(plans, key=lambda p: (p["model_id"], p["image_index"])):
        if model is None or plan["model_id"] != model.model_id:
            import_started = time.perf_counter()
            model = _switch_model(stage, model, model_rows[plan["model_id"]], settings)
            import_seconds += time.perf_counter() - import_started
        _apply_plan(stage, model, plan, settings)
        render_path, mask_path, mask, seconds = _render_image(stage, plan, staging, model)
        render_seconds += seconds
        depth_name = (
            _finish_depth(staging, plan["image_id"], settings["depth"]) if stage.depth_output is not None else None
        )
        records.append(_record(plan, settings, model, mask, image_dir, render_path, mask_path, depth_name))
        log.info(
            "rendered %s (model %s, az %.1f el %.1f deg)",
            plan["image_id"],
            plan["model_id"],
            np.rad2deg(plan["azimuth"]),
            np.rad2deg(plan["elevation"]),
        )
        progress.step()
    return records, {"render_s": render_seconds, "import_s": import_seconds, "setup_s": setup_seconds}


def _finish_depth(staging: Path, image_id: str, depth_format: str) -> str:
    """The file name of an image's depth map: Blender's float EXR as written, or converted to a uint16 PNG."""
    exr = staging / f"{image_id}_depth.exr"
    if not exr.is_file():
        raise RenderError(f"Blender wrote no depth map for {image_id} ({exr})")
    if depth_format == "exr":
        return exr.name
    depth = read_depth_exr(exr)
    counts = np.where(depth < _NO_DEPTH, np.round(depth / DEPTH_SCALE), 0)
    png = staging / f"{image_id}_depth.png"
    cv2.imwrite(str(png), np.clip(counts, 0, 65535).astype(np.uint16))
    exr.unlink()
    return png.name


def read_depth_exr(path: Path) -> np.ndarray:
    """A depth EXR written by the render stage as an H x W float32 array (image rows top to bottom), via
    Blender's image loader (OpenCV's bundled OpenEXR does not read Blender 5's files)."""
    bpy = _bpy()
    image = bpy.data.images.load(str(path))
    try:
        width, height = image.size
        pixels = np.empty(width * height * image.channels, np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    return pixels.reshape(height, width, -1)[::-1, :, 0].copy()
