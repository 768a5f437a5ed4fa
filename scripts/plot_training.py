from _bootstrap import start

log = start(snakemake, "plot_training")

import pandas as pd

from dst3d.figures import plot_both, training_figure

histories = {
    variant: pd.read_csv(path) for variant, path in zip(snakemake.params.variants, snakemake.input, strict=True)
}
plot_both(training_figure(histories), snakemake.output.png, snakemake.output.pdf)
log.info("training curves of %s", ", ".join(histories))
