"""NeMo's neural mesh geometry: per category, one cuboid covering the category's normalised CAD models, its
surface a regular grid of about ``vertices`` points (NeMo uses 1,000) split into outward-facing triangles.

The cuboid's extent comes from the models' bounding boxes in the canonical object frame (README, Conventions):
with ``coverage`` 1 the union of the boxes, with a smaller value the per-axis ``coverage`` quantile of the boxes'
far sides (and the ``1 - coverage`` one of their near sides), so one unusually long model does not stretch the
whole category's mesh. The grid spacing is the same on every face: the surface area divided by the vertex count
gives each vertex's share, and its square root the spacing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class NeuralMesh:
    """A closed triangle mesh: ``vertices`` (V x 3, float32, object frame) and ``faces`` (F x 3 vertex indices,
    counter-clockwise seen from outside, so every face normal points out of the cuboid)."""

    vertices: np.ndarray
    faces: np.ndarray


def category_extent(bbox_min: np.ndarray, bbox_max: np.ndarray, coverage: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The cuboid (its near and far corners) covering models whose boxes are the rows of ``bbox_min`` and
    ``bbox_max`` (M x 3 each); see the module docstring for ``coverage`` (in (0, 1])."""
    bbox_min, bbox_max = np.atleast_2d(np.asarray(bbox_min, float)), np.atleast_2d(np.asarray(bbox_max, float))
    if bbox_min.shape != bbox_max.shape or bbox_min.shape[1:] != (3,) or len(bbox_min) == 0:
        raise ValueError(f"expected M x 3 box corners for M >= 1 models, got {bbox_min.shape} and {bbox_max.shape}")
    if not 0 < coverage <= 1:
        raise ValueError(f"coverage must be in (0, 1], got {coverage}")
    if np.any(bbox_max <= bbox_min):
        raise ValueError("every model's box must have a positive size along each axis")
    low = np.quantile(bbox_min, 1 - coverage, axis=0)
    high = np.quantile(bbox_max, coverage, axis=0)
    return low, high


def cuboid_mesh(low: np.ndarray, high: np.ndarray, vertices: int = 1000) -> NeuralMesh:
    """The surface grid of the cuboid from ``low`` to ``high`` with about ``vertices`` vertices (at least the 8
    corners: 2 grid points per axis)."""
    low, high = np.asarray(low, float), np.asarray(high, float)
    size = high - low
    if low.shape != (3,) or np.any(size <= 0):
        raise ValueError(f"the cuboid needs low < high on each of 3 axes, got {low} and {high}")
    if vertices < 8:
        raise ValueError(f"a cuboid mesh has at least its 8 corners, asked for {vertices} vertices")
    area = 2 * (size[0] * size[1] + size[1] * size[2] + size[0] * size[2])
    spacing = np.sqrt(area / vertices)
    counts = np.maximum(np.floor(size / spacing).astype(int) + 1, 2)
    axes = [np.linspace(low[axis], high[axis], counts[axis]) for axis in range(3)]

    # Every grid point with at least one index on the boundary is a surface vertex.
    index = -np.ones(counts, dtype=np.int64)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in counts], indexing="ij"), axis=-1)
    on_surface = np.any((grid == 0) | (grid == counts - 1), axis=-1)
    index[on_surface] = np.arange(int(on_surface.sum()))
    points = np.stack([axes[axis][grid[on_surface][:, axis]] for axis in range(3)], axis=1)

    faces = []
    for axis in range(3):
        u, v = [other for other in range(3) if other != axis]
        for side, outward in ((0, -1), (counts[axis] - 1, 1)):
            plane = np.take(index, side, axis=axis)  # the face's grid, a (counts[u], counts[v]) array (u < v)
            a, b = plane[:-1, :-1].ravel(), plane[1:, :-1].ravel()
            c, d = plane[1:, 1:].ravel(), plane[:-1, 1:].ravel()
            # (u, v, axis) is right-handed for axis 0 (y, z, x) and 2 (x, y, z), left-handed for axis 1 (x, z, y):
            # a -> b -> c runs counter-clockwise about +axis when that triple is right-handed.
            counter_clockwise = (outward > 0) == (axis != 1)
            if counter_clockwise:
                faces += [np.stack([a, b, c], 1), np.stack([a, c, d], 1)]
            else:
                faces += [np.stack([a, c, b], 1), np.stack([a, d, c], 1)]
    return NeuralMesh(points.astype(np.float32), np.concatenate(faces).astype(np.int64))
