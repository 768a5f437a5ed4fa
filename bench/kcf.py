"""Does KCF find wrong pose labels? Corrupt a known share of them and measure how well the scores separate them.

Builds the generated training images of a configuration (the embedded default unless ``--configfile`` says
otherwise) with the workflow itself, up to the generate stage, in ``--workdir`` (a temporary folder unless
given; an existing one is reused). Then, in this process and with the workflow's own functions and settings
(``kcf.folds``, ``kcf.per_category``, the ``train`` block with ``kcf.train`` over it):

1. turns the azimuth label of ``--fraction`` (10 %) of each category's images by a uniform 90..270 degrees;
2. scores every image with the K-fold consistency filter (:func:`dst3d.kcf.score_fold` for every group and fold);
3. prints the AUROC of the scores for the corrupted images (overall and per category), and what the
   configured discard policy keeps of them.

``--set KEY=VALUE`` overrides a fold-model setting (the ``train`` block with ``kcf.train`` over it), e.g.
``--set device=cuda --set backbone=resnet50 --set input_size=128``; ``--prebuilt`` reuses the images of a
``--workdir`` built earlier without running the workflow, for a GPU node that has no Blender (see
bench/workflow_data.py).

``--seed S`` draws the corrupted labels, the folds and the fold models' initialisation and batches from S instead
of the configuration's seed (the images stay those of the build), to see how much one result owes to luck.

``--models-per-category M`` and ``--images-per-category N`` score a subset of the built images (those of each
category's first M models, then the first N of them by index), to tell how the number of objects and of images
changes the result from one folder built large.

Usage: ``python bench/kcf.py [--workdir DIR] [--prebuilt] [--models-per-category M] [--images-per-category N] [--configfile config/config.yaml] [--fraction 0.1]
[--epochs N] [--folds K] [--seed S] [--per-category | --no-per-category] [--threads 2] [--set KEY=VALUE ...]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
from workflow_data import add_data_arguments, apply_overrides, data_config, train_images

from dst3d import kcf
from dst3d.identity import derive_seed
from dst3d.workflow_config import kcf_settings


def subset(frame: pd.DataFrame, models: int | None, images: int | None) -> pd.DataFrame:
    """Each category's images of its first ``models`` model ids (sorted), then the first ``images`` of those by
    image index; all of them where a limit is None."""
    frame = frame.sort_values(["category", "image_index"], kind="stable")
    if models is not None:
        first = frame.groupby("category")["model_id"].transform(lambda ids: ids.isin(sorted(ids.unique())[:models]))
        frame = frame[first]
    if images is not None:
        frame = frame.groupby("category", group_keys=False).head(images)
    return frame.reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser, "a fold-model setting")
    parser.add_argument("--fraction", type=float, default=0.1, help="share of each category's labels to corrupt")
    parser.add_argument("--epochs", type=int, help="fold-model epochs (default: the configuration's)")
    parser.add_argument("--folds", type=int, help="K (default: the configuration's kcf.folds)")
    parser.add_argument(
        "--per-category",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one fold model per category and fold (default: the configuration's)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--seed", type=int, help="seed of the corruption, folds and fold models (default: the config's)"
    )
    parser.add_argument(
        "--models-per-category", type=int, help="score only the images of each category's first M models"
    )
    parser.add_argument("--images-per-category", type=int, help="score only each category's first N images")
    args = parser.parse_args()

    config = data_config(parser, args)
    folds = args.folds or config["kcf"]["folds"]
    per_category = config["kcf"]["per_category"] if args.per_category is None else args.per_category
    settings = kcf_settings(config)
    if args.epochs:
        settings["epochs"] = args.epochs
    settings = apply_overrides(parser, settings, args.overrides)

    with tempfile.TemporaryDirectory(prefix="dst3d-bench-kcf-") as temporary:
        workdir = (args.workdir or Path(temporary)).resolve()
        started = time.perf_counter()
        frame = train_images(args, config, workdir)
        build_seconds = time.perf_counter() - started
        frame = subset(frame, args.models_per_category, args.images_per_category)

        seed = config["seed"] if args.seed is None else args.seed
        corrupted, mask = kcf.corrupt_azimuths(frame, args.fraction, seed)
        corrupted["kcf_fold"] = kcf.assign_folds(corrupted, folds, seed)
        corrupted["corrupted"] = mask
        groups = sorted(config["categories"]) if per_category else ["all"]
        started = time.perf_counter()
        scores = pd.concat(
            [
                kcf.score_fold(
                    corrupted,
                    fold,
                    group,
                    settings,
                    threads=args.threads,
                    seed=derive_seed(seed, "kcf-train", "composite", group, fold),
                )
                for group in groups
                for fold in range(folds)
            ]
        )
        kcf_seconds = time.perf_counter() - started

    scores = scores.merge(corrupted[["image_id", "corrupted"]], on="image_id")
    kept, _ = kcf.select(scores, config["kcf"]["policy"])
    dropped_corrupted = int((scores["corrupted"] & ~scores["image_id"].isin(kept["image_id"])).sum())
    print(
        f"{len(scores)} images ({', '.join(config['categories'])}; {frame['model_id'].nunique()} models), {int(mask.sum())} azimuth labels turned by "
        f"90..270 degrees; {folds} folds, per_category={per_category}, {settings['backbone']} at "
        f"{settings['input_size']} px, {settings['epochs']} epochs, {args.threads} threads, seed {seed}"
    )
    print(f"fold-model settings: {settings}")
    print(f"images built in {build_seconds:.0f} s, KCF ({len(groups) * folds} fold models) in {kcf_seconds:.0f} s")
    print(f"AUROC of the KCF loss for the corrupted images: {kcf.auroc(scores['kcf_loss'], scores['corrupted']):.3f}")
    for category, group in scores.groupby("category"):
        print(f"  {category:<10} AUROC {kcf.auroc(group['kcf_loss'], group['corrupted']):.3f}")
    median = scores.groupby("corrupted")["kcf_loss"].median()
    print(f"median loss: clean {median[False]:.2f}, corrupted {median[True]:.2f}")
    print(
        f"policy {config['kcf']['policy']}: drops {len(scores) - len(kept)} images, {dropped_corrupted} of the "
        f"{int(mask.sum())} corrupted ({dropped_corrupted / max(mask.sum(), 1):.0%})"
    )


if __name__ == "__main__":
    main()
