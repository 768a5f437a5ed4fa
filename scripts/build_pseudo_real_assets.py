from _bootstrap import start

log = start(snakemake, "build_pseudo_real_assets")

from pathlib import Path

from dst3d.inputs import catalog, pseudo_real
from dst3d.io import staged_directory, write_table

final = Path(snakemake.output.images)
with staged_directory(final) as staging:
    textures, backgrounds = pseudo_real.build_assets(
        staging,
        snakemake.params.settings,
        snakemake.params.texture_size,
        snakemake.params.background_size,
        snakemake.params.seed,
    )
# Paths of the published folder relative to the working folder, as the asset index has them.
textures, backgrounds = (
    catalog.relative_inside(table.assign(path=[str(final / path) for path in table["path"]]), Path.cwd())
    for table in (textures, backgrounds)
)
write_table(textures, snakemake.output.textures)
write_table(backgrounds, snakemake.output.backgrounds)
log.info("%d pseudo-real textures, %d backgrounds", textures["path"].nunique(), len(backgrounds))
