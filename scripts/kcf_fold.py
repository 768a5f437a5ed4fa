from _bootstrap import start

log = start(snakemake, "kcf_fold")

import numpy as np
import torch

from dst3d import kcf, pose
from dst3d.identity import derive_seed
from dst3d.io import read_tables, write_table

group, fold = snakemake.wildcards.group, int(snakemake.wildcards.fold)
settings, train_settings = snakemake.params.settings, snakemake.params.train_settings
frame = read_tables(snakemake.input)
frame["kcf_fold"] = kcf.assign_folds(frame, settings["folds"], snakemake.params.seed)
training, held_out = kcf.fold_split(frame, fold, group)
log.info("fold %d of group %s: training on %d images, scoring %d", fold, group, len(training), len(held_out))
images, labels = pose.prepare(training, train_settings, snakemake.threads)
result = pose.train(
    images, labels, training["image_id"].tolist(), train_settings,
    seed=derive_seed(snakemake.params.seed, "kcf-train", snakemake.wildcards.backend, group, fold),
    threads=snakemake.threads, log=log,
)
held_images, held_labels = pose.prepare(held_out, train_settings, snakemake.threads)
logits = pose.predict_logits(result.model, held_images, train_settings["input_size"])
losses = pose.pose_loss(logits, torch.from_numpy(held_labels), reduction="none").numpy()
scores = held_out[["image_id", "category", "kcf_fold"]].reset_index(drop=True)
scores["kcf_loss"] = np.round(losses, 6)
write_table(scores, snakemake.output[0])
