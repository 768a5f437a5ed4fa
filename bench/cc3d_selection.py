"""How good are CC3D's pseudo-labels? For a trained NeMo checkpoint and a real source's selected objects (the
table CC3D reads, whose pose labels CC3D never uses), predict every object's pose once, then for each ranking and
each ``keep`` print the true error of the pseudo-labels it would keep: the median error in degrees, the share
within pi/6, and the share that are half-turn mistakes (error over 150 degrees). The line ``all`` is every
prediction, the baseline a ranking has to beat. Rankings: ``confidence``, equation 6 (what CC3D uses);
``margin``, equation 6 minus the same score at the pose turned half way round (``half_turn_confidence``), a
candidate against the cuboid's front/back ambiguity.

Run it with the NeMo interpreter from the repository root, after ``make nemo`` (paths of the embedded default):
``.venv-nemo/bin/python bench/cc3d_selection.py --model results/nemo/train/composite-kcf.pt
--unlabelled results/real/pseudo/all.parquet [--keep 10 20 40] [--threads 2]``. It prints one line per ranking
and keep, and ``--out FILE`` writes the per-object predictions (CSV) for a closer look.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dst3d import evaluate  # noqa: E402
from dst3d.nemo import training  # noqa: E402
from dst3d.nemo.correspondence import most_confident  # noqa: E402

POSE = ["azimuth", "elevation", "theta"]


def summary(errors_deg: np.ndarray) -> str:
    if len(errors_deg) == 0:
        return "n=0"
    return (
        f"n={len(errors_deg):4d} median {np.median(errors_deg):6.1f} deg, within pi/6 {np.mean(errors_deg < 30):.3f}, "
        f"half-turn (>150 deg) {np.mean(errors_deg > 150):.3f}"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--unlabelled", required=True, type=Path)
    parser.add_argument("--keep", type=int, nargs="+", default=[10, 20, 40])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", type=Path)
    arguments = parser.parse_args(argv)

    import torch

    torch.set_num_threads(arguments.threads)
    model, checkpoint = training.load(arguments.model)
    objects = pd.read_parquet(arguments.unlabelled)
    objects = objects[objects["category"].isin(model.meshes)].sort_values("image_id").reset_index(drop=True)
    truth = objects[POSE].to_numpy()
    unlabelled = objects.drop(columns=[c for c in [*POSE, "distance"] if c in objects])
    crops = training.load_crops(unlabelled, model.meshes, model.settings, arguments.threads, labelled=False)
    start = time.perf_counter()
    predicted = training.predict(model, crops, arguments.batch_size, arguments.threads, half_turned=True)
    seconds = time.perf_counter() - start
    table = pd.concat([objects[["image_id", "category"]], predicted], axis=1)
    table["margin"] = table["confidence"] - table["half_turn_confidence"]
    table["error_deg"] = np.degrees(
        evaluate.pose_errors(truth, table[["pred_azimuth", "pred_elevation", "pred_theta"]].to_numpy())
    )
    print(f"model {arguments.model} ({checkpoint['variant']}), {len(table)} objects, {seconds:.1f} s to predict")
    print(f"all           : {summary(table['error_deg'].to_numpy())}")
    for keep in arguments.keep:
        for score in ("confidence", "margin"):
            chosen = most_confident(table.assign(confidence=table[score]), keep)
            print(f"{score:10s} k={keep:3d}: {summary(chosen['error_deg'].to_numpy())}")
    correlation = table[["confidence", "margin"]].corrwith(table["error_deg"], method="spearman")
    print(
        f"Spearman correlation with the error: confidence {correlation['confidence']:.3f}, margin {correlation['margin']:.3f}"
    )
    if arguments.out:
        table.to_csv(arguments.out, index=False)


if __name__ == "__main__":
    main()
