"""K-fold consistency filter (KCF, 3D-DST): score every generated image by how badly an estimator that never
saw it predicts its rendered pose, then drop the worst by an explicit policy.

Folds are drawn per category with a fixed shuffle seed. With ``per_category`` (the published protocol) each
fold model is trained on one category; otherwise one fold model is trained on all categories' other folds
(cheaper: K models instead of K x categories, and each sees more data).

:func:`corrupt_azimuths` and :func:`auroc` check that the filter works: corrupt the pose labels of a known
share of the images, score, and measure how well the scores separate the corrupted images (``bench/kcf.py``).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch

from dst3d.identity import derive_seed
from dst3d.training import cropping, loop, pose

_log = logging.getLogger(__name__)


def assign_folds(frame: pd.DataFrame, folds: int, seed: int) -> pd.Series:
    """Fold (0..folds-1) of every image, balanced within each category; depends on the image ids only."""
    if folds < 2:
        raise ValueError(f"kcf.folds must be at least 2, got {folds}")
    fold = pd.Series(-1, index=frame.index, dtype=np.int64)
    for category, group in frame.groupby("category"):
        ids = group.sort_values("image_id")
        rng = np.random.default_rng(derive_seed(seed, "kcf-folds", category))
        order = rng.permutation(len(ids))
        fold.loc[ids.index[order]] = np.arange(len(ids)) % folds
    return fold


def fold_split(frame: pd.DataFrame, fold: int, group: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training images, held-out images) of one fold job; ``group`` is a category or ``all``."""
    members = frame if group == "all" else frame[frame["category"] == group]
    if members.empty:
        raise ValueError(f"no generated image of category {group!r} to run KCF on")
    return members[members["kcf_fold"] != fold], members[members["kcf_fold"] == fold]


def score_fold(
    frame: pd.DataFrame,
    fold: int,
    group: str,
    settings: dict,
    seed: int,
    threads: int,
    log: logging.Logger = _log,
    score_frame: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One KCF job: train a pose estimator on the other folds of ``group`` (a category or ``all``) and score
    every held-out image by the sum of its three angle losses under that model.

    ``frame`` is a generated-image table with a ``kcf_fold`` column (:func:`assign_folds`); ``settings`` the
    train block for the fold models. ``score_frame`` (same columns; default ``frame``) holds the held-out
    images to score, for a bench that scores other versions of the images than the models trained on.
    Returns image_id, category, kcf_fold and kcf_loss of the held-out images.
    """
    training, _ = fold_split(frame, fold, group)
    _, held_out = fold_split(frame if score_frame is None else score_frame, fold, group)
    log.info("fold %d of group %s: training on %d images, scoring %d", fold, group, len(training), len(held_out))
    result = loop.train(
        cropping.crops(training, settings, threads),
        pose.pose_labels(training),
        training["image_id"].tolist(),
        settings,
        seed=seed,
        threads=threads,
        log=log,
        task=pose.POSE,
        thetas=training["theta"].to_numpy(),
    )
    logits = loop.predict_logits(result.model, cropping.crops(held_out, settings, threads), settings["input_size"])
    losses = pose.pose_loss(logits, torch.from_numpy(pose.pose_labels(held_out)), reduction="none").numpy()
    scores = held_out[["image_id", "category", "kcf_fold"]].reset_index(drop=True)
    scores["kcf_loss"] = np.round(losses, 6)
    return scores


def select(scores: pd.DataFrame, policy: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Apply the discard policy per category. Returns (kept scores, summary per category).

    policy: {"mode": "fraction", "keep_fraction": f} keeps the ceil(f * n) lowest-loss images of each
    category; {"mode": "threshold", "max_loss": x} keeps images whose loss is at most x; {"mode": "none"}
    keeps everything (scores only, as the published code).
    """
    kept_parts, summary = [], []
    for category, group in scores.groupby("category"):
        ranked = group.sort_values(["kcf_loss", "image_id"])
        if policy["mode"] == "fraction":
            kept = ranked.head(int(np.ceil(policy["keep_fraction"] * len(ranked))))
        elif policy["mode"] == "threshold":
            kept = ranked[ranked["kcf_loss"] <= policy["max_loss"]]
        elif policy["mode"] == "none":
            kept = ranked
        else:
            raise ValueError(f"kcf.policy.mode must be fraction, threshold or none, got {policy['mode']!r}")
        kept_parts.append(kept)
        summary.append(
            {
                "category": category,
                "images": len(group),
                "kept": len(kept),
                "dropped": len(group) - len(kept),
                "kept_share": len(kept) / len(group),
                "median_loss": float(group["kcf_loss"].median()),
                "max_kept_loss": float(kept["kcf_loss"].max()) if len(kept) else float("nan"),
            }
        )
    kept = pd.concat(kept_parts).sort_values("image_id").reset_index(drop=True)
    return kept, pd.DataFrame(summary)


def auroc(scores: np.ndarray, positives: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for separating ``positives`` (ties count one half)."""
    scores, positives = np.asarray(scores, float), np.asarray(positives, bool)
    positive, negative = scores[positives], scores[~positives]
    if len(positive) == 0 or len(negative) == 0:
        raise ValueError("AUROC needs both positive and negative examples")
    # Mann-Whitney: the positives' rank sum (ties share their mean rank) in O(n log n), not an n x n matrix.
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([positive, negative]))
    greater = ranks[: len(positive)].sum() - len(positive) * (len(positive) + 1) / 2
    return float(greater / (len(positive) * len(negative)))


def corrupt_azimuths(frame: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """A copy of ``frame`` in which ``round(fraction * n)`` images of each category (drawn with ``seed``) have
    their azimuth label turned by a uniform 90..270 degrees, so the label no longer matches the image; which
    images and by how much depends on the image ids only. Returns (corrupted frame, boolean mask of the
    corrupted rows)."""
    corrupted = frame.copy()
    mask = pd.Series(False, index=frame.index)
    for category, group in frame.groupby("category"):
        rng = np.random.default_rng(derive_seed(seed, "kcf-corrupt", category))
        rows = group.sort_values("image_id").index
        chosen = rows[rng.permutation(len(rows))[: round(fraction * len(rows))]]
        mask[chosen] = True
        turn = rng.uniform(np.pi / 2, 3 * np.pi / 2, len(chosen))
        corrupted.loc[chosen, "azimuth"] = np.mod(frame.loc[chosen, "azimuth"].to_numpy() + turn, 2 * np.pi)
    return corrupted, mask.to_numpy()
