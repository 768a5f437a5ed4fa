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

Usage: ``python bench/consistency.py --workdir DIR [--configfile config/config.yaml] [--images-per-category 120]
[--fraction 0.1] [--seed S] [--tolerance-px 2] [--margin 0.1] [--keep-fraction 0.85]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from workflow_data import REPO, load_config

from dst3d import consistency, kcf
from dst3d.generate.composite import fit_background
from dst3d.generate.edges import EdgeSettings
from dst3d.identity import derive_seed, shard_names
from dst3d.io import read_image, read_tables, write_image

FAILURES = ("translate", "scale", "mirror", "twice")


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


def assign_failures(frame: pd.DataFrame, fraction: float, seed: int) -> pd.Series:
    """The failure injected into each image ("" = clean): round(fraction * n) images of each category per
    failure type, disjoint, drawn with ``seed``; depends on the image ids only."""
    failure = pd.Series("", index=frame.index, dtype=object)
    for category, group in frame.groupby("category"):
        rng = np.random.default_rng(derive_seed(seed, "consistency-failures", category))
        rows = group.sort_values("image_id").index[rng.permutation(len(group))]
        count = round(fraction * len(group))
        for number, name in enumerate(FAILURES):
            failure[rows[number * count : (number + 1) * count]] = name
    return failure


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True, help="folder of a finished workflow run")
    parser.add_argument("--configfile", type=Path, nargs="+", default=[REPO / "config" / "config.yaml"])
    parser.add_argument("--images-per-category", type=int, default=120, help="score each category's first N")
    parser.add_argument("--fraction", type=float, default=0.1, help="share of each category's images per failure")
    parser.add_argument("--seed", type=int, help="seed of the injected failures (default: the config's)")
    parser.add_argument("--tolerance-px", type=float, default=2)
    parser.add_argument("--margin", type=float, default=0.1)
    parser.add_argument("--keep-fraction", type=float, default=0.85)
    args = parser.parse_args()

    config = load_config([path.resolve() for path in args.configfile])
    edge_settings = EdgeSettings.from_config(config.get("edges"))
    seed = config["seed"] if args.seed is None else args.seed
    workdir = args.workdir.resolve()
    frame = train_records(workdir, config, args.images_per_category)
    frame["failure"] = assign_failures(frame, args.fraction, seed)

    with tempfile.TemporaryDirectory(prefix="dst3d-bench-consistency-") as temporary:
        started = time.perf_counter()
        for index, row in frame[frame["failure"] != ""].iterrows():
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
    scores["failure"] = frame["failure"].to_numpy()

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
    print(
        f"injected in {inject_seconds:.1f} s; scored in {score_seconds:.1f} s "
        f"({1000 * score_seconds / len(scores):.1f} ms per image, 1 thread, reading the files included)"
    )
    # The combined score's threshold that drops --keep-fraction's complement of the clean images: what a
    # threshold policy calibrated on clean images would catch.
    threshold = float(np.quantile(clean["consistency"], args.keep_fraction))
    print(
        f"{'failure':<10} {'images':>6} {'AUROC edge_f':>12} {'AUROC iou':>9} {'AUROC comb.':>11} {'caught':>7} "
        f"{'caught@thr':>10}"
    )
    for failure in FAILURES:
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


if __name__ == "__main__":
    main()
