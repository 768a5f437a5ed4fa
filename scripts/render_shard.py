from _bootstrap import start

log = start(snakemake, "render_shard")

from dst3d.identity import shard_indices
from dst3d.io import write_table
from dst3d.render.blender import ShardAssets, render_shard
from dst3d.workflow_config import with_runtime

split, category = snakemake.wildcards.split, snakemake.wildcards.category
split_settings = snakemake.params.split_settings
indices = shard_indices(
    int(snakemake.wildcards.shard), split_settings["shard_size"], split_settings["images_per_category"]
)
assets = ShardAssets.from_indexes(
    split,
    category,
    snakemake.input.models,
    snakemake.input.textures,
    snakemake.input.backgrounds,
    snakemake.input.environments,
)
settings = with_runtime(snakemake.params.settings, snakemake.config["render"], "render")
table, timing = render_shard(
    split,
    category,
    indices,
    assets,
    settings,
    snakemake.params.seed,
    snakemake.output.images,
    threads=snakemake.threads,
    log=log,
)
write_table(table, snakemake.output.annotations)
log.info(
    "%d images; %.2f s in Blender's render call, %.2f s importing models, of %.2f s",
    timing["images"],
    timing["render_s"],
    timing["import_s"],
    timing["total_s"],
)
