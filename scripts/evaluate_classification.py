from _bootstrap import start

log = start(snakemake, "evaluate_classification")

import torch

from dst3d import evaluate
from dst3d.inputs import imagefolder
from dst3d.io import write_table
from dst3d.training import classify, loop

torch.set_num_threads(snakemake.threads)
model, checkpoint = loop.load_checkpoint(snakemake.input.model)
classes = checkpoint["categories"]
frame = imagefolder.read_imagefolder(snakemake.input.images, classes).rename(columns={"label": "category"})
logits = evaluate.table_logits(model, checkpoint["settings"], frame, snakemake.params.batch_size, snakemake.threads)
# The arg-max over the classes this set holds (an OOD set may hold a subset of the training classes).
present = sorted(set(frame["category"]))
columns = [classes.index(name) for name in present]
predictions = frame[["image_id", "category"]].copy()
predictions["predicted_category"] = [present[index] for index in logits[:, columns].argmax(1).tolist()]
metrics = classify.accuracy_table(predictions)
metrics.insert(0, "pretraining", snakemake.wildcards.pretraining)
metrics.insert(1, "backbone", snakemake.wildcards.backbone_name)
metrics.insert(2, "eval_set", snakemake.wildcards.eval_set)
metrics["classes"] = len(present)
metrics["manifest_hash"] = checkpoint["manifest_hash"]
metrics["checkpoint_sha256"] = evaluate.file_sha256(snakemake.input.model)
write_table(predictions, snakemake.output.predictions)
write_table(metrics, snakemake.output.metrics)
log.info("\n%s", metrics.to_string(index=False))
