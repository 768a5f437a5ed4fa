from _bootstrap import start

log = start(snakemake, f"train_{snakemake.params.task}")

import json
from pathlib import Path

import pandas as pd

from dst3d.identity import derive_seed
from dst3d.io import read_tables, write_table
from dst3d.training import classify, cropping, loop, pose

settings = {**snakemake.params.settings, "device": snakemake.config["train"]["device"]}
task_name = snakemake.params.task
variant = f"{snakemake.wildcards.backend}-{snakemake.wildcards.selection}"
frame = read_tables(snakemake.input.shards)
if "kept" in snakemake.input.keys():
    frame = frame[frame["image_id"].isin(pd.read_csv(snakemake.input.kept)["image_id"])]
frame = frame.sort_values("image_id").reset_index(drop=True)
if task_name == "pose":
    task, labels, seed = pose.POSE, pose.pose_labels(frame), derive_seed(snakemake.params.seed, "train", variant)
else:
    categories = snakemake.params.categories
    task, labels = classify.task(categories), classify.category_labels(frame, categories)
    seed = derive_seed(snakemake.params.seed, "train", task_name, variant)
log.info("training the %s network of %s on %d images", task_name, variant, len(frame))
resume_path = Path(snakemake.params.resume)
result = loop.train(
    cropping.crops(frame, settings, snakemake.threads),
    labels,
    frame["image_id"].tolist(),
    settings,
    seed=seed,
    threads=snakemake.threads,
    resume_path=resume_path,
    log=log,
    task=task,
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
    },
)
write_table(pd.DataFrame(result.history), snakemake.output.history)
resume_path.unlink(missing_ok=True)
