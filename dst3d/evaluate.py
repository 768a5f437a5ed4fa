"""Pose metrics (PASCAL3D+ protocol): geodesic error, Acc@pi/6, Acc@pi/18, median error in degrees, per
category and overall. Two overall means are reported, because codebases disagree on which one "mean" is:
``mean (pooled)`` over all images, and ``mean (per-category)``, the unweighted mean of the category rows.

Evaluation runs a checkpoint on an image table (the held-out synthetic split or a real set read by
:mod:`dst3d.inputs.datasets`); every metrics row names the checkpoint's file hash and data manifest hash, so a table
row traces back to the exact model and training set.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import torch

POOLED = "mean (pooled)"
PER_CATEGORY = "mean (per-category)"
#: Name of the held-out synthetic split in the ``eval_set`` column of the metrics tables.
SYNTHETIC_TEST = "synthetic-test"


def pose_errors(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Geodesic errors (radians) between N x 3 (azimuth, elevation, theta) arrays, :func:`dst3d.geometry.pose_error`
    for all rows at once: the angle of the relative rotation of the two ``rotation_gl`` rotations (scipy's
    intrinsic ZXZ Euler angles theta, e - pi/2, -a)."""
    from scipy.spatial.transform import Rotation

    def rotations(poses: np.ndarray) -> Rotation:
        poses = np.asarray(poses, dtype=float).reshape(-1, 3)
        return Rotation.from_euler("ZXZ", np.stack([poses[:, 2], poses[:, 1] - np.pi / 2, -poses[:, 0]], axis=1))

    return (rotations(predicted).inv() * rotations(truth)).magnitude()


def _row(name: str, errors: np.ndarray) -> dict:
    return {
        "category": name,
        "images": len(errors),
        "acc_pi_6": float(np.mean(errors < np.pi / 6)),
        "acc_pi_18": float(np.mean(errors < np.pi / 18)),
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


def evaluation_set(real_set: dict | None, categories: list[str], shards: list[str] | None) -> tuple[str, pd.DataFrame]:
    """(eval_set name, object table) of an evaluation job: a real set entry read by its reader, or the held-out
    synthetic split's shard tables in image-id order."""
    if real_set is not None:
        from dst3d.inputs import datasets

        return real_set["name"], datasets.load_real_set(real_set, categories)
    from dst3d.io import read_tables

    return SYNTHETIC_TEST, read_tables(shards).sort_values("image_id").reset_index(drop=True)


def table_logits(
    model: torch.nn.Module, settings: dict, frame: pd.DataFrame, batch_size: int, threads: int, flip: bool = False
) -> torch.Tensor:
    """The model's logits for the object crops of an image table, cut with its training ``settings``."""
    from dst3d.training import cropping, loop  # torch only where a model runs: the Snakefile imports this module

    return loop.predict_logits(
        model, cropping.crops(frame, settings, threads), settings["input_size"], batch_size, flip
    )


def predict_poses(
    model: torch.nn.Module, settings: dict, frame: pd.DataFrame, batch_size: int, flip: bool, threads: int
) -> pd.DataFrame:
    """Predicted poses and geodesic errors of every object of an image table (columns image_id, category,
    azimuth, elevation, theta, the box, image_path), with the model's training ``settings`` (crop size and
    context)."""
    from dst3d.training import pose

    predicted = pose.decode(table_logits(model, settings, frame, batch_size, threads, flip))
    predictions = frame[["image_id", "category", "azimuth", "elevation", "theta"]].reset_index(drop=True)
    predictions[["pred_azimuth", "pred_elevation", "pred_theta"]] = predicted
    predictions["error"] = pose_errors(frame[["azimuth", "elevation", "theta"]].to_numpy(), predicted)
    return predictions


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (checkpoints are identified by it in the metrics tables)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def provenance_columns(
    table: pd.DataFrame, variant: str, eval_set: str, checkpoint: dict, checkpoint_path: str | Path
) -> pd.DataFrame:
    """``table`` with variant and evaluation set in front and the checkpoint's data manifest hash and file
    hash at the back: the columns every metrics CSV carries."""
    table = table.copy()
    table.insert(0, "variant", variant)
    table.insert(1, "eval_set", eval_set)
    table["manifest_hash"] = checkpoint["manifest_hash"]
    table["checkpoint_sha256"] = file_sha256(checkpoint_path)
    return table
