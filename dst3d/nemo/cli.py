"""The NeMo rules' entry point, run by the NeMo interpreter (README, "NeMo"):
``python -m dst3d.nemo.cli <train|cc3d|evaluate> --job '<json>'``, logging to stderr.

Job keys (every path as the rule gives it):

* ``train``: variant, shards (generated-image tables), kept (KCF's kept list or null), real (selected real
  objects or null), init (the NeMo checkpoint a ``_then_`` variant fine-tunes, or null), meshes ({category:
  .npz}), categories, settings (the resolved ``nemo`` block), seed, threads, outputs {model, history}.
* ``cc3d``: variant (the adapted model's name), model (the NeMo checkpoint to adapt), unlabelled (a real
  source's selected objects; their pose columns are dropped before anything reads them, and come back only
  as the diagnostic ``label_error_deg`` of the pseudo-label table), the variant's own shards / kept / real,
  categories, settings, seed, threads, outputs {model, history, pseudo_labels}.
* ``evaluate``: model, shards (the held-out synthetic split) or real_set (an ``evaluate.real_sets`` entry),
  categories, batch_size, search (the ``nemo.search`` block; the checkpoint's when absent), threads, outputs
  {predictions, metrics}.
* ``kcf_fold``: KCF with NeMo as the fold model (``kcf.estimator: nemo``): backend, group (a category or
  ``all``), fold, folds, shards (the backend's generated training tables), meshes, categories, settings, seed,
  threads, outputs {scores}: a NeMo model trained on the other folds scores each held-out image by its
  reconstruction loss at the annotated pose (``kcf_loss``, the columns of the ResNet fold job's table).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

import numpy as np
import pandas as pd

from dst3d import evaluate
from dst3d.io import read_tables, write_table
from dst3d.nemo import training
from dst3d.nemo.mesh import NeuralMesh
from dst3d.tables import read_csv

log = logging.getLogger("dst3d.nemo")
_POSE = ["azimuth", "elevation", "theta"]


def training_frame(job: dict) -> pd.DataFrame:
    """The labelled training objects of a job: the generated images (those KCF kept, with a kept list), then
    the selected real objects, each part in image-id order."""
    parts = []
    if job.get("shards"):
        generated = read_tables(job["shards"])
        if job.get("kept"):
            generated = generated[generated["image_id"].isin(read_csv(job["kept"])["image_id"])]
        parts.append(generated.sort_values("image_id").reset_index(drop=True))
    if job.get("real"):
        parts.append(pd.read_parquet(job["real"]).sort_values("image_id").reset_index(drop=True))
    if not parts:
        raise ValueError(f"NeMo job of {job.get('variant')!r} has no training data (no shards and no real objects)")
    frame = pd.concat(parts, ignore_index=True)
    return frame[frame["category"].isin(job["categories"])].reset_index(drop=True)


def read_mesh(path: str) -> NeuralMesh:
    with np.load(path) as stored:
        return NeuralMesh(stored["vertices"].astype(np.float32), stored["faces"].astype(np.int64))


def _provenance(job: dict, frame: pd.DataFrame, history: list[dict]) -> dict:
    from dst3d.training.pose import manifest_hash

    return {
        "variant": job["variant"],
        "categories": job["categories"],
        "images": len(frame),
        "manifest_hash": manifest_hash(frame),
        "history": history,
        "seed": job["seed"],
    }


def train(job: dict) -> None:
    settings, threads = job["settings"], job["threads"]
    frame = training_frame(job)
    if job.get("init"):  # a _then_ variant: fine-tune the synthetic variant's NeMo model
        model, _ = training.load(job["init"])
        finetune = settings.get("finetune", {})
        epochs, lr = finetune.get("epochs", settings["epochs"]), finetune.get("lr", settings["lr"])
        extra = {"init_checkpoint": job["init"], "init_checkpoint_sha256": evaluate.file_sha256(job["init"])}
        log.info("fine-tuning %s (sha256 %s)", job["init"], extra["init_checkpoint_sha256"])
    else:
        meshes = {category: read_mesh(job["meshes"][category]) for category in job["categories"]}
        model, epochs, lr, extra = training.build(meshes, settings, job["seed"]), settings["epochs"], settings["lr"], {}
    log.info("training NeMo %s on %d objects, %d epochs", job["variant"], len(frame), epochs)
    crops = training.load_crops(frame, model.meshes, settings, threads)
    history = training.train(model, crops, epochs, lr, job["seed"], threads, log)
    training.save(job["outputs"]["model"], model, {**_provenance(job, frame, history), **extra})
    write_table(pd.DataFrame(history), job["outputs"]["history"])


def cc3d(job: dict) -> None:
    settings, threads = job["settings"], job["threads"]
    adapt = settings["cc3d"]
    model, _ = training.load(job["model"])
    unlabelled = pd.read_parquet(job["unlabelled"])
    unlabelled = unlabelled[unlabelled["category"].isin(model.meshes)].sort_values("image_id").reset_index(drop=True)
    labels = unlabelled[["image_id", *_POSE]].copy()
    unlabelled = unlabelled.drop(columns=[c for c in [*_POSE, "distance"] if c in unlabelled])
    log.info("CC3D: pseudo-labelling %d unlabelled real objects of %s", len(unlabelled), job["unlabelled"])
    crops = training.load_crops(unlabelled, model.meshes, settings, threads, labelled=False)
    chosen, pseudo = training.pseudo_labels(model, unlabelled, crops, adapt["keep"], settings["batch_size"], threads)
    truth = chosen[["image_id"]].merge(labels, on="image_id", how="left")
    chosen["label_error_deg"] = np.degrees(
        evaluate.pose_errors(
            truth[_POSE].to_numpy(), chosen[["pred_azimuth", "pred_elevation", "pred_theta"]].to_numpy()
        )
    )
    log.info(
        "CC3D: kept %d pseudo-labels (per category %s), median label error %.1f degrees (diagnostic only)",
        len(chosen),
        chosen.groupby("category").size().to_dict(),
        float(chosen["label_error_deg"].median()) if len(chosen) else float("nan"),
    )
    frame = training_frame(job)
    labelled = training.load_crops(frame, model.meshes, settings, threads)
    history = training.train(
        model, labelled, adapt["epochs"], adapt["lr"], job["seed"], threads, log, pseudo=pseudo, alpha=adapt["alpha"]
    )
    extra = {
        "adapted_from": job["model"],
        "adapted_from_sha256": evaluate.file_sha256(job["model"]),
        "pseudo_labels": len(chosen),
    }
    training.save(job["outputs"]["model"], model, {**_provenance(job, frame, history), **extra})
    write_table(pd.DataFrame(history), job["outputs"]["history"])
    write_table(chosen, job["outputs"]["pseudo_labels"])


def evaluate_model(job: dict) -> None:
    model, checkpoint = training.load(job["model"])
    if job.get("search"):  # the run's pose search, not the one the model was trained under
        model.settings = {**model.settings, "search": job["search"]}
    eval_set, frame = evaluate.evaluation_set(job.get("real_set"), job["categories"], job.get("shards"))
    frame = frame[frame["category"].isin(model.meshes)].reset_index(drop=True)
    log.info("evaluating NeMo %s on %s: %d objects", checkpoint["variant"], eval_set, len(frame))
    crops = training.load_crops(frame, model.meshes, model.settings, job["threads"], labelled=False)
    predicted = training.predict(model, crops, job["batch_size"], job["threads"])
    predictions = frame[["image_id", "category", *_POSE]].reset_index(drop=True)
    predictions[["pred_azimuth", "pred_elevation", "pred_theta"]] = predicted[
        ["pred_azimuth", "pred_elevation", "pred_theta"]
    ].to_numpy()
    predictions["error"] = evaluate.pose_errors(
        predictions[_POSE].to_numpy(), predictions[["pred_azimuth", "pred_elevation", "pred_theta"]].to_numpy()
    )
    predictions[["pred_distance", "loss", "confidence"]] = predicted[["pred_distance", "loss", "confidence"]].to_numpy()
    metrics = evaluate.provenance_columns(
        evaluate.metrics_table(predictions), checkpoint["variant"], eval_set, checkpoint, job["model"]
    )
    metrics.insert(0, "estimator", "nemo")
    write_table(predictions, job["outputs"]["predictions"])
    write_table(metrics, job["outputs"]["metrics"])
    log.info("\n%s", metrics.to_string(index=False))


def kcf_fold(job: dict) -> None:
    from dst3d import kcf
    from dst3d.identity import derive_seed

    settings, threads, fold = job["settings"], job["threads"], int(job["fold"])
    frame = read_tables(job["shards"])
    frame["kcf_fold"] = kcf.assign_folds(frame, job["folds"], job["seed"])
    training_part, held_out = kcf.fold_split(frame, fold, job["group"])
    log.info(
        "NeMo KCF fold %d of group %s: training on %d images, scoring %d",
        fold,
        job["group"],
        len(training_part),
        len(held_out),
    )
    categories = sorted(set(frame["category"]) & set(job["categories"]))
    meshes = {category: read_mesh(job["meshes"][category]) for category in categories}
    seed = derive_seed(job["seed"], "kcf-train", job["backend"], job["group"], fold)
    model = training.build(meshes, settings, seed)
    crops = training.load_crops(training_part.reset_index(drop=True), model.meshes, settings, threads)
    training.train(model, crops, settings["epochs"], settings["lr"], seed, threads, log)
    held_out = held_out.reset_index(drop=True)
    scored = training.load_crops(held_out, model.meshes, settings, threads)
    scores = held_out[["image_id", "category", "kcf_fold"]].copy()
    scores["kcf_loss"] = np.round(training.annotation_losses(model, scored, settings["batch_size"], threads), 6)
    write_table(scores, job["outputs"]["scores"])


COMMANDS = {"train": train, "cc3d": cc3d, "evaluate": evaluate_model, "kcf_fold": kcf_fold}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dst3d.nemo.cli", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--job", required=True, help="the job as JSON (module docstring)")
    arguments = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        job = json.loads(arguments.job)
    except json.JSONDecodeError as error:
        parser.error(f"--job is not JSON: {error}")
    COMMANDS[arguments.command](job)


if __name__ == "__main__":
    main()
