"""Pose metrics (PASCAL3D+ protocol): geodesic error, Acc@pi/6, Acc@pi/18, median error in degrees, per
category and overall. Two overall means are reported, because codebases disagree on which one "mean" is:
``mean (pooled)`` over all images, and ``mean (per-category)``, the unweighted mean of the category rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dst3d.geometry import pose_error

POOLED = "mean (pooled)"
PER_CATEGORY = "mean (per-category)"


def pose_errors(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Geodesic errors (radians) between N x 3 (azimuth, elevation, theta) arrays."""
    return np.array([pose_error(tuple(p), tuple(t)) for p, t in zip(predicted, truth)])


def _row(name: str, errors: np.ndarray) -> dict:
    return {
        "category": name, "images": len(errors),
        "acc_pi_6": float(np.mean(errors < np.pi / 6)), "acc_pi_18": float(np.mean(errors < np.pi / 18)),
        "median_error_deg": float(np.degrees(np.median(errors))),
    }


def metrics_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """Metrics per category, then the pooled and the per-category mean rows, from a table with columns
    category and error (radians)."""
    if predictions.empty:
        raise ValueError("no predictions to evaluate")
    rows = [_row(category, group["error"].to_numpy()) for category, group in predictions.groupby("category")]
    per_category = pd.DataFrame(rows)
    pooled = _row(POOLED, predictions["error"].to_numpy())
    mean_row = {"category": PER_CATEGORY, "images": int(per_category["images"].sum())}
    mean_row.update({key: float(per_category[key].mean()) for key in ("acc_pi_6", "acc_pi_18", "median_error_deg")})
    return pd.concat([per_category, pd.DataFrame([pooled, mean_row])], ignore_index=True)
