"""NeMo's camera against Blender's pixels: the embedded models rendered by Blender, rasterised again by PyTorch3D
through dst3d.nemo.raster with the records' K, R, t, must give the Blender masks back (IoU at least 0.9).

PyTorch3D lives in the NeMo interpreter only (README, "NeMo"), so the rasterising half runs there, in a
subprocess; the Blender half runs here."""

import json
import subprocess

import cv2
import numpy as np
import pytest

from dst3d.render.annotations import matrix
from tests.conftest import RENDER
from tests.nemo_env import environment, nemo_python
from tests.test_render import _render, embedded_mesh

RASTERISE = """
import json, sys
import numpy as np, torch
from dst3d.nemo import raster
scene = np.load(sys.argv[1])
ious = []
for index in range(int(scene["count"])):
    vertices = torch.from_numpy(scene[f"vertices_{index}"]).float()
    faces = torch.from_numpy(scene[f"faces_{index}"]).long()
    K, R, t = (torch.from_numpy(scene[f"{key}_{index}"])[None].float() for key in ("K", "R", "t"))
    mask = scene[f"mask_{index}"]
    fragments = raster.rasterise(raster.meshes([vertices], [faces]), R, t, K, mask.shape)
    silhouette = (fragments.pix_to_face[0, ..., 0] >= 0).numpy()
    ious.append(float((silhouette & mask).sum() / (silhouette | mask).sum()))
print(json.dumps(ious))
"""


@pytest.mark.slow
def test_pytorch3d_rasterises_the_blender_masks_back(embedded_assets, tmp_path):
    models = embedded_assets["models"].set_index("model_id")
    arrays, names = {}, []
    for category in ("car", "chair", "airplane", "boat"):
        table = _render(embedded_assets, RENDER, category, range(0, 3), tmp_path / category)[0]
        for record in table.to_dict("records"):
            index = len(names)
            vertices, faces = embedded_mesh(models, record["model_id"])
            arrays.update(
                {
                    f"vertices_{index}": vertices.astype(np.float32),
                    f"faces_{index}": np.asarray(faces, np.int64),
                    f"K_{index}": matrix(record, "K"),
                    f"R_{index}": matrix(record, "R"),
                    f"t_{index}": np.asarray(record["t"], float),
                    f"mask_{index}": cv2.imread(record["mask_path"], cv2.IMREAD_GRAYSCALE) > 0,
                }
            )
            names.append(record["image_id"])
    np.savez(tmp_path / "scene.npz", count=len(names), **arrays)
    done = subprocess.run(
        [nemo_python(), "-P", "-c", RASTERISE, str(tmp_path / "scene.npz")],
        capture_output=True,
        text=True,
        env=environment(),
    )
    assert done.returncode == 0, done.stderr
    ious = dict(zip(names, json.loads(done.stdout), strict=True))
    assert min(ious.values()) >= 0.9, ious
    # A camera half a pixel off would still pass 0.9 on 96-pixel renders; the mean says it is not.
    assert np.mean(list(ious.values())) >= 0.95, ious
