from _bootstrap import start

log = start(snakemake, "write_pseudo_imagefolder")

from pathlib import Path

from dst3d.inputs import datasets, imagefolder
from dst3d.io import staged_directory
from dst3d.tables import read_csv

release = {"format": "pascal3d", "root": snakemake.input.release, "sources": ["imagenet"]}
objects = {
    split: datasets.load_real_set({**release, "name": "pseudo-real", "split": split}, snakemake.params.categories)
    for split in ("train", "val")
}
backgrounds = read_csv(snakemake.input.backgrounds)
photos = {  # the table's paths are relative to the working folder (or absolute)
    split: [Path(path) for path in backgrounds.loc[backgrounds["split"] == f"pseudo_{split}", "path"]]
    for split in ("train", "val")
}
with (
    staged_directory(Path(snakemake.output.train)) as train,
    staged_directory(Path(snakemake.output.val)) as val,
    staged_directory(Path(snakemake.output.rendition)) as rendition,
):
    imagefolder.write_stand_in(
        objects,
        photos,
        {"train": train, "val": val, "rendition": rendition},
        snakemake.params.size,
        snakemake.params.seed,
    )
for split, folder in (("train", snakemake.output.train), ("val", snakemake.output.val)):
    log.info("%s: %d images in %s", split, len(imagefolder.read_imagefolder(folder)), imagefolder.class_folders(folder))
