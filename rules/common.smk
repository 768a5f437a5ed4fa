# Config validation, prerequisite checks, path helpers and input functions shared by the stage files.
import sys

from snakemake.logging import logger
from snakemake.exceptions import WorkflowError

# The package beside this workflow, also when Snakemake was installed without it (or runs this as a module).
sys.path.insert(0, workflow.basedir)
from dst3d import generate, preflight
from dst3d.config_schema import validate_config
from dst3d.inputs import datasets
from dst3d.identity import shard_names
from dst3d.generate.prompts import job_settings as prompt_job_settings
from dst3d.workflow_config import estimator_settings, kcf_settings, output_settings

# config/schema.yaml's defaults filled in; a wrong key or value stops here in one line that names it.
try:
    validate_config(config)
except ValueError as error:
    raise WorkflowError(str(error)) from None

RESULTS = config["results"]
CATEGORIES = config["categories"]
# The settings of the final networks and of the KCF fold models. Each rule's params hold only what its output
# depends on (threads and devices are resources): changing anything else reruns nothing.
ESTIMATOR_SETTINGS = estimator_settings(config)
KCF_SETTINGS = kcf_settings(config)
SPLITS = ["train", "test"]
DIFFUSION_BACKENDS = list(generate.DIFFUSION_BACKENDS)


def check_config():
    """Checks the schema cannot express; each error names the key and how to fix it."""
    if config["assets"]["source"] == "folders":
        folders = config["assets"]["folders"]
        for key in ("models_csv", "textures_dir", "backgrounds_dir"):
            if not folders[key]:
                raise ValueError(
                    f"config: assets.source is 'folders' but assets.folders.{key} is not set: "
                    "give the path, or use assets.source: embedded"
                )
    datasets.check_entries(config["evaluate"]["benchmarks"])
    policy = config["kcf"]["policy"]
    if policy["mode"] == "threshold" and "max_loss" not in policy:
        raise ValueError("config: kcf.policy.mode is 'threshold' but kcf.policy.max_loss is not set")


check_config()

# What the run needs and lacks (models, API key, asset folders, weights): warnings now, so that a dry run shows
# them; an error before the first job of a real run (onstart). Only the main process checks: a cluster job re-reads
# this file on its node, where the run was already checked.
PREREQUISITE_PROBLEMS = preflight.problems(config) if workflow.is_main_process else []
for problem in PREREQUISITE_PROBLEMS:
    logger.warning(f"dst3d prerequisite missing: {problem}")


onstart:
    if PREREQUISITE_PROBLEMS:
        raise WorkflowError(
            f"{len(PREREQUISITE_PROBLEMS)} prerequisite(s) of this run are missing, so no job was started:\n\n"
            + "\n\n".join(PREREQUISITE_PROBLEMS)
        )


wildcard_constraints:
    split="|".join(SPLITS),
    category="|".join(CATEGORIES),
    shard=r"\d{3}",
    backend="composite|controlnet|controlnet-sdxl",
    selection="all|kcf",
    group="all|" + "|".join(CATEGORIES),
    fold=r"\d+",


def shards(split):
    """Shard names ("000", "001", ...) of a split."""
    return shard_names(config["splits"][split])


def shard_files(pattern, split, categories=None, **wildcards):
    """Expand a per-shard path pattern over the categories and shards of a split."""
    return [
        pattern.format(split=split, category=category, shard=shard, **wildcards)
        for category in categories or CATEGORIES
        for shard in shards(split)
    ]


def kcf_groups():
    return CATEGORIES if config["kcf"]["per_category"] else ["all"]


def variant_backend(variant):
    return preflight.variant_backend(variant)


def job_settings(block):
    """The config block without its runtime keys (threads, devices): what a rule's params may hold."""
    return output_settings(config[block], block)


def all_targets():
    targets = [f"{RESULTS}/tables/{task}_metrics.csv" for task in config["train"]["tasks"]]
    targets += [f"{RESULTS}/figures/samples.png", f"{RESULTS}/figures/viewpoints.png"]
    targets += [f"{RESULTS}/prompts/{split}/{category}.json" for split in SPLITS for category in CATEGORIES]
    for split in SPLITS:
        targets += shard_files(f"{RESULTS}/edges/{{split}}/{{category}}/{{shard}}", split)
    return targets


# Input functions of the stage files (Snakemake's linter asks for them here, apart from the rules).


def asset_inputs(wildcards):
    if config["assets"]["source"] == "embedded":
        return {"embedded": rules.build_embedded_assets.output[0]}
    return {"models_csv": config["assets"]["folders"]["models_csv"]}


def generate_inputs(wildcards):
    inputs = {
        "annotations": rules.render_shard.output.annotations.format(**wildcards),
        "renders": rules.render_shard.output.images.format(**wildcards),
    }
    if wildcards.backend in DIFFUSION_BACKENDS:
        inputs["edges"] = rules.detect_edges.output[0].format(**wildcards)
        inputs["prompts"] = rules.write_prompts.output[0].format(**wildcards)
    return inputs


def generated_shards(split):
    """Input function: the generated shard tables of a split for the job's backend."""

    def shard_tables(wildcards):
        return shard_files(rules.generate_shard.output.annotations, split, backend=wildcards.backend)

    return shard_tables


def training_inputs(wildcards):
    inputs = {"shards": generated_shards("train")(wildcards)}
    if wildcards.selection == "kcf":
        inputs["kept"] = rules.kcf_select.output.kept.format(backend=wildcards.backend)
    return inputs
