from _bootstrap import start

log = start(snakemake, "build_pseudo_real_assets")

from pathlib import Path

from dst3d.inputs import pseudo_real
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
for table in (textures, backgrounds):  # absolute paths of the published folder, as the asset index has them
    table["path"] = [str((final / path).resolve()) for path in table["path"]]
write_table(textures, snakemake.output.textures)
write_table(backgrounds, snakemake.output.backgrounds)
log.info("%d pseudo-real textures, %d backgrounds", textures["path"].nunique(), len(backgrounds))
