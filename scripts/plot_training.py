from _bootstrap import start

log = start(snakemake, "plot_training")


from dst3d.figures import plot_both, training_figure
from dst3d.tables import read_csv

histories = {variant: read_csv(path) for variant, path in zip(snakemake.params.variants, snakemake.input, strict=True)}
plot_both(training_figure(histories), snakemake.output.png, snakemake.output.pdf)
log.info("training curves of %s", ", ".join(histories))
