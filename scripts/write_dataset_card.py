from _bootstrap import start

log = start(snakemake, "write_dataset_card")

import hashlib
from pathlib import Path

from dst3d import tables
from dst3d.export import dataset_card, image_manifest, variant_records
from dst3d.io import atomic_write

exported, generated = variant_records(snakemake.input.train, snakemake.input.test, snakemake.input.get("kept"))
folder = Path(snakemake.output.card).parent
manifest = image_manifest(exported, folder)
with atomic_write(snakemake.output.manifest) as temporary:
    temporary.write_text(manifest)
card = dataset_card(
    snakemake.wildcards.variant,
    exported,
    generated,
    snakemake.params.config,
    snakemake.params.backend,
    snakemake.params.settings_hash,
    tables.settings_hash(snakemake.params.config),
    hashlib.sha256(manifest.encode()).hexdigest(),
    snakemake.params.formats,
)
with atomic_write(snakemake.output.card) as temporary:
    temporary.write_text(card)
log.info("dataset card of %s: %d images in the manifest", snakemake.wildcards.variant, manifest.count("\n"))
