from _bootstrap import start

log = start(snakemake, "train_pose_estimator")

from pathlib import Path

import pandas as pd

from dst3d import pose
from dst3d.identity import derive_seed
from dst3d.io import read_tables, write_table

settings = snakemake.params.settings
frame = read_tables(snakemake.input.shards)
if "kept" in snakemake.input.keys():
    kept = set(pd.read_csv(snakemake.input.kept)["image_id"])
    frame = frame[frame["image_id"].isin(kept)]
frame = frame.sort_values("image_id").reset_index(drop=True)
log.info("training on %d images", len(frame))
images, labels = pose.prepare(frame, settings, snakemake.threads)
resume_path = Path(snakemake.params.resume)
variant = f"{snakemake.wildcards.backend}-{snakemake.wildcards.selection}"
result = pose.train(
    images, labels, frame["image_id"].tolist(), settings,
    seed=derive_seed(snakemake.params.seed, "train", variant), threads=snakemake.threads,
    resume_path=resume_path, log=log,
)
pose.save_checkpoint(snakemake.output.model, result.model, settings, {
    "variant": variant, "images": len(frame), "manifest_hash": pose.manifest_hash(frame),
    "history": result.history, "seed": snakemake.params.seed,
})
write_table(pd.DataFrame(result.history), snakemake.output.history)
resume_path.unlink(missing_ok=True)
