from _bootstrap import start

log = start(snakemake, "generate_shard")

import json

import pandas as pd

from dst3d.generate import generate_shard
from dst3d.io import write_table
from dst3d.workflow_config import with_runtime

backend = snakemake.wildcards.backend
prompt_set = json.loads(open(snakemake.input.prompts).read()) if "prompts" in snakemake.input.keys() else None
table = generate_shard(
    backend,
    pd.read_parquet(snakemake.input.annotations),
    snakemake.output.images,
    with_runtime(snakemake.params.settings, snakemake.config["generate"].get(backend) or {}, "generate"),
    snakemake.params.seed,
    prompt_set=prompt_set,
    edges_dir=snakemake.input.get("edges"),
    log=log,
)
write_table(table, snakemake.output.annotations)
log.info("%d images generated with %s", len(table), backend)
