"""Blender (bpy) rendering of one shard in one Blender session.

The scene is built once per shard: a camera (lens/sensor from the config, principal point at the centre),
one large area light placed near the camera with jitter (3D-DST uses one large area light, P3D-Diffusion
lamps at the camera), a dim world for ambient fill and a transparent film. Each model of the shard is imported
once and normalised (largest bounding-box side 1, centred); per image only the camera, the light and the
texture image change, which costs nothing measurable next to the render itself.

Textures are put on the mesh with a box projection of object coordinates, so meshes need no UV map.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from dst3d import geometry
from dst3d.annotations import annotation_record, camera_of, plan_image
from dst3d.io import staged_directory

_log = logging.getLogger(__name__)


class RenderError(RuntimeError):
    """Rendering failed; the message names the model or file."""


def _bpy():
    import bpy  # imported lazily: loading Blender takes a second and only the render stage needs it

    return bpy


def _configure_scene(settings: dict, threads: int) -> None:
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
    scene.cycles.seed = 0
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
    scene.view_settings.view_transform = "Standard"  # keep texture colours as they are (AgX would tone-map)

    world = bpy.data.worlds.new("dst3d_world")
    scene.world = world
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (1.0, 1.0, 1.0, 1.0)
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = settings["light"]["ambient"]

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


def _make_material():
    bpy = _bpy()
    material = bpy.data.materials.new("dst3d_texture")
    nodes, links = material.node_tree.nodes, material.node_tree.links
    shader = nodes["Principled BSDF"]
    shader.inputs["Roughness"].default_value = 0.6
    coordinates = nodes.new("ShaderNodeTexCoord")
    mapping = nodes.new("ShaderNodeMapping")
    image_node = nodes.new("ShaderNodeTexImage")
    image_node.projection = "BOX"
    image_node.projection_blend = 0.25
    links.new(coordinates.outputs["Object"], mapping.inputs["Vector"])
    links.new(mapping.outputs["Vector"], image_node.inputs["Vector"])
    links.new(image_node.outputs["Color"], shader.inputs["Base Color"])
    return material, mapping, image_node


def _import_model(path: str, settings: dict):
    """Import a mesh file, join its objects, normalise it in place; returns (object, bbox_min, bbox_max)."""
    bpy = _bpy()
    if not os.path.isfile(path):
        raise RenderError(f"mesh file {path} does not exist: fix its path in the model table")
    before = set(bpy.data.objects)
    axes = settings["obj_axes"]
    bpy.ops.wm.obj_import(filepath=path, forward_axis=axes["forward"], up_axis=axes["up"])
    imported = [obj for obj in bpy.data.objects if obj not in before and obj.type == "MESH"]
    if not imported or sum(len(obj.data.vertices) for obj in imported) == 0:
        raise RenderError(f"mesh file {path} holds no mesh (corrupt or empty OBJ?): fix or remove it in the model table")
    for obj in imported:
        obj.data.transform(obj.matrix_world)
        obj.matrix_world.identity()
    if len(imported) > 1:
        with bpy.context.temp_override(active_object=imported[0], selected_editable_objects=imported):
            bpy.ops.object.join()
    model = imported[0]
    coordinates = np.empty(len(model.data.vertices) * 3)
    model.data.vertices.foreach_get("co", coordinates)
    coordinates = coordinates.reshape(-1, 3)
    low, high = coordinates.min(axis=0), coordinates.max(axis=0)
    largest_side = float((high - low).max())
    if not np.isfinite(largest_side) or largest_side <= 0:
        raise RenderError(f"mesh file {path} has a degenerate bounding box")
    coordinates = (coordinates - (low + high) / 2) / largest_side
    model.data.vertices.foreach_set("co", coordinates.reshape(-1))
    model.data.update()
    return model, coordinates.min(axis=0), coordinates.max(axis=0)


def _place(obj, azimuth: float, elevation: float, theta: float, distance: float) -> None:
    """Put a camera-like object (looking down its -z) at a PASCAL3D+ viewpoint, looking at the origin."""
    from mathutils import Matrix

    rotation = geometry.rotation_gl(azimuth, elevation, theta)
    world = np.eye(4)
    world[:3, :3] = rotation.T
    world[:3, 3] = geometry.camera_center(azimuth, elevation, distance)
    obj.matrix_world = Matrix(world.tolist())


def render_shard(
    split: str, category: str, indices: range, models: pd.DataFrame, textures: pd.DataFrame,
    backgrounds: pd.DataFrame, settings: dict, global_seed: int, image_dir: Path, threads: int = 1,
    log: logging.Logger = _log,
) -> tuple[pd.DataFrame, dict]:
    """Render the images ``indices`` of (split, category) into ``image_dir`` (created atomically).

    Writes ``<image_id>.png`` (RGBA, transparent film) and ``<image_id>_mask.png`` (255 = object) per image.
    Returns the shard's annotation table (sorted by index) and timing figures (seconds inside Blender's render
    call and in total), used by bench/render.
    """
    started = time.perf_counter()
    image_dir = Path(image_dir)
    plans = [plan_image(split, category, index, models, textures, backgrounds, settings, global_seed) for index in indices]

    with staged_directory(image_dir) as staging:
        records, render_seconds = _render_plans(plans, settings, threads, image_dir, staging, log)
    table = pd.DataFrame(records).sort_values("image_index").reset_index(drop=True)
    return table, {"images": len(plans), "render_s": render_seconds, "total_s": time.perf_counter() - started}


def _render_plans(plans: list[dict], settings: dict, threads: int, image_dir: Path, staging: Path, log) -> tuple[list[dict], float]:
    bpy = _bpy()
    width, height = settings["width"], settings["height"]
    _configure_scene(settings, threads)
    scene = bpy.context.scene
    material, mapping, image_node = _make_material()
    mapping.inputs["Scale"].default_value = (settings["texture_scale"],) * 3
    light = bpy.data.objects["dst3d_light"]
    records, render_seconds = [], 0.0
    current_path, model, bbox = None, None, None
    for plan in sorted(plans, key=lambda p: (p["model_id"], p["image_index"])):
        if plan["model_path"] != current_path:
            if model is not None:
                bpy.data.objects.remove(model, do_unlink=True)
            model, *bbox = _import_model(plan["model_path"], settings)
            model.data.materials.clear()
            model.data.materials.append(material)
            current_path = plan["model_path"]
        try:
            image_node.image = bpy.data.images.load(plan["texture_path"], check_existing=True)
        except RuntimeError as error:
            raise RenderError(f"texture {plan['texture_path']} cannot be read: {error}") from error
        _place(scene.camera, plan["render_azimuth"], plan["render_elevation"], plan["theta"], plan["distance"])
        _place(
            light, plan["render_azimuth"] + plan["light_azimuth"],
            float(np.clip(plan["render_elevation"] + plan["light_elevation"], -1.5, 1.5)), 0.0,
            plan["distance"] * settings["light"]["distance_factor"],
        )
        light.data.energy = plan["light_energy_w"]
        render_path = staging / f"{plan['image_id']}.png"
        scene.render.filepath = str(render_path)
        render_started = time.perf_counter()
        bpy.ops.render.render(write_still=True)
        render_seconds += time.perf_counter() - render_started

        rgba = cv2.imread(str(render_path), cv2.IMREAD_UNCHANGED)
        if rgba is None or rgba.ndim != 3 or rgba.shape[2] != 4:
            raise RenderError(f"Blender wrote no RGBA image for {plan['image_id']} (model {plan['model_path']})")
        mask = rgba[:, :, 3] >= 128
        mask_path = staging / f"{plan['image_id']}_mask.png"
        cv2.imwrite(str(mask_path), mask.astype(np.uint8) * 255)
        K, R, t = camera_of(plan, width, height, settings["lens_mm"], settings["sensor_width_mm"])
        final_dir = image_dir.as_posix()
        records.append(annotation_record(
            plan, K, R, t, width, height, bbox[0], bbox[1], mask,
            render_path=f"{final_dir}/{render_path.name}", mask_path=f"{final_dir}/{mask_path.name}",
        ))
        log.info("rendered %s (model %s, az %.1f el %.1f deg)", plan["image_id"], plan["model_id"],
                 np.rad2deg(plan["azimuth"]), np.rad2deg(plan["elevation"]))
    return records, render_seconds
