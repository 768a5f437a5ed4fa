from _bootstrap import start

log = start(snakemake, f"train_{snakemake.params.task}")

import json
from pathlib import Path

import pandas as pd
import torch

from dst3d.evaluate import file_sha256
from dst3d.identity import derive_seed
from dst3d.io import read_tables, write_table
from dst3d.tables import read_csv
from dst3d.training import classify, cropping, joint, loop, pose

settings = {**snakemake.params.settings, "device": snakemake.config["train"]["device"]}
task_name = snakemake.params.task
variant = snakemake.wildcards.variant
inputs = snakemake.input.keys()
# The training set: the generated images of the synthetic part, then the selected real objects (the two tables
# keep their own box conventions, so their crops are cut apart and joined).
parts = []
if "shards" in inputs:
    generated = read_tables(snakemake.input.shards)
    if "kept" in inputs:
        generated = generated[generated["image_id"].isin(read_csv(snakemake.input.kept)["image_id"])]
    parts.append(generated.sort_values("image_id").reset_index(drop=True))
if "real" in inputs:
    parts.append(pd.read_parquet(snakemake.input.real).sort_values("image_id").reset_index(drop=True))
seen = snakemake.params.seen_categories if "seen_categories" in snakemake.params.keys() else None
if seen:  # an open-vocabulary estimator: trained on the seen categories only
    parts = [part[part["category"].isin(seen)].reset_index(drop=True) for part in parts]
    provenance_seen = {"seen_categories": list(seen)}
else:
    provenance_seen = {}
columns = ["image_id", "image_path", "category", "azimuth", "elevation", "theta"]
frame = pd.concat([part[columns] for part in parts], ignore_index=True)
images = torch.cat([cropping.crops(part, settings, snakemake.threads) for part in parts])
if task_name == "pose":
    task, labels = pose.POSE, pose.pose_labels(frame)
    seed = derive_seed(snakemake.params.seed, "train", variant, *(["open_vocabulary"] if seen else []))
elif task_name == "joint":
    categories = snakemake.params.categories
    task, labels = joint.task(categories), joint.joint_labels(frame, categories)
    seed = derive_seed(snakemake.params.seed, "train", task_name, variant)
else:
    categories = snakemake.params.categories
    task, labels = classify.task(categories), classify.category_labels(frame, categories)
    seed = derive_seed(snakemake.params.seed, "train", task_name, variant)
init, provenance = None, dict(provenance_seen)
if "init" in inputs:  # fine-tuning: start from the synthetic variant's checkpoint
    init_checkpoint = torch.load(snakemake.input.init, map_location="cpu", weights_only=False)
    init_sha256 = file_sha256(snakemake.input.init)
    init = (init_checkpoint["model"], init_sha256)
    provenance = {"init_checkpoint": str(snakemake.input.init), "init_checkpoint_sha256": init_sha256}
    log.info("fine-tuning from %s (sha256 %s)", snakemake.input.init, init_sha256)
log.info("training the %s network of %s on %d images (%s)", task_name, variant, len(frame), [len(p) for p in parts])
resume_path = Path(snakemake.params.resume)
result = loop.train(
    images,
    labels,
    frame["image_id"].tolist(),
    settings,
    seed=seed,
    threads=snakemake.threads,
    resume_path=resume_path,
    log=log,
    task=task,
    init=init,
    thetas=frame["theta"].to_numpy() if task.theta_column is not None else None,
)
loop.save_checkpoint(
    snakemake.output.model,
    result.model,
    settings,
    {
        "task": task_name,
        "categories": snakemake.params.categories,
        "variant": variant,
        "images": len(frame),
        "manifest_hash": pose.manifest_hash(frame),
        "history": result.history,
        "seed": snakemake.params.seed,
        "config": json.loads(json.dumps(snakemake.config)),
        **provenance,
    },
)
write_table(pd.DataFrame(result.history), snakemake.output.history)
resume_path.unlink(missing_ok=True)
