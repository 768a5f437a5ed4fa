from _bootstrap import start

log = start(snakemake, "metrics_table")

from pathlib import Path

import pandas as pd

from dst3d import tables
from dst3d.io import atomic_write, write_table
from dst3d.tables import with_estimator

table = pd.concat([tables.read_csv(path) for path in snakemake.input], ignore_index=True)
if Path(snakemake.output.csv).stem == "pose_metrics":  # the ResNet's rows and NeMo's (rules/nemo.smk)
    table = with_estimator(table)
write_table(table, snakemake.output.csv)
names = {
    "pose_metrics": "Pose",
    "category_metrics": "Category classification",
    "joint": "Joint category and pose",
    "probing": "Linear probing",
}
name = names[Path(snakemake.output.csv).stem]
caption = (
    f"{name} metrics per training variant, evaluation set and category (accuracies in %; the CSV has the "
    "checkpoint and data manifest hashes of every row)."
)
if name == "Linear probing":
    caption = (
        "Linear probing of 3D awareness: pose from three linear classifiers (azimuth, elevation, in-plane rotation "
        "bins) on the frozen features of each source, per category (accuracies in %)."
    )
if name.startswith("Joint"):
    caption += " aware_acc_pi_6 counts an object right only when its class is right and its pose error under pi/6."
for path, text in ((snakemake.output.markdown, tables.markdown), (snakemake.output.latex, tables.latex)):
    with atomic_write(path) as temporary:
        temporary.write_text(text(table, caption))
log.info("\n%s", table.to_string(index=False))
