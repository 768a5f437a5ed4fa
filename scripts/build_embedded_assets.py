from _bootstrap import start

log = start(snakemake, "build_embedded_assets")

from dst3d.inputs.embedded import build_embedded_assets
from dst3d.io import staged_directory

settings = {**snakemake.params.settings, "categories": snakemake.params.categories}
with staged_directory(snakemake.output[0]) as staging:
    build_embedded_assets(staging, settings, snakemake.params.seed)
log.info("embedded assets written to %s", snakemake.output[0])
