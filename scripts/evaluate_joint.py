from _bootstrap import start

log = start(snakemake, "evaluate_joint")

import torch

from dst3d import evaluate
from dst3d.io import write_table
from dst3d.training import joint, loop

torch.set_num_threads(snakemake.threads)
params = snakemake.params
eval_set, frame = evaluate.evaluation_set(
    params.real_set if "real_set" in params.keys() else None,
    params.categories if "categories" in params.keys() else [],
    snakemake.input.shards if "shards" in snakemake.input.keys() else None,
)
model, checkpoint = loop.load_checkpoint(snakemake.input.model)
log.info("evaluating %s on %s: %d objects", snakemake.input.model, eval_set, len(frame))
batch_size, flip = params.settings["batch_size"], params.settings["flip"]
logits = evaluate.table_logits(model, checkpoint["settings"], frame, batch_size, snakemake.threads, flip)
predictions = joint.predictions_table(frame, logits, checkpoint["categories"])
metrics = evaluate.provenance_columns(
    joint.metrics_table(predictions), checkpoint["variant"], eval_set, checkpoint, snakemake.input.model
)
write_table(predictions, snakemake.output.predictions)
write_table(metrics, snakemake.output.metrics)
log.info("\n%s", metrics.to_string(index=False))
