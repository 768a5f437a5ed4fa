"""The pose estimator of 3D-DST ("ResNet50-General"): a torchvision ResNet whose head classifies azimuth,
elevation and in-plane rotation into 41 bins each (123 outputs), trained with cross-entropy that ignores
out-of-range angles (index 41). The loop is :mod:`dst3d.training.loop`; this module is the task.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from dst3d import geometry
from dst3d.training.loop import Task

POSE_OUTPUTS = 3 * geometry.NUM_BINS


def pose_labels(frame: pd.DataFrame) -> np.ndarray:
    """N x 3 int64 bin labels (azimuth, elevation, theta) of the canonical poses in ``frame``."""
    return np.stack(
        [
            geometry.azimuth_to_bin(frame["azimuth"].to_numpy()),
            geometry.signed_angle_to_bin(frame["elevation"].to_numpy()),
            geometry.signed_angle_to_bin(frame["theta"].to_numpy()),
        ],
        axis=1,
    )


def pose_loss(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Sum over the three angles of the cross-entropy (ignore index 41). ``reduction='none'`` gives one
    value per image (the KCF score)."""
    losses = [
        F.cross_entropy(
            logits[:, k * geometry.NUM_BINS : (k + 1) * geometry.NUM_BINS],
            labels[:, k],
            ignore_index=geometry.IGNORE_INDEX,
            reduction="none",
        )
        for k in range(3)
    ]
    total = losses[0] + losses[1] + losses[2]
    return total.mean() if reduction == "mean" else total


POSE = Task("pose", POSE_OUTPUTS, pose_loss, theta_column=2)


def decode(logits: torch.Tensor) -> np.ndarray:
    """N x 3 predicted (azimuth, elevation, theta) in radians: centres of the arg-max bins."""
    bins = geometry.NUM_BINS
    return np.stack(
        [
            geometry.bin_to_azimuth(logits[:, :bins].argmax(1).numpy()),
            geometry.bin_to_signed_angle(logits[:, bins : 2 * bins].argmax(1).numpy()),
            geometry.bin_to_signed_angle(logits[:, 2 * bins :].argmax(1).numpy()),
        ],
        axis=1,
    )


def manifest_hash(frame: pd.DataFrame) -> str:
    """Hash of what a model is trained or scored on: image ids, paths and pose labels, in id order."""
    columns = ["image_id", "image_path", "azimuth", "elevation", "theta"]
    ordered = frame.sort_values("image_id")[columns]
    return hashlib.sha256(ordered.to_csv(index=False, float_format="%.9g").encode()).hexdigest()
