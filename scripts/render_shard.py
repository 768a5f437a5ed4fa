from _bootstrap import start

log = start(snakemake, "render_shard")

import pandas as pd

from dst3d.identity import shard_indices
from dst3d.inputs import catalog
from dst3d.io import write_table
from dst3d.render.blender import render_shard
from dst3d.workflow_config import with_runtime

split, category = snakemake.wildcards.split, snakemake.wildcards.category
split_settings = snakemake.params.split_settings
indices = shard_indices(
    int(snakemake.wildcards.shard), split_settings["shard_size"], split_settings["images_per_category"]
)
models = catalog.models_of(pd.read_csv(snakemake.input.models, dtype=catalog.MODEL_INDEX_DTYPES), category)
textures = catalog.split_assets(pd.read_csv(snakemake.input.textures), split, "textures")
backgrounds = catalog.split_assets(pd.read_csv(snakemake.input.backgrounds), split, "backgrounds")
environments = pd.read_csv(snakemake.input.environments)
settings = with_runtime(snakemake.params.settings, snakemake.config["render"], "render")
table, timing = render_shard(
    split,
    category,
    indices,
    models,
    textures,
    backgrounds,
    settings,
    snakemake.params.seed,
    snakemake.output.images,
    threads=snakemake.threads,
    log=log,
    environments=environments,
)
write_table(table, snakemake.output.annotations)
log.info(
    "%d images; %.2f s in Blender's render call, %.2f s importing models, of %.2f s",
    timing["images"],
    timing["render_s"],
    timing["import_s"],
    timing["total_s"],
)
