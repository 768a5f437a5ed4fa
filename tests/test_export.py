"""Exports read back by the reference tools: the COCO file through pycocotools, its masks against the renders'
and its camera reprojecting the model onto them."""

import hashlib
import json
import subprocess

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml
from pycocotools.coco import COCO
from test_render import embedded_mesh, rasterise, rendered  # noqa: F401 (rendered is a fixture)

from dst3d import geometry
from dst3d.export import (
    CUBOID_SKELETON,
    dataset_card,
    image_manifest,
    input_licences,
    write_bop,
    write_coco,
    write_nemo,
)
from dst3d.inputs.datasets import read_nemo

#: The render.axes block of the schema's defaults (OBJ files y up, as the embedded models are written).
RENDER_AXES = {"obj": {"forward": "NEGATIVE_Z", "up": "Y"}, "off": {"forward": "Y", "up": "Z"}}


@pytest.fixture(scope="module", params=[1, 2], ids=["render-size", "twice-the-render-size"])
def exported(rendered, tmp_path_factory, request):  # noqa: F811
    """The rendered records as a generated dataset at the render size, or at twice it (so that K must be scaled:
    a generated image need not have its render's size), exported."""
    scale = request.param
    out = tmp_path_factory.mktemp("export")
    records = pd.concat(rendered[1].values(), ignore_index=True)
    paths = []
    for record in records.itertuples():
        image = cv2.imread(record.render_path)
        path = out / "images" / f"{record.image_id}.png"
        path.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(path), cv2.resize(image, (scale * record.width, scale * record.height)))
        paths.append(str(path))
    records = records.assign(
        image_path=paths, image_width=scale * records["width"], image_height=scale * records["height"]
    )
    json_path = out / "coco" / "instances_train.json"
    write_coco(records, ["car", "chair", "airplane", "boat"], json_path, "test export")
    return records, json_path, scale


def test_coco_export_loads_in_pycocotools_with_masks_boxes_and_images(exported):
    records, json_path, _ = exported
    coco = COCO(str(json_path))
    assert len(coco.getImgIds()) == len(records) and len(coco.getAnnIds()) == len(records)
    assert [category["name"] for category in coco.loadCats(coco.getCatIds())] == ["car", "chair", "airplane", "boat"]
    by_key = records.set_index("image_id")
    for image in coco.loadImgs(coco.getImgIds()):
        record = by_key.loc[image["image_key"]]
        assert (json_path.parent / image["file_name"]).resolve() == (json_path.parent / record["image_path"]).resolve()
        (annotation,) = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
        decoded = coco.annToMask(annotation).astype(bool)
        mask = cv2.imread(record["mask_path"], cv2.IMREAD_GRAYSCALE) > 0
        expected = cv2.resize(mask.astype(np.uint8), (image["width"], image["height"]), interpolation=cv2.INTER_NEAREST)
        assert np.array_equal(decoded, expected > 0)
        ys, xs = np.nonzero(decoded)
        assert annotation["bbox"] == [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
        assert annotation["area"] == decoded.sum()
        assert coco.loadCats(annotation["category_id"])[0]["name"] == record["category"]
    assert coco.loadCats(1)[0]["skeleton"] == CUBOID_SKELETON and len(CUBOID_SKELETON) == 12


def test_coco_camera_reprojects_the_model_onto_the_mask_and_the_cuboid_keypoints(exported, embedded_assets):
    records, json_path, scale = exported
    dataset = json.loads(json_path.read_text())
    coco = COCO(str(json_path))
    models = embedded_assets["models"].set_index("model_id")
    images = {image["id"]: image for image in dataset["images"]}
    for annotation in dataset["annotations"]:
        image = images[annotation["image_id"]]
        camera = {
            "K": annotation["K"],
            "R": annotation["R"],
            "t": annotation["t"],
            "width": image["width"],
            "height": image["height"],
        }
        vertices, faces = embedded_mesh(models, annotation["model_id"])
        projected = rasterise(vertices, faces, camera)
        mask = coco.annToMask(annotation).astype(bool)
        iou = (projected & mask).sum() / (projected | mask).sum()
        # At twice the size the exported mask is the render's, enlarged (nearest): its steps cost thin parts IoU.
        assert iou >= (0.95 if scale == 1 else 0.9), (image["image_key"], iou)
        if scale == 2:  # the control: the render's own K, unscaled, misses the object at this size
            wrong = rasterise(
                vertices, faces, {**camera, "K": np.diag([0.5, 0.5, 1]) @ np.reshape(camera["K"], (3, 3))}
            )
            assert (wrong & mask).sum() / (wrong | mask).sum() < 0.5
        # The keypoints are the model's bounding-box corners under the same camera.
        corners = geometry.cuboid_corners(vertices.min(0), vertices.max(0))
        uv, _ = geometry.project(
            corners, *(np.reshape(camera[key], shape) for key, shape in (("K", (3, 3)), ("R", (3, 3)), ("t", (3,))))
        )
        keypoints = np.reshape(annotation["keypoints"], (8, 3))
        np.testing.assert_allclose(keypoints[:, :2], uv, atol=1e-3)
        assert set(keypoints[:, 2]) <= {1, 2}


def test_nemo_layout_reads_back_with_the_nemo_reader_and_reprojects_onto_the_mask(exported, embedded_assets, tmp_path):
    records, _, scale = exported
    models = embedded_assets["models"]
    out = tmp_path / "nemo"
    counts = write_nemo({"train": records}, models, out)
    assert counts == {"train": len(records)} and not (tmp_path / "nemo.partial").exists()
    read = read_nemo(out, "train", ["car", "chair", "airplane", "boat"])
    assert sorted(read["image_id"]) == sorted(f"{row.category}/{row.image_id}" for row in records.itertuples())
    by_key = records.set_index("image_id")
    models = models.set_index("model_id")
    cad = {"car": 0, "chair": 0, "airplane": 0, "boat": 0}
    for row in read.itertuples():
        record = by_key.loc[row.image_id.split("/", 1)[1]]
        mask = cv2.imread(record["mask_path"], cv2.IMREAD_GRAYSCALE) > 0
        mask = cv2.resize(mask.astype(np.uint8), (record["image_width"], record["image_height"]), cv2.INTER_NEAREST) > 0
        ys, xs = np.nonzero(mask)
        assert (row.bbox_x0, row.bbox_y0, row.bbox_x1, row.bbox_y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert (row.azimuth, row.elevation, row.theta, row.distance) == pytest.approx(
            (record["azimuth"], record["elevation"], record["theta"], record["distance"])
        )
        image = cv2.imread(str(out / "train" / "images" / row.image_id) + ".JPEG")
        assert image.shape[:2] == mask.shape
        # Reproject from the NeMo numbers alone: the angles and distance (the embedded models have no alignment
        # offsets), focal and principal point, as a NeMo loader given this focal would.
        with np.load(out / "train" / "annotations" / f"{row.image_id}.npz") as annotation:
            focal, (cx, cy), cad_index = (
                float(annotation["focal"]),
                annotation["principal"],
                int(annotation["cad_index"]),
            )
        R, t = geometry.extrinsics_cv(row.azimuth, row.elevation, row.theta, row.distance)
        K = np.array([[focal, 0, cx], [0, focal, cy], [0, 0, 1]])
        camera = {"K": K, "R": R, "t": t, "width": mask.shape[1], "height": mask.shape[0]}
        projected = rasterise(*embedded_mesh(models, record["model_id"]), camera)
        iou = (projected & mask).sum() / (projected | mask).sum()
        assert iou >= (0.95 if scale == 1 else 0.9), (row.image_id, iou)
        if row.Index == 0:  # the control: K scaled by 1.5 (focal and principal point) misses the mask
            wrong = rasterise(*embedded_mesh(models, record["model_id"]), {**camera, "K": np.diag([1.5, 1.5, 1]) @ K})
            assert (wrong & mask).sum() / (wrong | mask).sum() < 0.6
        # The subtype list that names the image is its model's, 1-based in the asset index's order.
        category_models = models[models["category"] == record["category"]].index.tolist()
        assert cad_index == category_models.index(record["model_id"]) + 1
        listed = (out / "train" / "lists" / record["category"] / f"mesh{cad_index:02d}.txt").read_text().split()
        assert record.name in listed
        cad[record["category"]] += 1
    assert all(cad.values())


def test_nemo_export_leaves_out_images_whose_object_left_the_frame(exported, embedded_assets, tmp_path):
    records, _, _ = exported
    gone = records.iloc[[0]].assign(bbox_x0=-1.0, bbox_y0=-1.0, bbox_x1=-1.0, bbox_y1=-1.0)
    records = pd.concat([gone, records.iloc[1:]], ignore_index=True)
    counts = write_nemo({"test": records}, embedded_assets["models"], tmp_path / "nemo")
    assert counts == {"test": len(records) - 1}
    assert not list((tmp_path / "nemo" / "test" / "annotations").rglob(f"{gone.iloc[0]['image_id']}.npz"))


def test_dataset_card_counts_what_was_exported_and_its_manifest_checks_with_sha256sum(exported, tmp_path):
    records, _, _ = exported
    folder = tmp_path / "export" / "composite-kcf"
    folder.mkdir(parents=True)
    kept = records[records["image_id"] != records["image_id"].iloc[0]]
    dropped_category = records["category"].iloc[0]
    manifest = image_manifest({"train": kept}, folder)
    (folder / "MANIFEST.sha256").write_text(manifest)
    check = subprocess.run(["sha256sum", "-c", "MANIFEST.sha256"], cwd=folder, capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout.count(": OK") == len(kept), check.stdout + check.stderr
    config = {
        "categories": ["car", "chair", "airplane", "boat"],
        "assets": {"source": "embedded"},
        "render": {"width": 64, "height": 64},
        "kcf": {"policy": {"mode": "fraction", "keep_fraction": 0.9, "scores": ["kcf"]}, "folds": 3},
    }
    card = dataset_card(
        "composite-kcf",
        {"train": kept},
        {"train": records},
        config,
        "composite",
        "abc123",
        "def456",
        hashlib.sha256(manifest.encode()).hexdigest(),
        ["coco", "nemo", "card"],
    )
    for category in config["categories"]:
        made = int((records["category"] == category).sum())
        exported_count = made - (category == dropped_category)
        assert f"| train | {category} | {made} | 0 | {exported_count} |" in card
    assert "no third-party content" in card and "3-fold held-out pose models" in card
    assert "`abc123`" in card and "`def456`" in card and hashlib.sha256(manifest.encode()).hexdigest() in card
    assert yaml.safe_load(card.split("```yaml\n", 1)[1].split("```", 1)[0]) == config  # the settings, readable
    # A diffusion backend's card names its models and their licence; a folder source asks for its licences.
    folders = {"source": "folders", "folders": {"models_format": "3d-dst", "shapenet_dir": "/data/shapenet"}}
    licences = input_licences(folders, "controlnet", {"base_model": "org/base", "controlnet_model": "org/canny"})
    assert "ShapeNet" in licences[0] and "`/data/shapenet`" in licences[1] and "`org/base`, `org/canny`" in licences[2]


def test_bop_layout_reprojects_the_ply_model_in_mm_onto_the_mask(exported, embedded_assets, tmp_path):
    """Read back as the BOP toolkit reads it: the scene JSONs by their string image ids, the model as a PLY file
    (here with trimesh), x = K (R X + t) with X and t in mm."""
    import trimesh

    records, _, scale = exported
    categories = ["car", "chair", "airplane", "boat"]
    out = tmp_path / "bop"
    counts = write_bop({"train": records}, embedded_assets["models"], RENDER_AXES, categories, out)
    assert counts == {"train": len(records)} and not (tmp_path / "bop.partial").exists()
    models_info = json.loads((out / "models" / "models_info.json").read_text())
    by_key = records.set_index("image_id")
    checked = 0
    for category in categories:
        scene = out / "train" / f"{categories.index(category) + 1:06d}"
        cameras = json.loads((scene / "scene_camera.json").read_text())
        ground_truth = json.loads((scene / "scene_gt.json").read_text())
        info = json.loads((scene / "scene_gt_info.json").read_text())
        keys = json.loads((scene / "image_keys.json").read_text())
        assert set(cameras) == set(ground_truth) == set(info) == set(keys)
        for im_id, key in keys.items():
            record = by_key.loc[key]
            assert record["category"] == category
            (gt,) = ground_truth[im_id]
            ply = trimesh.load(out / "models" / f"obj_{gt['obj_id']:06d}.ply", process=False)
            vertices, faces = np.asarray(ply.vertices, float), np.asarray(ply.faces)
            # The model is the normalised one in mm: its largest side 1000 mm, its diameter as models_info says.
            assert (vertices.max(0) - vertices.min(0)).max() == pytest.approx(1000, rel=1e-5)
            assert models_info[str(gt["obj_id"])]["diameter"] <= np.sqrt(3) * 1000
            K = np.reshape(cameras[im_id]["cam_K"], (3, 3))
            R, t = np.reshape(gt["cam_R_m2c"], (3, 3)), np.asarray(gt["cam_t_m2c"])
            assert np.linalg.norm(t) == pytest.approx(1000 * record["distance"], rel=1e-6)  # t in mm
            mask = cv2.imread(str(scene / "mask_visib" / f"{int(im_id):06d}_000000.png"), cv2.IMREAD_GRAYSCALE) > 0
            rgb = cv2.imread(str(scene / "rgb" / f"{int(im_id):06d}.png"))
            assert rgb.shape[:2] == mask.shape == (record["image_height"], record["image_width"])
            camera = {"K": K, "R": R, "t": t, "width": mask.shape[1], "height": mask.shape[0]}
            projected = rasterise(vertices, faces, camera)
            iou = (projected & mask).sum() / (projected | mask).sum()
            assert iou >= (0.95 if scale == 1 else 0.9), (key, iou)
            if checked == 0:  # the control: t in model units instead of mm puts the object 1000 times too close
                wrong = {**camera, "t": t / 1000}
                uv, depth = geometry.project(vertices, K, R, wrong["t"])
                assert (depth <= 0).any() or np.ptp(uv[:, 0]) > 10 * mask.shape[1]
            ys, xs = np.nonzero(mask)
            (entry,) = info[im_id]
            assert entry["bbox_visib"] == [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
            assert entry["px_count_visib"] == mask.sum()
            checked += 1
    assert checked == len(records)


def test_bop_export_refuses_stretched_renders(exported, embedded_assets, tmp_path):
    records, _, _ = exported
    stretched = records.assign(scale_x=np.where(records.index == 0, 1.2, 1.0))
    with pytest.raises(ValueError, match="render.stretch"):
        write_bop(
            {"train": stretched}, embedded_assets["models"], RENDER_AXES, ["car", "chair", "airplane", "boat"], tmp_path
        )
