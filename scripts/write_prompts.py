from _bootstrap import start

log = start(snakemake, "write_prompts")

from pathlib import Path

from dst3d.generate.prompts import build_prompt_set
from dst3d.identity import image_id
from dst3d.inputs import catalog
from dst3d.io import write_json
from dst3d.tables import read_csv
from dst3d.workflow_config import with_runtime

split, category = snakemake.wildcards.split, snakemake.wildcards.category
models = catalog.models_of(
    read_csv(snakemake.input.models, dtype={"model_id": str, "keywords": str}).fillna(""), category
)
images = []
for index in range(snakemake.params.images_per_category):
    model = catalog.model_for_image(models, index)
    keywords = [word for word in str(model["keywords"]).split(";") if word]
    images.append((image_id(split, category, index), index, keywords))
settings = with_runtime(snakemake.params.settings, snakemake.config["prompts"], "prompts")
prompt_set = build_prompt_set(
    category, split, images, settings, snakemake.params.seed, Path(snakemake.params.cache_dir)
)
write_json(prompt_set, snakemake.output[0])
log.info("%d prompts (%s backend) for %s/%s", len(prompt_set["prompts"]), prompt_set["backend"], split, category)
