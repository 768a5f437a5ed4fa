"""NeMo's pieces that exist so far (dst3d.nemo): the cuboid neural mesh against hand-computed geometry, the
feature network's shape and norm, the memory bank's momentum update and background queue by hand, the
contrastive loss against its formula written out, vertex visibility against the annotations' cuboid corners,
and CC3D's choice of pseudo-labels. The PyTorch3D side (rasterisation, pose search, training, CC3D's confidence
and fine-tuning) is tested by the NeMo interpreter, tests/nemo."""

from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch

from dst3d import geometry
from dst3d.nemo import correspondence, features, mesh

LOW, HIGH = np.array([-0.5, -0.2, -0.15]), np.array([0.5, 0.2, 0.15])


def test_cuboid_mesh_grid_matches_the_hand_computed_counts():
    # Surface 2 (1 x 0.4 + 0.4 x 0.3 + 1 x 0.3) = 1.64; spacing sqrt(1.64 / 1000) = 0.0405 -> 25 x 10 x 8 grid
    # points; the surface ones: 25 * 10 * 8 - 23 * 8 * 6 = 896.
    neural = mesh.cuboid_mesh(LOW, HIGH, vertices=1000)
    assert neural.vertices.shape == (896, 3) and neural.vertices.dtype == np.float32
    for axis, count in enumerate((25, 10, 8)):
        assert np.allclose(np.unique(neural.vertices[:, axis]), np.linspace(LOW[axis], HIGH[axis], count), atol=1e-6)
    on_bound = np.isclose(neural.vertices, LOW, atol=1e-6) | np.isclose(neural.vertices, HIGH, atol=1e-6)
    assert on_bound.any(axis=1).all()  # every vertex on the surface
    corners = {tuple(np.round(c, 6)) for c in np.array(np.meshgrid(*zip(LOW, HIGH, strict=True))).T.reshape(-1, 3)}
    assert corners <= {tuple(np.round(v, 6)) for v in neural.vertices.astype(float)}
    # 2 triangles per grid square: 2 (24 x 9 + 9 x 7 + 24 x 7) x 2.
    assert len(neural.faces) == 2 * 2 * (24 * 9 + 9 * 7 + 24 * 7)


def test_cuboid_mesh_is_closed_outward_and_has_the_cuboid_area():
    neural = mesh.cuboid_mesh(LOW, HIGH, vertices=300)
    edges = Counter(tuple(sorted(edge)) for face in neural.faces for edge in zip(face, np.roll(face, -1), strict=True))
    assert set(edges.values()) == {2}  # every edge shared by two faces: closed
    assert len(neural.vertices) - len(edges) + len(neural.faces) == 2  # Euler characteristic of a sphere
    corners = neural.vertices[neural.faces].astype(float)
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    assert (np.einsum("ij,ij->i", normals, corners.mean(axis=1)) > 0).all()  # the cuboid is centred at 0
    assert np.isclose(np.linalg.norm(normals, axis=1).sum() / 2, 1.64)


def test_category_extent_is_the_union_or_the_coverage_quantile():
    bbox_min = np.array([[-0.5, -0.2, -0.1], [-0.4, -0.3, -0.2], [-0.3, -0.1, -0.3]])
    bbox_max = -bbox_min
    low, high = mesh.category_extent(bbox_min, bbox_max)
    assert np.allclose(low, [-0.5, -0.3, -0.3]) and np.allclose(high, [0.5, 0.3, 0.3])
    low, high = mesh.category_extent(bbox_min, bbox_max, coverage=0.5)  # the medians
    assert np.allclose(low, [-0.4, -0.2, -0.2]) and np.allclose(high, [0.4, 0.2, 0.2])
    with pytest.raises(ValueError, match="coverage"):
        mesh.category_extent(bbox_min, bbox_max, coverage=0)
    with pytest.raises(ValueError, match="positive size"):
        mesh.category_extent(bbox_max, bbox_min)
    with pytest.raises(ValueError, match="at least its 8 corners"):
        mesh.cuboid_mesh(LOW, HIGH, vertices=4)


def test_feature_net_gives_unit_features_at_stride_8():
    torch.manual_seed(0)
    network = features.FeatureNet("resnet18", dim=16).eval()
    with torch.no_grad():
        out = network(torch.rand(2, 3, 64, 96))
    assert out.shape == (2, 16, 64 // features.STRIDE, 96 // features.STRIDE)
    assert torch.allclose(out.norm(dim=1), torch.ones(2, 8, 12), atol=1e-5)
    with pytest.raises(ValueError, match="multiples of 32"):
        network(torch.rand(1, 3, 60, 64))
    with pytest.raises(ValueError, match="ResNet"):
        features.FeatureNet("swin_t")


def test_memory_bank_update_by_hand():
    bank = features.MemoryBank(vertices=3, dim=2, background=3, momentum=0.75)
    bank.vertex = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    seen = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    bank.update(seen, torch.tensor([0, 0, 2]), background=torch.tensor([[3.0, 4.0], [0.0, 2.0]]))
    # Vertex 0: 0.75 [1, 0] + 0.25 mean([1, 0], [0, 1]) = [0.875, 0.125]; vertex 2: 0.75 [-1, 0] + 0.25 [0, -1].
    assert torch.allclose(bank.vertex[0], torch.tensor([0.875, 0.125]) / np.hypot(0.875, 0.125))
    assert torch.allclose(bank.vertex[1], torch.tensor([0.0, 1.0]))  # not seen: unchanged
    assert torch.allclose(bank.vertex[2], torch.tensor([-0.75, -0.25]) / np.hypot(0.75, 0.25))
    assert torch.allclose(bank.background[:2], torch.tensor([[0.6, 0.8], [0.0, 1.0]]))
    bank.update(seen[:0], torch.tensor([], dtype=torch.long), background=torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
    # The queue holds 3: the third slot, then the oldest (the first) is replaced.
    assert torch.allclose(bank.background, torch.tensor([[-1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]))


def test_contrastive_loss_is_the_written_out_formula():
    torch.manual_seed(1)
    vertices = torch.tensor([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    neighbours = features.neighbour_mask(vertices, distance=0.15)
    assert neighbours.tolist() == [
        [False, True, False, False],
        [True, False, False, False],
        [False, False, False, False],
        [False, False, False, False],
    ]
    bank = features.MemoryBank(vertices=4, dim=8, background=5)
    image = torch.nn.functional.normalize(torch.randn(3, 8), dim=1)
    bank.vertex[1] = image[0]  # the first feature's neighbour matches it best: leaving it in would change the loss
    image.requires_grad_()
    ids = torch.tensor([0, 2, 3])
    loss = features.contrastive_loss(image, ids, bank, neighbours, temperature=0.1)
    expected = []
    for feature, k in zip(image.detach(), ids.tolist(), strict=True):
        negatives = [j for j in range(4) if not neighbours[k, j]]  # k itself kept
        logits = torch.cat([feature @ bank.vertex[negatives].T, feature @ bank.background.T]) / 0.1
        expected.append(torch.logsumexp(logits, 0) - feature @ bank.vertex[k] / 0.1)
    assert torch.allclose(loss, torch.stack(expected).mean(), atol=1e-5)
    loss.backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
    # A feature equal to its own vertex's scores lower than one equal to another vertex's.
    own = features.contrastive_loss(bank.vertex[[2]], torch.tensor([2]), bank, neighbours)
    other = features.contrastive_loss(bank.vertex[[3]], torch.tensor([2]), bank, neighbours)
    assert own < other


def test_visible_vertices_are_those_on_faces_turned_to_the_camera():
    neural = mesh.cuboid_mesh(LOW, HIGH, vertices=300)
    above = correspondence.visible_vertices(neural, np.array([0.0, 0.0, 5.0]))
    assert np.array_equal(above, np.isclose(neural.vertices[:, 2], HIGH[2]))  # straight above: the top face only
    center = geometry.camera_center(0.7, 0.4, 3.0)
    visible = correspondence.visible_vertices(neural, center)
    # The box's corners agree with the cuboid-corner visibility the annotations use.
    corners = geometry.cuboid_corners(LOW, HIGH)
    at = [int(np.argmin(np.linalg.norm(neural.vertices - corner, axis=1))) for corner in corners]
    assert np.array_equal(visible[at], geometry.cuboid_corner_visibility(LOW, HIGH, center))


def test_most_confident_keeps_the_highest_per_category_in_table_order():
    # Per category the highest scores are kept, in the table's order.
    table = pd.DataFrame({"image": list("abcdef"), "category": ["car", "car", "boat", "car", "boat", "boat"]}).assign(
        confidence=[0.2, 0.9, 0.5, 0.4, 0.5, 0.7]
    )
    chosen = correspondence.most_confident(table, keep=2)
    assert chosen["image"].tolist() == ["b", "c", "d", "f"]  # boat: f (0.7), then c before e (tie, earlier row)
    with pytest.raises(ValueError, match="keep"):
        correspondence.most_confident(table, keep=0)
