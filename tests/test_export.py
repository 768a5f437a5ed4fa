"""Exports read back by the reference tools: the COCO file through pycocotools, its masks against the renders'
and its camera reprojecting the model onto them."""

import json

import cv2
import numpy as np
import pandas as pd
import pytest
from pycocotools.coco import COCO
from test_render import embedded_mesh, rasterise, rendered  # noqa: F401 (rendered is a fixture)

from dst3d import geometry
from dst3d.export import CUBOID_SKELETON, write_coco


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
