from _bootstrap import start

log = start(snakemake, "evaluate_pose")

import torch

from dst3d import evaluate
from dst3d.io import write_table
from dst3d.training import loop

torch.set_num_threads(snakemake.threads)
settings = snakemake.params.settings
params = snakemake.params
eval_set, frame = evaluate.evaluation_set(
    params.real_set if "real_set" in params.keys() else None,
    params.categories if "categories" in params.keys() else [],
    snakemake.input.shards if "shards" in snakemake.input.keys() else None,
)
log.info("evaluating %s on %s: %d objects", snakemake.input.model, eval_set, len(frame))
model, checkpoint = loop.load_checkpoint(snakemake.input.model)
predictions = evaluate.predict_poses(
    model, checkpoint["settings"], frame, settings["batch_size"], settings["flip"], snakemake.threads
)
metrics = evaluate.provenance_columns(
    evaluate.metrics_table(predictions), checkpoint["variant"], eval_set, checkpoint, snakemake.input.model
)
write_table(predictions, snakemake.output.predictions)
write_table(metrics, snakemake.output.metrics)
log.info("\n%s", metrics.to_string(index=False))
