from _bootstrap import start

log = start(snakemake, "select_real")

from dst3d.inputs import datasets
from dst3d.io import write_table
from dst3d.training.variants import few_shot

entry, subset = snakemake.params.entry, snakemake.wildcards.subset
frame = datasets.load_real_set(entry, snakemake.params.categories)
shots = None if subset == "all" else int(subset.removesuffix("shot"))
selected = few_shot(frame, shots, snakemake.params.seed, entry["name"])
write_table(selected, snakemake.output[0])
log.info(
    "%s (%s split) %s: %d of %d objects\n%s",
    entry["name"],
    entry["split"],
    subset,
    len(selected),
    len(frame),
    selected.groupby("category").size().to_string(),
)
