from _bootstrap import start

log = start(snakemake, "open_vocabulary_table")

import pandas as pd

from dst3d import imagenet3d, tables
from dst3d.io import atomic_write, write_table
from dst3d.tables import read_csv

settings = snakemake.params.table
pairs = iter(zip(snakemake.input.seen_only, snakemake.input.oracle, strict=True))
parts = []
for variant in settings["variants"]:
    for eval_set in settings["eval_sets"]:
        seen_only_path, oracle_path = next(pairs)
        seen_only = read_csv(seen_only_path)
        novel = seen_only[seen_only["category"].isin(settings["novel"])]
        if novel.empty:
            raise ValueError(f"{seen_only_path} has no object of the novel categories {settings['novel']}")
        part = imagenet3d.open_vocabulary_table(novel, read_csv(oracle_path))
        part.insert(0, "variant", variant)
        part.insert(1, "eval_set", eval_set)
        parts.append(part)
table = pd.concat(parts, ignore_index=True)
write_table(table, snakemake.output.csv)
caption = (
    f"Open-vocabulary pose estimation: estimators trained on the seen categories ({', '.join(settings['seen'])}) "
    f"evaluated on the novel ones ({', '.join(settings['novel'])}), beside the oracle trained on all (accuracies in %)."
)
for path, text in ((snakemake.output.markdown, tables.markdown), (snakemake.output.latex, tables.latex)):
    with atomic_write(path) as temporary:
        temporary.write_text(text(table, caption))
log.info("\n%s", table.to_string(index=False))
