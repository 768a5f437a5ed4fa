"""Which feature-map cell each neural-mesh vertex lands in under a pose, and what CC3D computes from those pairs:
the self-consistency confidence of a predicted pose (P3D-Diffusion, equation 6), the domain-consistency loss
(equation 4) and the choice of the most confident pseudo-labels per category.

Correspondences here are vertex projections: the visible vertices (the neural mesh is a cuboid, so a vertex is
visible exactly when it lies on a face turned towards the camera) projected with the project's camera
(``dst3d.geometry``: PASCAL3D+ angles, OpenCV ``K, R, t``) and paired with the stride-8 cell they fall in. The
full NeMo path assigns every foreground cell by rasterising the mesh (PyTorch3D); that is not built yet.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from dst3d import geometry
from dst3d.nemo.features import STRIDE, MemoryBank
from dst3d.nemo.mesh import NeuralMesh


def visible_vertices(neural: NeuralMesh, camera_center: np.ndarray) -> np.ndarray:
    """Per vertex, whether it lies on a cuboid face that faces ``camera_center`` (object frame)."""
    vertices = neural.vertices.astype(float)
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    tolerance = 1e-6 * float(np.max(high - low))
    camera_center = np.asarray(camera_center, float)
    on_low = (np.abs(vertices - low) <= tolerance) & (camera_center < low)
    on_high = (np.abs(vertices - high) <= tolerance) & (camera_center > high)
    return (on_low | on_high).any(axis=1)


def vertex_cells(
    neural: NeuralMesh,
    pose: tuple[float, float, float, float],
    K: np.ndarray,
    feature_shape: tuple[int, int],
    stride: int = STRIDE,
) -> tuple[np.ndarray, np.ndarray]:
    """The visible vertices under ``pose`` (azimuth, elevation, theta in radians, distance) that project inside a
    feature map of ``feature_shape`` (rows, columns; ``stride`` image pixels per cell) with intrinsics ``K``:
    (their vertex indices, their cells as (row, column) pairs)."""
    azimuth, elevation, theta, distance = pose
    R, t = geometry.extrinsics_cv(azimuth, elevation, theta, distance)
    pixels, depth = geometry.project(neural.vertices, K, R, t)
    cells = np.floor(pixels[:, ::-1] / stride).astype(int)  # (row, column)
    rows, columns = feature_shape
    inside = (cells[:, 0] >= 0) & (cells[:, 0] < rows) & (cells[:, 1] >= 0) & (cells[:, 1] < columns)
    keep = visible_vertices(neural, geometry.camera_center(azimuth, elevation, distance)) & inside & (depth > 0)
    return np.flatnonzero(keep), cells[keep]


def gather(feature_map: torch.Tensor, cells: np.ndarray) -> torch.Tensor:
    """The features (N x dim) of a dim x rows x columns map at ``cells`` (N x 2 rows and columns)."""
    rows, columns = torch.as_tensor(cells[:, 0]), torch.as_tensor(cells[:, 1])
    return feature_map[:, rows, columns].T


def confidence(
    feature_map: torch.Tensor, neural: NeuralMesh, bank: MemoryBank, pose, K: np.ndarray, stride: int = STRIDE
) -> float:
    """Equation 6: the mean of ``f_i . C_r`` over the cells ``i`` the visible vertices ``r`` land in under
    ``pose`` (unit features both); 0 when no vertex lands in the map."""
    ids, cells = vertex_cells(neural, pose, K, tuple(feature_map.shape[-2:]), stride)
    if len(ids) == 0:
        return 0.0
    return float((gather(feature_map, cells) * bank.vertex[torch.as_tensor(ids)]).sum(dim=1).mean())


def domain_loss(features: torch.Tensor, vertex_ids: torch.Tensor, bank: MemoryBank) -> torch.Tensor:
    """Equation 4: the summed squared distance of a real image's features (N x dim) to their vertices'."""
    return ((features - bank.vertex[vertex_ids]) ** 2).sum()


def most_confident(scores: pd.DataFrame, keep: int) -> pd.DataFrame:
    """Per ``category``, the ``keep`` rows with the highest ``confidence`` (ties: the earlier row), in their
    original order: CC3D's pseudo-labels (100 per category in the paper)."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    ranked = scores.assign(_order=np.arange(len(scores))).sort_values(
        ["category", "confidence", "_order"], ascending=[True, False, True], kind="stable"
    )
    chosen = ranked.groupby("category", sort=False).head(keep)
    return scores.loc[chosen.sort_values("_order").index]
