from _bootstrap import start

log = start(snakemake, "evaluate_pose")

import torch

from dst3d import evaluate, pose
from dst3d.io import read_tables, write_table

torch.set_num_threads(snakemake.threads)
model, checkpoint = pose.load_checkpoint(snakemake.input.model)
frame = read_tables(snakemake.input.shards).sort_values("image_id").reset_index(drop=True)
images, _ = pose.prepare(frame, checkpoint["settings"], snakemake.threads)
logits = pose.predict_logits(model, images, checkpoint["settings"]["input_size"],
                             snakemake.params.settings["batch_size"], snakemake.params.settings["flip"])
predicted = pose.decode(logits)
truth = frame[["azimuth", "elevation", "theta"]].to_numpy()
predictions = frame[["image_id", "category", "azimuth", "elevation", "theta"]].copy()
predictions[["pred_azimuth", "pred_elevation", "pred_theta"]] = predicted
predictions["error"] = evaluate.pose_errors(truth, predicted)
metrics = evaluate.metrics_table(predictions)
metrics.insert(0, "variant", f"{snakemake.wildcards.backend}-{snakemake.wildcards.selection}")
metrics["manifest_hash"] = checkpoint["manifest_hash"]
write_table(predictions, snakemake.output.predictions)
write_table(metrics, snakemake.output.metrics)
log.info("\n%s", metrics.to_string(index=False))
