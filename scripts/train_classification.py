from _bootstrap import start

log = start(snakemake, "train_classification")

import hashlib
import json
from pathlib import Path

import pandas as pd
import torch

from dst3d import classification
from dst3d.evaluate import file_sha256
from dst3d.identity import derive_seed
from dst3d.inputs import imagefolder
from dst3d.io import write_table
from dst3d.training import classify, cropping, loop

settings = {**snakemake.params.settings, "device": snakemake.config["train"]["device"]}
pretraining, backbone = snakemake.wildcards.pretraining, snakemake.wildcards.backbone_name
folders = imagefolder.class_folders(snakemake.input.train)
frame = imagefolder.read_imagefolder(snakemake.input.train).rename(columns={"label": "category"})
classes = snakemake.input.classes if "classes" in snakemake.input.keys() else None
mapping = imagefolder.class_mapping(folders, snakemake.params.categories, classes)
log.info(
    "%d classes, %d with generated data (%s); %d training images",
    len(folders),
    sum(category is not None for category in mapping.values()),
    {folder: category for folder, category in mapping.items() if category},
    len(frame),
)
seed = derive_seed(snakemake.params.seed, "classification", pretraining, backbone)
task = classify.task(folders)
init, provenance = None, {}
if "init" in snakemake.input.keys():
    pretrained = torch.load(snakemake.input.init, map_location="cpu", weights_only=False)
    torch.manual_seed(seed)
    model = loop.build_model(backbone, pretrained=False, outputs=len(folders))
    head = loop.head_layer(model)
    head_name = next(name for name, module in model.named_modules() if module is head)
    state = dict(pretrained["model"])
    weight, bias = classification.initial_head(
        state[f"{head_name}.weight"], state[f"{head_name}.bias"], pretrained["categories"], mapping, head
    )
    state[f"{head_name}.weight"], state[f"{head_name}.bias"] = weight, bias
    init_sha256 = file_sha256(snakemake.input.init)
    init = (state, init_sha256)
    provenance = {"init_checkpoint": str(snakemake.input.init), "init_checkpoint_sha256": init_sha256}
    log.info("fine-tuning from %s (sha256 %s)", snakemake.input.init, init_sha256)
images = cropping.crops(frame, settings, snakemake.threads)
labels = classify.category_labels(frame, folders)
resume_path = Path(snakemake.params.resume)
result = loop.train(
    images,
    labels,
    frame["image_id"].tolist(),
    settings,
    seed=seed,
    threads=snakemake.threads,
    resume_path=resume_path,
    log=log,
    task=task,
    init=init,
)
manifest = frame[["image_id", "image_path", "category"]].to_csv(index=False).encode()
loop.save_checkpoint(
    snakemake.output.model,
    result.model,
    settings,
    {
        "task": "classification",
        "categories": folders,
        "class_mapping": mapping,
        "variant": pretraining,
        "images": len(frame),
        "manifest_hash": hashlib.sha256(manifest).hexdigest(),
        "history": result.history,
        "seed": snakemake.params.seed,
        "config": json.loads(json.dumps(snakemake.config)),
        **provenance,
    },
)
write_table(pd.DataFrame(result.history), snakemake.output.history)
resume_path.unlink(missing_ok=True)
