from _bootstrap import start

log = start(snakemake, "evaluate_category_classifier")

import torch

from dst3d import evaluate
from dst3d.io import read_tables, write_table
from dst3d.training import classify, loop

torch.set_num_threads(snakemake.threads)
model, checkpoint = loop.load_checkpoint(snakemake.input.model)
frame = read_tables(snakemake.input.shards).sort_values("image_id").reset_index(drop=True)
logits = evaluate.table_logits(
    model, checkpoint["settings"], frame, snakemake.params.settings["batch_size"], snakemake.threads
)
predictions = frame[["image_id", "category"]].copy()
predictions["predicted_category"] = [checkpoint["categories"][index] for index in logits.argmax(1).tolist()]
metrics = evaluate.provenance_columns(
    classify.accuracy_table(predictions),
    checkpoint["variant"],
    evaluate.SYNTHETIC_TEST,
    checkpoint,
    snakemake.input.model,
)
write_table(predictions, snakemake.output.predictions)
write_table(metrics, snakemake.output.metrics)
log.info("\n%s", metrics.to_string(index=False))
