from _bootstrap import start

log = start(snakemake, "kcf_select")

import pandas as pd

from dst3d import kcf
from dst3d.io import write_table

scores = pd.concat([pd.read_csv(path) for path in snakemake.input], ignore_index=True).sort_values("image_id")
kept, summary = kcf.select(scores, snakemake.params.policy)
write_table(scores, snakemake.output.scores)
write_table(kept, snakemake.output.kept)
write_table(summary, snakemake.output.summary)
log.info("KCF kept %d of %d images\n%s", len(kept), len(scores), summary.to_string(index=False))
