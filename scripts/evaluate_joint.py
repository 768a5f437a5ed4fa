from _bootstrap import start

log = start(snakemake, "evaluate_joint")

import torch

from dst3d import evaluate
from dst3d.inputs import datasets
from dst3d.io import read_tables, write_table
from dst3d.training import cropping, joint, loop

torch.set_num_threads(snakemake.threads)
if "benchmark" in snakemake.params.keys():
    eval_set = snakemake.params.benchmark["name"]
    frame = datasets.load_benchmark(snakemake.params.benchmark, snakemake.params.categories)
else:
    eval_set = evaluate.SYNTHETIC_TEST
    frame = read_tables(snakemake.input.shards).sort_values("image_id").reset_index(drop=True)
model, checkpoint = loop.load_checkpoint(snakemake.input.model)
log.info("evaluating %s on %s: %d objects", snakemake.input.model, eval_set, len(frame))
settings = checkpoint["settings"]
logits = loop.predict_logits(
    model,
    cropping.crops(frame, settings, snakemake.threads),
    settings["input_size"],
    snakemake.params.settings["batch_size"],
    snakemake.params.settings["flip"],
)
predictions = joint.predictions_table(frame, logits, checkpoint["categories"])
metrics = evaluate.provenance_columns(
    joint.metrics_table(predictions), checkpoint["variant"], eval_set, checkpoint, snakemake.input.model
)
write_table(predictions, snakemake.output.predictions)
write_table(metrics, snakemake.output.metrics)
log.info("\n%s", metrics.to_string(index=False))
