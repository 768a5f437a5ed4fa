"""NeMo's PyTorch3D side, run by the NeMo interpreter (`make test` calls it on tests/nemo): extrinsics and crop
cameras against dst3d.geometry and hand-computed values, rasterised visibility against the exact convex-cuboid
test, the reconstruction loss by hand, pose recovery by render-and-compare, CC3D's confidence ranking and
pseudo-label choice, and the checkpoint round trip with weights loaded from disk."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from dst3d import geometry
from dst3d.evaluate import pose_errors
from dst3d.nemo import raster, search, training
from dst3d.nemo.correspondence import visible_vertices
from dst3d.nemo.features import MemoryBank
from dst3d.nemo.mesh import cuboid_mesh

SEARCH = {"azimuths": 12, "elevations": [-0.2, 0.2, 0.6], "thetas": [0.0], "steps": 40, "lr": 0.05}
SIZE = 128


@pytest.fixture(scope="module")
def cuboid():
    mesh = cuboid_mesh(np.array([-0.5, -0.2, -0.15]), np.array([0.5, 0.2, 0.15]), 1000)
    return mesh, torch.from_numpy(mesh.vertices), torch.from_numpy(mesh.faces)


def _poses(count, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack(
        [
            rng.uniform(0, 2 * np.pi, count),
            rng.uniform(-0.5, 1.2, count),
            rng.uniform(-0.5, 0.5, count),
            rng.uniform(2.5, 4.0, count),
        ],
        axis=1,
    )


def test_extrinsics_are_the_projects_and_differentiable():
    poses = torch.tensor(_poses(6), requires_grad=True)
    R, t = raster.extrinsics(poses)
    for row, pose in enumerate(poses.detach().numpy()):
        R_cv, t_cv = geometry.extrinsics_cv(*pose)
        np.testing.assert_allclose(R[row].detach().numpy(), R_cv, atol=1e-12)
        np.testing.assert_allclose(t[row].detach().numpy(), t_cv, atol=1e-12)
    (R.sum() + t.sum()).backward()
    assert torch.isfinite(poses.grad).all() and (poses.grad.abs().sum(dim=0) > 0).all()


def test_crop_camera_by_hand():
    # A point projecting to pixel (70, 40) of a 200 x 100 image; the crop (50, 20)-(90, 60) at 80 pixels scales
    # by 2, so it lands at ((70 - 50) * 2, (40 - 20) * 2) = (40, 40).
    K = geometry.intrinsics(100.0, 200, 100)
    point = np.array([[(70 - 100) / 100.0, (40 - 50) / 100.0, 1.0]])
    K_crop = raster.crop_camera(K, (50.0, 20.0, 90.0, 60.0), 80)
    pixels, _ = geometry.project(point, K_crop, np.eye(3), np.zeros(3))
    np.testing.assert_allclose(pixels, [[40.0, 40.0]], atol=1e-12)
    np.testing.assert_allclose(raster.scaled_camera(torch.tensor(K_crop), 1 / 8).numpy()[:2], K_crop[:2] / 8)


def test_silhouette_lies_where_the_vertices_project(cuboid):
    mesh, vertices, faces = cuboid
    poses = torch.tensor(_poses(4, seed=1))
    R, t = raster.extrinsics(poses)
    K = torch.tensor(geometry.intrinsics(140.0, SIZE, SIZE)).expand(4, 3, 3)
    fragments = raster.rasterise(raster.meshes([vertices] * 4, [faces] * 4), R, t, K, (SIZE, SIZE))
    pixels, _ = raster.project(vertices.double(), R, t, K)
    for image in range(4):
        rows, columns = torch.nonzero(fragments.pix_to_face[image, ..., 0] >= 0, as_tuple=True)
        # Pixel j is covered when its centre j + 0.5 is inside: the covered span is the projected one, less up to
        # a pixel and a half at a corner's thin wedge, and never more (a half-pixel shift would break one side).
        for covered, projected in ((columns, pixels[image, :, 0]), (rows, pixels[image, :, 1])):
            assert 0 <= covered.min().item() + 0.5 - projected.min().item() <= 1.5
            assert 0 <= projected.max().item() - (covered.max().item() + 0.5) <= 1.5


def test_rasterised_visibility_agrees_with_the_convex_cuboid_test(cuboid):
    mesh, vertices, faces = cuboid
    poses = _poses(8, seed=2)
    R, t = raster.extrinsics(torch.tensor(poses))
    K = torch.tensor(geometry.intrinsics(140.0, SIZE, SIZE)).expand(8, 3, 3)
    found = raster.visible_points(raster.meshes([vertices] * 8, [faces] * 8), R, t, K, (SIZE, SIZE))
    for pose, (ids, points) in zip(poses, found, strict=True):
        facing = _facing(mesh.vertices, geometry.camera_center(pose[0], pose[1], pose[3]))
        exact = visible_vertices(mesh, geometry.camera_center(pose[0], pose[1], pose[3]))
        assert ((facing > 0) == exact).all()  # the two hand tests agree
        got = np.zeros(len(vertices), bool)
        got[ids.numpy()] = True
        # Faces seen nearly edge-on (under 15 degrees) project to slivers a rasteriser may or may not hit.
        clear = facing > math.sin(math.radians(15))
        assert (got & ~exact).sum() <= 0.01 * exact.sum(), "hidden vertices taken as visible"
        assert (got & clear).sum() >= 0.95 * clear.sum(), "visible vertices missed"
        pixels, _ = geometry.project(mesh.vertices[ids.numpy()], *_cv(pose, K[0]))
        np.testing.assert_allclose(points.numpy(), pixels, atol=1e-9)


def _facing(vertices, camera):
    """Per vertex of the cuboid, the largest cosine between an outward normal of a side it lies on and the
    direction to the camera (positive: on a side turned towards the camera)."""
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    best = np.full(len(vertices), -np.inf)
    for axis in range(3):
        for bound, sign in ((low, -1.0), (high, 1.0)):
            on_side = np.isclose(vertices[:, axis], bound[axis])
            towards = camera - vertices
            cosine = sign * towards[:, axis] / np.linalg.norm(towards, axis=1)
            best = np.where(on_side, np.maximum(best, cosine), best)
    return best


def _cv(pose, K):
    R, t = geometry.extrinsics_cv(*pose)
    return K.numpy(), R, t


def test_reconstruction_loss_by_hand():
    # Two cells, dim 2: the first on the silhouette with feature (1, 0) and rendered (0.6, 0.8): 0.6 against a
    # background score of 0.5 -> 0.6; the second off it -> its background score 0.2. Loss 1 - (0.6 + 0.2) / 2.
    features = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])  # 1 x 2 x 1 x 2
    rendered = torch.tensor([[[[0.6, 0.0]], [[0.8, 0.0]]]])
    silhouette = torch.tensor([[[True, False]]])
    background = torch.tensor([[[0.5, 0.2]]])
    loss = search.reconstruction_loss(features, rendered, silhouette, background)
    assert loss.item() == pytest.approx(0.6)
    # An occluder: background more like the cell than the rendered vertex counts as background.
    background = torch.tensor([[[0.9, 0.2]]])
    assert search.reconstruction_loss(features, rendered, silhouette, background).item() == pytest.approx(0.45)


def _rendered_scene(vertices, faces, bank, truths, K):
    """Feature maps that are the bank's vertex features rendered at ``truths`` on its first background feature."""
    count = len(truths)
    R, t = raster.extrinsics(truths)
    batch = raster.meshes([vertices] * count, [faces] * count)
    K_feature = raster.scaled_camera(K, 1 / 8).expand(count, 3, 3)
    fragments = raster.rasterise(batch, R, t, K_feature, (SIZE // 8, SIZE // 8))
    rendered, silhouette = raster.render_features(batch, [bank.vertex] * count, fragments)
    return torch.where(silhouette[:, None], rendered, bank.background[0].view(1, -1, 1, 1))


def test_search_recovers_a_known_pose_from_its_rendered_features(cuboid):
    _, vertices, faces = cuboid
    bank = MemoryBank(len(vertices), 64, 32, seed=1)
    K = torch.tensor(raster.centred_camera(SIZE, 2.0 * SIZE), dtype=torch.float32)
    truths = torch.tensor([[1.0, 0.4, 0.1, 0.0], [4.0, 0.1, -0.2, 0.0], [2.5, 0.7, 0.0, 0.0]])
    truths[:, 3] = search.fit_distance(vertices, truths[:, :3], K, SIZE / 1.2)
    maps = _rendered_scene(vertices, faces, bank, truths, K)
    count = len(truths)
    poses, losses = search.search(
        maps,
        [vertices] * count,
        [faces] * count,
        [bank.vertex] * count,
        [bank.background] * count,
        K,
        SIZE / 1.2,
        SEARCH,
    )
    errors = np.degrees(pose_errors(truths[:, :3].numpy(), poses[:, :3].numpy()))
    assert (errors < 5).all(), errors
    np.testing.assert_allclose(poses[:, 3].numpy(), truths[:, 3].numpy(), rtol=0.05)
    assert (losses < 0.05).all()


def test_fit_distance_gives_the_asked_size(cuboid):
    _, vertices, _ = cuboid
    K = torch.tensor(raster.centred_camera(SIZE, 2.0 * SIZE), dtype=torch.float64)
    angles = torch.tensor(_poses(5, seed=3)[:, :3])
    distance = search.fit_distance(vertices.double(), angles, K, 80.0)
    R, t = raster.extrinsics(torch.cat([angles, distance[:, None]], dim=1))
    pixels, _ = raster.project(vertices.double(), R, t, K.expand(5, 3, 3))
    np.testing.assert_allclose((pixels.amax(1) - pixels.amin(1)).amax(1).numpy(), 80.0, rtol=0.01)


def test_confidence_ranks_true_poses_above_perturbed_ones(cuboid):
    _, vertices, faces = cuboid
    bank = MemoryBank(len(vertices), 64, 32, seed=4)
    K = torch.tensor(raster.centred_camera(SIZE, 2.0 * SIZE), dtype=torch.float32)
    truths = torch.tensor([[0.5, 0.3, 0.0, 0.0], [3.0, 0.5, 0.1, 0.0]])
    truths[:, 3] = search.fit_distance(vertices, truths[:, :3], K, SIZE / 1.2)
    maps = _rendered_scene(vertices, faces, bank, truths, K)
    scores = {}
    for name, offset in {"truth": 0.0, "10 degrees": math.radians(10), "45 degrees": math.radians(45)}.items():
        poses = truths.clone()
        poses[:, 0] += offset
        scores[name] = training.confidence(maps, [vertices] * 2, [faces] * 2, [bank.vertex] * 2, poses, K)
    assert (scores["truth"] > scores["10 degrees"]).all() and (scores["10 degrees"] > scores["45 degrees"]).all()
    assert (scores["truth"] > 0.99).all()


def test_a_half_turn_keeps_the_silhouette_and_only_features_tell_front_from_back(cuboid):
    # Turned half way round its up axis, the cuboid covers exactly the same cells, so equation 6 averages over the
    # same silhouette and only the vertex features can tell the right pose from the half-turned one; with distinct
    # front and back features (here: rendered from the bank itself) the right pose scores far higher.
    _, vertices, faces = cuboid
    bank = MemoryBank(len(vertices), 64, 32, seed=6)
    K = torch.tensor(raster.centred_camera(SIZE, 2.0 * SIZE), dtype=torch.float32)
    truths = torch.tensor([[0.5, 0.3, 0.0, 0.0], [3.0, 0.5, 0.1, 0.0], [5.9, 0.2, -0.1, 0.0]])
    truths[:, 3] = search.fit_distance(vertices, truths[:, :3], K, SIZE / 1.2)
    turned = training.half_turn(truths)
    np.testing.assert_allclose(turned[:, 0].numpy(), np.remainder(truths[:, 0].numpy() + math.pi, 2 * math.pi))
    assert torch.equal(turned[:, 1:], truths[:, 1:])
    K_feature = raster.scaled_camera(K, 1 / 8)
    _, silhouette = search.render([vertices] * 3, [faces] * 3, [bank.vertex] * 3, truths, K_feature, (SIZE // 8,) * 2)
    _, flipped = search.render([vertices] * 3, [faces] * 3, [bank.vertex] * 3, turned, K_feature, (SIZE // 8,) * 2)
    assert torch.equal(silhouette, flipped)
    maps = _rendered_scene(vertices, faces, bank, truths, K)
    right = training.confidence(maps, [vertices] * 3, [faces] * 3, [bank.vertex] * 3, truths, K)
    wrong = training.confidence(maps, [vertices] * 3, [faces] * 3, [bank.vertex] * 3, turned, K)
    assert (right > 0.99).all() and (right - wrong > 0.5).all(), (right, wrong)


def test_checkpoint_round_trip_and_weights_from_disk(tmp_path, monkeypatch, cuboid):
    mesh, _, _ = cuboid
    settings = {
        "backbone": "resnet18",
        "pretrained": True,
        "feature_dim": 16,
        "background_features": 8,
        "bank_momentum": 0.9,
        "neighbour_distance": 0.1,
        "device": "cpu",
    }
    # ImageNet weights come from the torch cache only: a file the test writes there is what gets loaded.
    from dst3d.torch_compat import import_torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    torch.hub.set_dir(str(tmp_path / "torch" / "hub"))
    from dst3d.training.loop import PretrainedWeightsMissing, pretrained_weights_path

    with pytest.raises(PretrainedWeightsMissing, match="nemo.pretrained"):
        training.build({"car": mesh}, settings, seed=0)
    weights = import_torchvision().models.resnet18(weights=None).state_dict()
    weights["conv1.weight"] = torch.full_like(weights["conv1.weight"], 0.25)
    cached, _ = pretrained_weights_path("resnet18")
    cached.parent.mkdir(parents=True)
    torch.save(weights, cached)
    model = training.build({"car": mesh}, settings, seed=0)
    assert torch.equal(model.net.stem[0].weight, weights["conv1.weight"])

    model.banks["car"].update(torch.randn(3, 16), torch.tensor([0, 1, 2]), torch.randn(5, 16))
    training.save(tmp_path / "model.pt", model, {"variant": "composite-kcf"})
    loaded, checkpoint = training.load(tmp_path / "model.pt")
    assert checkpoint["variant"] == "composite-kcf" and checkpoint["estimator"] == "nemo"
    assert torch.equal(loaded.banks["car"].vertex, model.banks["car"].vertex)
    assert torch.equal(loaded.banks["car"].background, model.banks["car"].background)
    assert loaded.banks["car"]._next == model.banks["car"]._next == 5
    np.testing.assert_array_equal(loaded.meshes["car"].faces, mesh.faces)
    for key, value in model.net.state_dict().items():
        assert torch.equal(loaded.net.state_dict()[key], value), key


def test_pseudo_labels_keep_the_most_confident_per_category(cuboid, monkeypatch):
    table = pd.DataFrame({"image_id": list("abcde"), "category": ["car", "car", "car", "boat", "boat"]})
    predicted = pd.DataFrame(
        {
            "pred_azimuth": [0.1, 0.2, 0.3, 0.4, 0.5],
            "pred_elevation": 0.0,
            "pred_theta": 0.0,
            "pred_distance": 3.0,
            "loss": 0.1,
            "confidence": [0.2, 0.9, 0.5, 0.1, 0.3],
            "half_turn_confidence": [0.1, 0.85, 0.1, 0.0, 0.3],
        }
    )
    monkeypatch.setattr(training, "predict", lambda *args, **kwargs: predicted)
    crops = training.Crops(
        torch.zeros(5, 3, 8, 8, dtype=torch.uint8), table["category"].tolist(), torch.eye(3).expand(5, 3, 3), None
    )
    chosen, labelled = training.pseudo_labels(None, table, crops, keep=2, batch_size=4, threads=1)
    assert chosen["image_id"].tolist() == ["b", "c", "d", "e"]
    assert labelled.categories == ["car", "car", "boat", "boat"]
    np.testing.assert_allclose(labelled.poses[:, 0].numpy(), [0.2, 0.3, 0.4, 0.5], atol=1e-6)
    # The table carries eq. 6 at the half-turned pose, for diagnosis only (the ranking is eq. 6's).
    np.testing.assert_allclose(chosen["half_turn_confidence"].to_numpy(), [0.85, 0.1, 0.0, 0.3])


def test_annotation_loss_is_lowest_for_the_true_label(cuboid, monkeypatch):
    # KCF with NeMo scores an image by the loss of its label: a wrong label (azimuth off by 90 or 180 degrees,
    # an image generated with its object turned) must score worse than the right one.
    mesh, vertices, faces = cuboid
    settings = {"backbone": "resnet18", "feature_dim": 64, "background_features": 32, "bank_momentum": 0.9}
    model = training.build({"car": mesh}, settings, seed=5)
    K = torch.tensor(raster.centred_camera(SIZE, 2.0 * SIZE), dtype=torch.float32)
    truths = torch.tensor([[0.8, 0.3, 0.0, 0.0], [2.0, 0.5, 0.1, 0.0]])
    truths[:, 3] = search.fit_distance(vertices, truths[:, :3], K, SIZE / 1.2)
    maps = _rendered_scene(vertices, faces, model.banks["car"], truths, K)
    monkeypatch.setattr(training, "feature_maps", lambda *args, **kwargs: maps)
    losses = {}
    for name, offset in {"right": 0.0, "90 degrees": math.pi / 2, "180 degrees": math.pi}.items():
        labels = truths.clone()
        labels[:, 0] += offset
        crops = training.Crops(
            torch.zeros(2, 3, SIZE, SIZE, dtype=torch.uint8), ["car", "car"], K.expand(2, 3, 3), labels
        )
        losses[name] = training.annotation_losses(model, crops, batch_size=2, threads=1)
    assert (losses["right"] < 0.01).all()
    assert (losses["90 degrees"] > losses["right"] + 0.05).all() and (
        losses["180 degrees"] > losses["right"] + 0.05
    ).all()


def test_front_view_by_hand():
    # Azimuth 0 looks at the front (-y) from (0, -3, 0): object +x is image right, +z image up. The front top
    # right corner (0.5, -0.2, 0.15) is 2.8 in front of the camera: u = 128 + 400 * 0.5 / 2.8 = 199.43,
    # v = 128 - 400 * 0.15 / 2.8 = 106.57; only the front face is visible.
    neural = cuboid_mesh(np.array([-0.5, -0.2, -0.15]), np.array([0.5, 0.2, 0.15]), 300)
    vertices, faces = torch.from_numpy(neural.vertices), torch.from_numpy(neural.faces)
    R, t = raster.extrinsics(torch.tensor([[0.0, 0.0, 0.0, 3.0]], dtype=torch.float64))
    K = torch.tensor(geometry.intrinsics(400.0, 256, 256))[None]
    ((ids, points),) = raster.visible_points(raster.meshes([vertices], [faces]), R, t, K, (256, 256))
    corner = int(np.argmin(np.linalg.norm(neural.vertices - np.array([0.5, -0.2, 0.15]), axis=1)))
    assert corner in ids.tolist()
    np.testing.assert_allclose(points[ids.tolist().index(corner)].numpy(), [128 + 200 / 2.8, 128 - 60 / 2.8], atol=1e-4)
    assert np.allclose(neural.vertices[ids.numpy(), 1], -0.2)


def test_domain_loss_by_hand(cuboid):
    # Equation 4 per correspondence: features (0, 1) at vertices whose features are (1, 0) and (0, 1): squared
    # distances 2 and 0, mean 1.
    mesh, _, _ = cuboid
    model = training.build(
        {"car": mesh},
        {"backbone": "resnet18", "feature_dim": 2, "background_features": 4, "bank_momentum": 0.9},
        seed=0,
    )
    model.banks["car"].vertex[:2] = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    found = [(torch.tensor([[0.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 1]), None)]
    assert training._domain(model, ["car"], found).item() == pytest.approx(1.0)


def test_real_objects_get_the_centred_camera_and_a_fitted_distance(cuboid, tmp_path):
    # A real-set table (no render camera, boxes in image pixels): the crop's camera is the centred one and the
    # distance the one at which the mesh fills the box's share of the crop (1 / context of it).
    import cv2

    mesh, vertices, _ = cuboid
    cv2.imwrite(str(tmp_path / "a.png"), np.full((90, 120, 3), 128, np.uint8))
    table = pd.DataFrame(
        {
            "image_id": ["a"],
            "image_path": [str(tmp_path / "a.png")],
            "category": ["car"],
            "bbox_x0": [20.0],
            "bbox_y0": [10.0],
            "bbox_x1": [80.0],
            "bbox_y1": [70.0],
            "azimuth": [0.7],
            "elevation": [0.3],
            "theta": [0.1],
            "distance": [5.0],
        }
    )
    crops = training.load_crops(table, {"car": mesh}, {"input_size": 64, "context": 1.25}, threads=1)
    camera = raster.centred_camera(64, training.CENTRED_FOCAL * 64)
    np.testing.assert_allclose(crops.cameras[0].numpy(), camera)
    R, t = raster.extrinsics(crops.poses.double())
    pixels, _ = raster.project(vertices.double(), R, t, torch.from_numpy(camera)[None])
    assert (pixels.amax(1) - pixels.amin(1)).amax().item() == pytest.approx(64 / 1.25, rel=0.01)
    np.testing.assert_allclose(crops.poses[0, :3].numpy(), [0.7, 0.3, 0.1], atol=1e-6)


def test_training_with_pseudo_labels_runs_and_moves_the_bank(cuboid):
    # The CC3D step at the smallest sizes (32 px: the last block is 1 x 1): 3 labelled crops in batches of 2 (a last
    # batch of one joins the one before) and one pseudo-labelled crop in the same forward pass.
    mesh, vertices, _ = cuboid
    settings = {
        "backbone": "resnet18",
        "feature_dim": 16,
        "background_features": 8,
        "bank_momentum": 0.5,
        "neighbour_distance": 0.1,
        "device": "cpu",
        "batch_size": 2,
        "background_per_image": 4,
        "weight_decay": 0.0,
    }
    model = training.build({"car": mesh}, settings, seed=0)
    K = torch.tensor(raster.centred_camera(32, 64.0), dtype=torch.float32)
    angles = torch.tensor([[0.3, 0.2, 0.0], [1.5, 0.4, 0.0], [3.0, 0.1, 0.0], [4.5, 0.3, 0.0]])
    poses = torch.cat([angles, search.fit_distance(vertices, angles, K, 32 / 1.2)[:, None]], dim=1)
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    crops = training.Crops(images, ["car"] * 4, K.expand(4, 3, 3).clone(), poses)
    before = model.banks["car"].vertex.clone()
    history = training.train(model, crops.subset([0, 1, 2]), 1, 0.001, 0, 1, pseudo=crops.subset([3]), alpha=1.0)
    assert len(history) == 1 and history[0]["domain"] > 0 and history[0]["contrastive"] > 0
    assert not torch.equal(before, model.banks["car"].vertex)
    assert torch.allclose(model.banks["car"].vertex.norm(dim=1), torch.ones(len(vertices)))
    assert training._batches([4, 5, 6, 7, 8], 2) == [[4, 5], [6, 7, 8]]
