"""What needs no rasteriser: the exact visibility of a cuboid's vertices (the neural mesh is convex, so a vertex
is visible exactly when it lies on a face turned towards the camera; the reference the rasterised visibility of
:mod:`dst3d.nemo.raster` is tested against) and CC3D's choice of the most confident pseudo-labels per category.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

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
