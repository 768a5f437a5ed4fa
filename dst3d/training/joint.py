"""Joint classification and pose (ImageNet3D's third task): one network predicts an object's category and its
viewpoint. Its head is the pose estimator's 3 x 41 bins followed by one logit per category, trained with the sum of
the pose cross-entropy and the category cross-entropy. A prediction counts as right for the "3D-aware accuracy"
only when its category is right and its pose error is under pi/6 (ImageNet3D, Table 3).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from dst3d.evaluate import PER_CATEGORY, POOLED, pose_errors
from dst3d.training import classify, pose
from dst3d.training.loop import Task


def task(categories: list[str]) -> Task:
    """The joint task over ``categories``: outputs 0-122 are the pose bins, output 123 + k is ``categories[k]``."""

    def loss(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        pose_part = pose.pose_loss(logits[:, : pose.POSE_OUTPUTS], labels[:, :3], reduction)
        category_part = F.cross_entropy(logits[:, pose.POSE_OUTPUTS :], labels[:, 3], reduction=reduction)
        return pose_part + category_part

    return Task("joint", pose.POSE_OUTPUTS + len(categories), loss, theta_column=2)


def joint_labels(frame: pd.DataFrame, categories: list[str]) -> np.ndarray:
    """N x 4 int64 labels: the three pose bins, then the category index."""
    return np.concatenate(
        [pose.pose_labels(frame), classify.category_labels(frame, categories)[:, None]], axis=1
    ).astype(np.int64)


def predictions_table(frame: pd.DataFrame, logits: torch.Tensor, categories: list[str]) -> pd.DataFrame:
    """Per object: true and predicted category, true and predicted pose, and the pose's geodesic error (radians,
    whatever the predicted category)."""
    if logits.shape[1] != pose.POSE_OUTPUTS + len(categories):
        raise ValueError(
            f"a joint model over {len(categories)} categories has {pose.POSE_OUTPUTS + len(categories)} outputs, "
            f"this one {logits.shape[1]}"
        )
    predicted_pose = pose.decode(logits[:, : pose.POSE_OUTPUTS])
    table = frame[["image_id", "category", "azimuth", "elevation", "theta"]].reset_index(drop=True)
    table["predicted_category"] = [categories[index] for index in logits[:, pose.POSE_OUTPUTS :].argmax(1).tolist()]
    table[["pred_azimuth", "pred_elevation", "pred_theta"]] = predicted_pose
    table["error"] = pose_errors(frame[["azimuth", "elevation", "theta"]].to_numpy(), predicted_pose)
    return table


def _row(name: str, group: pd.DataFrame) -> dict:
    right_class = (group["category"] == group["predicted_category"]).to_numpy()
    right_pose = (group["error"] < np.pi / 6).to_numpy()
    return {
        "category": name,
        "images": len(group),
        "class_accuracy": float(right_class.mean()),
        "acc_pi_6": float(right_pose.mean()),
        "aware_acc_pi_6": float((right_class & right_pose).mean()),
        "median_error_deg": float(np.degrees(np.median(group["error"].to_numpy()))),
    }


METRICS = ("class_accuracy", "acc_pi_6", "aware_acc_pi_6", "median_error_deg")


def metrics_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per true category: classification accuracy, pose Acc@pi/6, 3D-aware Acc@pi/6 (class right and error under
    pi/6) and median pose error; then the pooled and the per-category mean rows."""
    if predictions.empty:
        raise ValueError("no predictions to evaluate")
    rows = [_row(category, group) for category, group in predictions.groupby("category")]
    per_category = pd.DataFrame(rows)
    mean_row = {"category": PER_CATEGORY, "images": int(per_category["images"].sum())}
    mean_row.update({key: float(per_category[key].mean()) for key in METRICS})
    return pd.concat([per_category, pd.DataFrame([_row(POOLED, predictions), mean_row])], ignore_index=True)
