from _bootstrap import start

log = start(snakemake, "generate_shard")

import json

import pandas as pd

from dst3d.generate import composite_shard
from dst3d.identity import image_seed
from dst3d.io import write_table

backend = snakemake.wildcards.backend
records = pd.read_parquet(snakemake.input.annotations)
if backend == "composite":
    generated = composite_shard(records, snakemake.output.images, log=log)
else:
    from dst3d import diffusion

    settings = diffusion.resolve_settings(backend, snakemake.params.settings)
    diffusion.check_models_available(backend, settings)
    prompt_set = json.loads(open(snakemake.input.prompts).read())
    records["prompt"] = records["image_id"].map(prompt_set["prompts"])
    records["edge_path"] = [f"{snakemake.input.edges}/{image_id}.png" for image_id in records["image_id"]]
    records["generate_seed"] = [
        image_seed(snakemake.params.seed, row.split, row.category, row.image_index, "generate") for row in records.itertuples()
    ]
    generated = diffusion.generate_shard(
        backend, records, snakemake.output.images, settings, prompt_set["negative_prompt"], log=log
    )
table = records.drop(columns=[c for c in generated.columns if c != "image_id" and c in records.columns])
table = table.merge(generated, on="image_id", how="left", validate="one_to_one")
write_table(table, snakemake.output.annotations)
log.info("%d images generated with %s", len(table), backend)
