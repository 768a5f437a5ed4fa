"""Category classification, the second trainable task: the pose estimator's ResNet with one output per
category, trained with plain cross-entropy on the same crops (:func:`dst3d.training.loop.train` with :func:`task`), and
its accuracy table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from dst3d.evaluate import PER_CATEGORY, POOLED
from dst3d.training.loop import Task


def category_loss(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of the category logits; ``reduction='none'`` gives one value per image."""
    return F.cross_entropy(logits, labels, reduction=reduction)


def task(categories: list[str]) -> Task:
    """The classification task over ``categories`` (output k is ``categories[k]``)."""
    return Task("category", len(categories), category_loss)


def category_labels(frame: pd.DataFrame, categories: list[str]) -> np.ndarray:
    """int64 index of every row's category in ``categories``; an unknown category is an error."""
    unknown = sorted(set(frame["category"]) - set(categories))
    if unknown:
        raise ValueError(f"categories {unknown} are not among the classifier's categories {categories}")
    index = {category: position for position, category in enumerate(categories)}
    return frame["category"].map(index).to_numpy(dtype=np.int64)


def accuracy_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per true category, then ``mean (pooled)`` over all images and ``mean (per-category)``, the
    unweighted mean of the category rows, from a table with columns category and predicted_category."""
    if predictions.empty:
        raise ValueError("no predictions to evaluate")
    correct = predictions["category"] == predictions["predicted_category"]
    rows = [
        {"category": category, "images": int(group.size), "accuracy": float(group.mean())}
        for category, group in correct.groupby(predictions["category"])
    ]
    rows.append({"category": POOLED, "images": int(correct.size), "accuracy": float(correct.mean())})
    per_category = [row["accuracy"] for row in rows[:-1]]
    rows.append({"category": PER_CATEGORY, "images": int(correct.size), "accuracy": float(np.mean(per_category))})
    return pd.DataFrame(rows)
