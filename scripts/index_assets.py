from _bootstrap import start

log = start(snakemake, "index_assets")

from pathlib import Path

from dst3d.inputs import catalog, official
from dst3d.io import write_table

if snakemake.params.source == "embedded":
    root = Path(snakemake.input.embedded)
    models_csv, textures_dir, backgrounds_dir = root / "models.csv", root / "textures", root / "backgrounds"
else:
    folders = snakemake.params.folders
    textures_dir, backgrounds_dir = Path(folders["textures_dir"]), Path(folders["backgrounds_dir"])
if snakemake.params.source == "embedded":
    models = catalog.read_model_table(models_csv)
else:
    models = official.load_models(folders, snakemake.params.categories)
for category in snakemake.params.categories:
    catalog.models_of(models, category)  # every configured category needs models
textures = catalog.index_textures(textures_dir, snakemake.params.test_fraction, snakemake.params.dtd_split)
backgrounds = catalog.index_backgrounds(backgrounds_dir, snakemake.params.test_fraction)
environments = catalog.index_environments(snakemake.params.environments_dir)
for split in ("train", "test"):
    catalog.split_assets(textures, split, f"textures under {textures_dir}")
    catalog.split_assets(backgrounds, split, f"backgrounds under {backgrounds_dir}")
# Paths inside the working folder (the embedded assets) relative to it, as the records' image paths are.
for table, path in (
    (models, snakemake.output.models),
    (textures, snakemake.output.textures),
    (backgrounds, snakemake.output.backgrounds),
    (environments, snakemake.output.environments),
):
    write_table(catalog.relative_inside(table, Path.cwd()), path)
log.info(
    "%d models, %d textures, %d backgrounds, %d environment maps",
    len(models),
    len(textures),
    len(backgrounds),
    len(environments),
)
