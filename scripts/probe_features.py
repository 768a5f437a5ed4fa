from _bootstrap import start

log = start(snakemake, "probe_features")

import pandas as pd
import torch

from dst3d import evaluate
from dst3d.identity import derive_seed
from dst3d.inputs import datasets
from dst3d.io import read_tables, write_table
from dst3d.training import cropping, loop, pose, probing

torch.set_num_threads(snakemake.threads)
name = snakemake.wildcards.probe
inputs = snakemake.input.keys()
crop_settings = snakemake.params.crops
if "model" in inputs:  # a trained backbone sees the crops it was trained on (a fine-tuned variant may differ)
    trained = torch.load(snakemake.input.model, map_location="cpu", weights_only=False)["settings"]
    crop_settings = {key: trained[key] for key in crop_settings}
if "train_shards" in inputs:
    train = read_tables(snakemake.input.train_shards)
else:
    train = pd.read_parquet(snakemake.input.train_real)
train = train.sort_values("image_id").reset_index(drop=True)
if "eval_shards" in inputs:
    test = read_tables(snakemake.input.eval_shards).sort_values("image_id").reset_index(drop=True)
else:
    test = datasets.load_real_set(snakemake.params.real_set, snakemake.params.categories)
source = probing.parse_source(name, [name] if "model" in inputs else [])
seed = derive_seed(snakemake.params.seed, "probing", name)
model = probing.feature_extractor(source, seed, snakemake.input.model if "model" in inputs else None)
batch_size = snakemake.params.batch_size
features = {
    split: probing.extract_features(
        model, cropping.crops(frame, crop_settings, snakemake.threads), crop_settings["input_size"], batch_size
    )
    for split, frame in (("train", train), ("eval", test))
}
log.info(
    "%s: %d-d features of %d training and %d evaluation objects",
    name,
    features["train"].shape[1],
    len(train),
    len(test),
)
probe, history = probing.fit_probe(features["train"], pose.pose_labels(train), snakemake.params.probe_settings, seed)
log.info("probe loss %.4f -> %.4f after %d steps", history[0], history[-1], len(history))
predicted = probing.predict_poses(probe, features["eval"])
predictions = test[["image_id", "category", "azimuth", "elevation", "theta"]].reset_index(drop=True)
predictions[["pred_azimuth", "pred_elevation", "pred_theta"]] = predicted
predictions["error"] = evaluate.pose_errors(test[["azimuth", "elevation", "theta"]].to_numpy(), predicted)
metrics = evaluate.metrics_table(predictions)
metrics.insert(0, "source", name)
metrics.insert(1, "train_set", snakemake.params.train_set)
metrics.insert(2, "eval_set", snakemake.params.eval_set)
metrics["train_loss"] = history[-1]
# Which weights the features came from: the variant's checkpoint, the ImageNet file of the torch cache, or none.
if "model" in inputs:
    weights = str(snakemake.input.model)
elif source.kind == "imagenet":
    weights = str(loop.pretrained_weights_path(source.backbone)[0])
else:
    weights = ""
metrics["weights"] = weights
metrics["checkpoint_sha256"] = evaluate.file_sha256(weights) if weights else ""
write_table(predictions, snakemake.output.predictions)
write_table(metrics, snakemake.output.metrics)
log.info("\n%s", metrics.to_string(index=False))
