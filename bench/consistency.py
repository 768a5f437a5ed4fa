"""Does the consistency check find generated images that no longer match their render? Inject failures that
keep the pose label into a known share of them and measure how well the scores separate them.

Reads the composite training images of a finished workflow run in ``--workdir`` (the tables
``results/generate/composite/train/<category>/<shard>.parquet`` of the configuration's categories and shards,
their masks, renders, background photos and the edge maps ``results/edges/train/<category>/<shard>/``); it runs
no workflow. Then, in this process:

1. on ``--fraction`` (10 %) of each category's images per failure type (disjoint, drawn with the seed), rebuilds
   the image with the object cut out (filled from its background photo, fitted as the composite backend fits it)
   and a transformed copy of the render pasted back: ``translate`` (by 10-25 % of the box's longer side, in a
   random direction), ``scale`` (by 0.7-0.85 or 1.15-1.4 about the box centre), ``mirror`` (left-right within
   its box) or ``twice`` (the object left in place and a second copy pasted behind it elsewhere); the pose label,
   mask, box and edge map stay those of the render;
2. scores every image with :func:`dst3d.consistency.consistency_scores`;
3. prints per failure type the AUROC of edge_f, silhouette_iou (both as 1 - score) and the combined consistency,
   and what the policy ``{"scores": ["consistency"], "keep_fraction": K}`` catches of the failures and drops of
   the clean images, and the scoring time per image.

``--images-per-category N`` scores each category's first N images by index (120 by default).

``--kcf`` (off by default: it trains the fold models, minutes on a CPU) also compares with KCF, as issue #18 asks:

4. a fifth failure type ``pose`` on its own disjoint ``--fraction`` of each category: the image is left as it is
   and its azimuth label turned by a uniform 90..270 degrees (as :func:`dst3d.kcf.corrupt_azimuths` turns them),
   the corruption KCF is built for; the consistency scores, which never read the pose label, cannot see it;
5. trains the KCF fold models as the workflow's ``kcf_fold`` jobs do for the configuration (``kcf.folds``,
   ``kcf.per_category``, :func:`dst3d.workflow_config.kcf_settings`, :func:`dst3d.kcf.assign_folds` and
   :func:`dst3d.kcf.score_fold` with the workflow's seeds) and scores every injected image with the fold model
   that did not train on it, so that every image gets its ``kcf_loss``. What the fold models train on
   (``--kcf-train``): ``labels`` (default), the images as generated with their labels (the turned ones
   included): each failure type then meets fold models trained on a set with a tenth of wrong labels, as if it
   were its dataset's only failure, the setting ``bench/kcf.py`` measures; ``injected``, the injected images
   with every failure type at once (half the images broken, a harder setting for KCF than any dataset's);
   ``--kcf-epochs E`` overrides ``kcf.train``'s epochs;
6. prints per failure type the AUROC of kcf_loss, of consistency and of the combined rule, and what the policies
   ``{"scores": S, "keep_fraction": K}`` catch of each failure type and drop of the clean images for S =
   [kcf, consistency], [kcf] and [consistency] (:func:`dst3d.consistency.select_combined`), and what the
   configured ``kcf.policy`` drops. The combined rule's AUROC ranks the images by ``outlier_z`` (per category,
   the larger of the two scores' robust z-scores), the order in which the policy with both scores drops them.
   ``--scores-out FILE`` writes every image's scores and failure type.

Usage: ``python bench/consistency.py --workdir DIR [--configfile config/config.yaml] [--images-per-category 120]
[--fraction 0.1] [--seed S] [--tolerance-px 2] [--margin 0.1] [--keep-fraction 0.85] [--kcf [--kcf-epochs E] [--kcf-train labels|injected]] [--scores-out FILE]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from workflow_data import REPO, load_config

from dst3d import consistency, kcf
from dst3d.generate.composite import fit_background
from dst3d.generate.edges import EdgeSettings
from dst3d.identity import derive_seed, shard_names
from dst3d.io import read_image, read_tables, write_image
from dst3d.tables import read_csv
from dst3d.workflow_config import kcf_settings

FAILURES = ("translate", "scale", "mirror", "twice")
#: The failure ``--kcf`` adds: the image untouched, its azimuth label turned (what KCF is built to find).
POSE = "pose"
#: Threads of the KCF fold models (torch) and their crop loading.
KCF_THREADS = 2


def train_records(workdir: Path, config: dict, images: int | None) -> pd.DataFrame:
    """The composite training records of the run in ``workdir`` with absolute paths and their edge-map paths
    (``edge_map``), each category's first ``images`` by image index."""
    paths = [
        workdir / config["results"] / "generate" / "composite" / "train" / category / f"{shard}.parquet"
        for category in config["categories"]
        for shard in shard_names(config["splits"]["train"])
    ]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise SystemExit(f"{len(missing)} generated-image tables missing in {workdir}, e.g. {missing[0]}")
    frame = read_tables(paths).sort_values(["category", "image_index"], kind="stable")
    if images is not None:
        frame = frame.groupby("category", group_keys=False).head(images)
    frame = frame.reset_index(drop=True)
    for column in ("image_path", "mask_path", "render_path", "background_path"):
        frame[column] = [str(path if Path(path).is_absolute() else workdir / path) for path in frame[column]]
    # The workflow's edge maps: results/edges/<split>/<category>/<shard>/<image_id>.png, the shard being the
    # folder of the render.
    frame["edge_map"] = [
        str(workdir / config["results"] / "edges" / row.split / row.category / Path(row.mask_path).parent.name)
        + f"/{row.image_id}.png"
        for row in frame.itertuples()
    ]
    return frame


def assign_failures(frame: pd.DataFrame, fraction: float, seed: int, failures: tuple[str, ...] = FAILURES) -> pd.Series:
    """The failure injected into each image ("" = clean): round(fraction * n) images of each category per
    failure type, disjoint, drawn with ``seed``; depends on the image ids only. Each type takes the next slice
    of one permutation, so adding a type at the end leaves the earlier types' images as they were."""
    failure = pd.Series("", index=frame.index, dtype=object)
    for category, group in frame.groupby("category"):
        rng = np.random.default_rng(derive_seed(seed, "consistency-failures", category))
        rows = group.sort_values("image_id").index[rng.permutation(len(group))]
        count = round(fraction * len(group))
        for number, name in enumerate(failures):
            failure[rows[number * count : (number + 1) * count]] = name
    return failure


def turn_azimuths(frame: pd.DataFrame, rows: pd.Series, seed: int) -> pd.Series:
    """The azimuth labels of ``frame`` with those of the ``rows`` (boolean) turned by a uniform 90..270 degrees,
    drawn per category with ``seed`` in image-id order, as :func:`dst3d.kcf.corrupt_azimuths` turns them."""
    azimuth = frame["azimuth"].astype(float).copy()
    for category, group in frame[rows].groupby("category"):
        rng = np.random.default_rng(derive_seed(seed, "consistency-pose", category))
        chosen = group.sort_values("image_id").index
        turn = rng.uniform(np.pi / 2, 3 * np.pi / 2, len(chosen))
        azimuth[chosen] = np.mod(azimuth[chosen].to_numpy() + turn, 2 * np.pi)
    return azimuth


def kcf_scores(
    frame: pd.DataFrame, config: dict, seed: int, epochs: int | None, score_frame: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, dict]:
    """``kcf_loss`` of every image of ``frame`` (its image paths and labels as they are), scored as the
    workflow's ``kcf_fold`` jobs score them (scripts/kcf_fold.py): folds by :func:`dst3d.kcf.assign_folds`, one
    :func:`dst3d.kcf.score_fold` per group (each category with ``kcf.per_category``, else ``all``) and fold, the
    fold models' settings :func:`dst3d.workflow_config.kcf_settings` (``epochs`` over them unless None) and
    seeds those of the composite backend. ``score_frame`` (default ``frame``): the versions of the images the
    fold models score, each held out of the model that scores it. Returns (scores in the order of ``frame``,
    the settings)."""
    settings = kcf_settings(config)
    if epochs is not None:
        settings["epochs"] = epochs
    folds = config["kcf"]["folds"]
    groups = sorted(config["categories"]) if config["kcf"]["per_category"] else ["all"]
    frame = frame.copy()
    frame["kcf_fold"] = kcf.assign_folds(frame, folds, seed)
    if score_frame is not None:
        score_frame = score_frame.assign(kcf_fold=frame["kcf_fold"].to_numpy())
    scores = pd.concat(
        [
            kcf.score_fold(
                frame,
                fold,
                group,
                settings,
                seed=derive_seed(seed, "kcf-train", "composite", group, fold),
                threads=KCF_THREADS,
                score_frame=score_frame,
            )
            for group in groups
            for fold in range(folds)
        ]
    )
    scores = frame[["image_id"]].merge(scores, on="image_id", how="left", validate="one_to_one")
    if scores["kcf_loss"].isna().any():
        raise RuntimeError("KCF left images unscored")
    return scores, {**settings, "folds": folds, "groups": groups}


def policy_rank(scores: pd.DataFrame, chosen: list[str]) -> np.ndarray:
    """The order in which :func:`dst3d.consistency.select_combined` drops the images of ``scores`` (kcf_loss and
    consistency columns) for the ``chosen`` scores: their ``outlier_z``, per category the larger of the chosen
    scores' robust z-scores, so ranking by it puts first the images the policy drops first, whatever f."""
    everything, _ = consistency.select_combined(scores, scores, {"scores": chosen, "keep_fraction": 1.0})
    return scores[["image_id"]].merge(everything, on="image_id", how="left")["outlier_z"].to_numpy()


def dropped_by(scores: pd.DataFrame, policy: dict) -> pd.Series:
    """Which images of ``scores`` (kcf_loss and consistency columns) ``policy`` drops: as scripts/kcf_select.py
    chooses for a policy with a ``mode`` (the configured ``kcf.policy``: :func:`dst3d.kcf.select` for the KCF
    loss alone, any of its modes), else (and for both scores) :func:`dst3d.consistency.select_combined`."""
    if "mode" in policy and list(policy.get("scores", ["kcf"])) == ["kcf"]:
        kept, _ = kcf.select(scores[["image_id", "category", "kcf_loss"]], policy)
    else:
        kept, _ = consistency.select_combined(scores, scores, policy)
    return ~scores["image_id"].isin(kept["image_id"])


def report_kcf(scores: pd.DataFrame, failures: tuple[str, ...], keep_fraction: float, configured: dict) -> None:
    """The AUROC of kcf_loss, consistency and the combined rule per failure type, and what the policies drop."""
    scores = scores.reset_index(drop=True)
    scores["combined"] = policy_rank(scores, ["kcf", "consistency"])
    choices = {"kcf+cons.": ["kcf", "consistency"], "kcf": ["kcf"], "cons.": ["consistency"]}
    policies = {name: {"scores": chosen, "keep_fraction": keep_fraction} for name, chosen in choices.items()}
    dropped = {name: dropped_by(scores, policy) for name, policy in policies.items()}
    clean = (scores["failure"] == "").to_numpy()
    print(
        "combined rule: per category, the larger of the two scores' robust z-scores ((x - median) / (1.4826 MAD)), "
        "the order in which the policy with both scores drops them"
    )
    label = f"caught at keep_fraction {keep_fraction:g}:"
    width = max(len(label), len("dropped of the clean images:"))
    print(
        f"{'failure':<10} {'images':>6} {'AUROC kcf':>9} {'AUROC cons.':>11} {'AUROC comb.':>11}   {label:<{width}}"
        + "".join(f" {name:>9}" for name in policies)
    )
    for failure in (*failures, "all"):
        bad = (scores["failure"] != "").to_numpy() if failure == "all" else (scores["failure"] == failure).to_numpy()
        pair = clean | bad
        aurocs = [kcf.auroc(scores.loc[pair, column], bad[pair]) for column in ("kcf_loss", "consistency", "combined")]
        print(
            f"{failure:<10} {int(bad.sum()):>6} {aurocs[0]:>9.3f} {aurocs[1]:>11.3f} {aurocs[2]:>11.3f}   "
            f"{'':<{width}}" + "".join(f" {dropped[name][bad].mean():>9.0%}" for name in policies)
        )
    print(
        f"{'clean':<10} {int(clean.sum()):>6} {'':>9} {'':>11} {'':>11}   {'dropped of the clean images:':<{width}}"
        + "".join(f" {dropped[name][clean].mean():>9.0%}" for name in policies)
    )
    for name, policy in policies.items():
        print(
            f"policy {policy}: drops {int(dropped[name].sum())} of {len(scores)} images, "
            f"{int(dropped[name][~clean].sum())} of the {int((~clean).sum())} with a failure, "
            f"{dropped[name][clean].mean():.0%} of the {int(clean.sum())} clean"
        )
    drops = dropped_by(scores, configured)
    print(
        f"configured kcf.policy {configured}: drops {int(drops.sum())} of {len(scores)} images, "
        f"{drops[clean].mean():.0%} of the clean; caught "
        + ", ".join(f"{failure} {drops[(scores['failure'] == failure).to_numpy()].mean():.0%}" for failure in failures)
    )
    medians = scores.groupby(scores["failure"].replace("", "clean"))["kcf_loss"].median()
    print("median kcf_loss:", ", ".join(f"{name} {value:.2f}" for name, value in medians.items()))


def report_mixes(scores: pd.DataFrame, failures: tuple[str, ...], fraction: float, keep_fraction: float) -> None:
    """The combined rule on lighter mixes: each category's clean images with the first (by image_id) share of
    its images per failure type, for shares 2 % and 5 % and ``fraction``. Valid for fold models trained on the
    images as generated (``--kcf-train labels``): the injections then never reach their training, so leaving
    injected images out changes no score; the pose share stays ``fraction`` in their training folds."""
    print(
        f"lighter mixes (fold models as above; per category its clean images and the first share of each failure "
        f"type's): AUROC of outlier_z per failure type, and the policy keep_fraction {keep_fraction:g}"
    )
    for share in sorted({0.02, 0.05, fraction}):
        parts = []
        for _, group in scores.groupby("category"):
            parts.append(group[group["failure"] == ""])
            for failure in failures:
                rows = group[group["failure"] == failure].sort_values("image_id")
                parts.append(rows.iloc[: round(share * len(group))])
        mix = pd.concat(parts, ignore_index=True)
        mix["combined"] = policy_rank(mix, ["kcf", "consistency"])
        kept, _ = consistency.select_combined(
            mix, mix, {"scores": ["kcf", "consistency"], "keep_fraction": keep_fraction}
        )
        dropped = ~mix["image_id"].isin(kept["image_id"])
        clean = mix["failure"] == ""
        aurocs = []
        for failure in failures:
            bad = mix["failure"] == failure
            aurocs.append(f"{failure} {kcf.auroc(mix.loc[clean | bad, 'combined'], bad[clean | bad]):.3f}")
        caught = ", ".join(f"{failure} {dropped[mix['failure'] == failure].mean():.0%}" for failure in failures)
        print(
            f"  {share:.0%} per type ({(~clean).mean():.0%} of {len(mix)} broken): AUROC {', '.join(aurocs)}; "
            f"drops {dropped[clean].mean():.1%} of the clean, catches {caught} (all {dropped[~clean].mean():.0%})"
        )


def _over(rgba: np.ndarray, canvas: np.ndarray) -> np.ndarray:
    """Straight-alpha BGRA over a BGR canvas (float)."""
    alpha = rgba[:, :, 3:4].astype(np.float32) / 255.0
    return rgba[:, :, :3].astype(np.float32) * alpha + canvas * (1.0 - alpha)


def _warp(rgba: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``rgba`` moved by the 2 x 3 affine ``matrix`` (pixel-centre coordinates), premultiplied so that the
    resampled silhouette gets no dark fringe."""
    height, width = rgba.shape[:2]
    alpha = rgba[:, :, 3:4].astype(np.float32) / 255.0
    premultiplied = np.concatenate([rgba[:, :, :3] * alpha, alpha * 255.0], axis=2).astype(np.float32)
    moved = cv2.warpAffine(premultiplied, matrix, (width, height), flags=cv2.INTER_LINEAR, borderValue=0)
    moved_alpha = np.clip(moved[:, :, 3:4] / 255.0, 0, 1)
    colour = np.where(moved_alpha > 1e-3, moved[:, :, :3] / np.maximum(moved_alpha, 1e-3), 0)
    return np.concatenate([colour, moved_alpha * 255.0], axis=2).clip(0, 255).round().astype(np.uint8)


def inject(row: pd.Series, failure: str, rng: np.random.Generator) -> np.ndarray:
    """The generated image of ``row`` with ``failure``: the object's pixels (the render's alpha, grown by 1 px)
    refilled from the fitted background photo, then the transformed render pasted over it."""
    image = read_image(row.image_path)
    rgba = read_image(row.render_path, cv2.IMREAD_UNCHANGED)
    height, width = rgba.shape[:2]
    background = fit_background(read_image(row.background_path), width, height).astype(np.float32)
    if image.shape[:2] != (height, width):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    covered = cv2.dilate((rgba[:, :, 3] > 0).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    canvas = np.where(covered[:, :, None], background, image.astype(np.float32))
    x0, y0, x1, y1 = (float(row[key]) for key in ("bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"))
    box_width, box_height = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2 - 0.5, (y0 + y1) / 2 - 0.5  # pixel-centre coordinates
    if failure == "translate":
        angle, amount = rng.uniform(0, 2 * np.pi), rng.uniform(0.10, 0.25) * max(box_width, box_height)
        matrix = np.float32([[1, 0, amount * np.cos(angle)], [0, 1, amount * np.sin(angle)]])
        canvas = _over(_warp(rgba, matrix), canvas)
    elif failure == "scale":
        factor = rng.uniform(0.7, 0.85) if rng.random() < 0.5 else rng.uniform(1.15, 1.4)
        matrix = np.float32([[factor, 0, cx * (1 - factor)], [0, factor, cy * (1 - factor)]])
        canvas = _over(_warp(rgba, matrix), canvas)
    elif failure == "mirror":
        mirrored = rgba.copy()
        left, right = int(x0), int(x1)
        mirrored[:, left:right] = rgba[:, left:right][:, ::-1]
        canvas = _over(mirrored, canvas)
    elif failure == "twice":
        # A second copy behind the object, where its box overlaps the object's box least (of 32 draws; up to a
        # quarter of the copy may leave the image).
        best = None
        for _ in range(32):
            dx = rng.uniform(-x0 - 0.25 * box_width, width - x1 + 0.25 * box_width)
            dy = rng.uniform(-y0 - 0.25 * box_height, height - y1 + 0.25 * box_height)
            overlap = max(0.0, box_width - abs(dx)) * max(0.0, box_height - abs(dy))
            if best is None or overlap < best[0]:
                best = (overlap, dx, dy)
        matrix = np.float32([[1, 0, best[1]], [0, 1, best[2]]])
        canvas = _over(rgba, _over(_warp(rgba, matrix), canvas))
    else:
        raise ValueError(f"unknown failure {failure!r}")
    result = np.round(canvas).clip(0, 255).astype(np.uint8)
    if (row.image_height, row.image_width) != (height, width):
        result = cv2.resize(result, (int(row.image_width), int(row.image_height)), interpolation=cv2.INTER_AREA)
    return result


def score_run(
    args: argparse.Namespace, config: dict, edge_settings: EdgeSettings, seed: int, failures: tuple[str, ...]
) -> tuple[pd.DataFrame, dict]:
    """Inject the failures into the run's images and score them (steps 1, 2, 4 and 5 above). Returns (one row
    per image: its scores and failure, ""= clean; the seconds each step took and the KCF settings)."""
    workdir = args.workdir.resolve()
    frame = train_records(workdir, config, args.images_per_category)
    frame["failure"] = assign_failures(frame, args.fraction, seed, failures)
    if args.kcf:
        frame["azimuth"] = turn_azimuths(frame, frame["failure"] == POSE, seed)
    generated = frame.copy()  # the images as generated (labels turned): what --kcf-train labels trains on

    with tempfile.TemporaryDirectory(prefix="dst3d-bench-consistency-") as temporary:
        started = time.perf_counter()
        for index, row in frame[frame["failure"].isin(FAILURES)].iterrows():
            rng = np.random.default_rng(derive_seed(seed, "consistency-inject", row.image_id))
            path = Path(temporary) / f"{row.image_id}.png"
            write_image(inject(row, row.failure, rng), path)
            frame.loc[index, "image_path"] = str(path)
        inject_seconds = time.perf_counter() - started
        cv2.setNumThreads(1)
        started = time.perf_counter()
        scores = consistency.consistency_scores(
            frame, frame["edge_map"], edge_settings, tolerance_px=args.tolerance_px, margin=args.margin
        )
        score_seconds = time.perf_counter() - started
        if args.kcf:
            torch.set_num_threads(KCF_THREADS)
            started = time.perf_counter()
            if args.kcf_train == "labels":
                losses, settings = kcf_scores(generated, config, seed, args.kcf_epochs, score_frame=frame)
            else:
                losses, settings = kcf_scores(frame, config, seed, args.kcf_epochs)
            kcf_seconds = time.perf_counter() - started
    scores["failure"] = frame["failure"].to_numpy()
    timings = {"inject": inject_seconds, "score": score_seconds}
    if args.kcf:
        scores["kcf_loss"] = losses["kcf_loss"].to_numpy()
        timings.update(kcf=kcf_seconds, settings=settings)
    return scores, timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="folder of a finished workflow run")
    parser.add_argument("--configfile", type=Path, nargs="+", default=[REPO / "config" / "config.yaml"])
    parser.add_argument("--images-per-category", type=int, default=120, help="score each category's first N")
    parser.add_argument("--fraction", type=float, default=0.1, help="share of each category's images per failure")
    parser.add_argument("--seed", type=int, help="seed of the injected failures (default: the config's)")
    parser.add_argument("--tolerance-px", type=float, default=2)
    parser.add_argument("--margin", type=float, default=0.1)
    parser.add_argument("--keep-fraction", type=float, default=0.85)
    parser.add_argument(
        "--kcf", action="store_true", help="also inject turned azimuth labels (pose), train KCF and compare with it"
    )
    parser.add_argument("--kcf-epochs", type=int, help="KCF fold-model epochs (default: the configuration's)")
    parser.add_argument(
        "--kcf-train",
        choices=("labels", "injected"),
        default="labels",
        help="what the fold models train on: the images as generated with the turned labels (each failure type "
        "as if it were a dataset's only one), or the injected set with every failure type (half of it broken)",
    )
    parser.add_argument("--scores-out", type=Path, help="write every image's scores and failure to this CSV")
    parser.add_argument(
        "--scores-in", type=Path, help="report from a --scores-out CSV of an earlier run instead of scoring again"
    )
    args = parser.parse_args()
    if (args.workdir is None) == (args.scores_in is None):
        parser.error("give --workdir (score a run) or --scores-in (report earlier scores)")
    if (args.kcf_epochs is not None or args.kcf_train != "labels") and not args.kcf:
        parser.error("--kcf-epochs and --kcf-train need --kcf")
    failures = (*FAILURES, POSE) if args.kcf else FAILURES

    config = load_config([path.resolve() for path in args.configfile])
    edge_settings = EdgeSettings.from_config(config.get("edges"))
    seed = config["seed"] if args.seed is None else args.seed
    if args.scores_in is not None:
        scores = read_csv(args.scores_in, keep_default_na=False)
        if args.kcf and "kcf_loss" not in scores:
            parser.error(f"--kcf: {args.scores_in} has no kcf_loss column (written without --kcf)")
        timings = None
    else:
        scores, timings = score_run(args, config, edge_settings, seed, failures)
    if args.scores_out is not None:
        scores.to_csv(args.scores_out, index=False)
    policy = {"scores": ["consistency"], "keep_fraction": args.keep_fraction}
    kept, _ = consistency.select_combined(None, scores, policy)
    scores["dropped"] = ~scores["image_id"].isin(kept["image_id"])
    clean = scores[scores["failure"] == ""]
    print(
        f"{len(scores)} images ({', '.join(config['categories'])}; first {args.images_per_category} per category), "
        f"{int((scores['failure'] != '').sum())} with a failure ({args.fraction:.0%} per type per category), seed "
        f"{seed}; Canny {edge_settings.low_threshold}/{edge_settings.high_threshold}, tolerance "
        f"{args.tolerance_px:g} px, margin {args.margin:g}"
    )
    if timings is None:
        print(f"scores read from {args.scores_in}")
    else:
        print(
            f"injected in {timings['inject']:.1f} s; scored in {timings['score']:.1f} s "
            f"({1000 * timings['score'] / len(scores):.1f} ms per image, 1 thread, reading the files included)"
        )
    # The combined score's threshold that drops --keep-fraction's complement of the clean images: what a
    # threshold policy calibrated on clean images would catch.
    threshold = float(np.quantile(clean["consistency"], args.keep_fraction))
    print(
        f"{'failure':<10} {'images':>6} {'AUROC edge_f':>12} {'AUROC iou':>9} {'AUROC comb.':>11} {'caught':>7} "
        f"{'caught@thr':>10}"
    )
    for failure in failures:
        bad = scores[scores["failure"] == failure]
        pair = pd.concat([clean, bad])
        positives = (pair["failure"] == failure).to_numpy()
        print(
            f"{failure:<10} {len(bad):>6} {kcf.auroc(1 - pair['edge_f'], positives):>12.3f} "
            f"{kcf.auroc(1 - pair['silhouette_iou'], positives):>9.3f} "
            f"{kcf.auroc(pair['consistency'], positives):>11.3f} {bad['dropped'].mean():>7.0%} "
            f"{(bad['consistency'] > threshold).mean():>10.0%}"
        )
    every = (scores["failure"] != "").to_numpy()
    print(
        f"{'all':<10} {int(every.sum()):>6} {kcf.auroc(1 - scores['edge_f'], every):>12.3f} "
        f"{kcf.auroc(1 - scores['silhouette_iou'], every):>9.3f} {kcf.auroc(scores['consistency'], every):>11.3f} "
        f"{scores.loc[every, 'dropped'].mean():>7.0%} "
        f"{(scores.loc[every, 'consistency'] > threshold).mean():>10.0%}"
    )
    print(f"policy {policy}: drops {clean['dropped'].mean():.0%} of the {len(clean)} clean images (caught)")
    print(
        f"threshold consistency > {threshold:.3f} (the clean images' {args.keep_fraction:.0%} quantile): drops "
        f"{(clean['consistency'] > threshold).mean():.0%} of the clean images (caught@thr)"
    )
    medians = scores.groupby(scores["failure"].replace("", "clean"))[["edge_f", "silhouette_iou"]].median()
    print(
        "median scores:", ", ".join(f"{name} {r.edge_f:.2f}/{r.silhouette_iou:.2f}" for name, r in medians.iterrows())
    )
    if args.kcf and timings is not None:
        settings = timings["settings"]
        epochs = f"{settings['epochs']} epochs" + (
            f" (--kcf-epochs; kcf.train says {kcf_settings(config)['epochs']})" if args.kcf_epochs is not None else ""
        )
        print(
            f"KCF: {len(settings['groups']) * settings['folds']} fold models ({settings['folds']} folds, groups "
            f"{settings['groups']}), {settings['backbone']} at {settings['input_size']} px, {epochs}, "
            f"{settings['optimizer']} lr {settings['lr']:g} {settings['lr_schedule']}, {KCF_THREADS} threads, trained "
            + (
                "on the images as generated"
                if args.kcf_train == "labels"
                else "on the injected images (every failure type)"
            )
            + f" with their labels ({POSE}: azimuth turned by 90..270 degrees), scoring the injected images; "
            f"trained and scored in {timings['kcf']:.0f} s"
        )
    if args.kcf:
        report_kcf(scores, failures, args.keep_fraction, config["kcf"]["policy"])
        if args.kcf_train == "labels":
            report_mixes(scores, failures, args.fraction, args.keep_fraction)


if __name__ == "__main__":
    main()
