from _bootstrap import start

log = start(snakemake, "nemo_mesh")


from dst3d.nemo_workflow import write_category_mesh
from dst3d.tables import read_csv

category = snakemake.wildcards.category
models = read_csv(snakemake.input.models)
arrays = write_category_mesh(snakemake.output[0], models, category, snakemake.params.axes, snakemake.params.settings)
log.info(
    "NeMo mesh of %s: cuboid %s to %s, %d vertices, %d faces",
    category,
    arrays["low"].round(4).tolist(),
    arrays["high"].round(4).tolist(),
    len(arrays["vertices"]),
    len(arrays["faces"]),
)
