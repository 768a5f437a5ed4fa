# Config validation, prerequisite checks, path helpers and input functions shared by the stage files.
import json
import re
import sys
from pathlib import Path

from snakemake.logging import logger
from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod

# The package beside this workflow, also when Snakemake was installed without it (or runs this as a module).
sys.path.insert(0, workflow.basedir)
from dst3d import classification, generate, imagenet3d, nemo_workflow, preflight, protocols, tables
from dst3d.config_schema import validate_config
from dst3d.inputs import datasets
from dst3d.identity import shard_names
from dst3d.generate.prompts import job_settings as prompt_job_settings
from dst3d.evaluate import SYNTHETIC_TEST
from dst3d.training.variants import parse_variant
from dst3d.workflow_config import estimator_settings, finetune_settings, kcf_settings, nemo_settings, output_settings

# The workflow's own folder (this file's parent's), also when it runs as a module of another workflow (whose
# workflow.basedir is the host's): NeMo's jobs import its dst3d and find nemo.python relative to it.
WORKFLOW_DIR = Path(workflow.current_basedir.get_path_or_uri(secret_free=True)).resolve().parent

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
# The pseudo-real set's render splits (pseudo_real.enabled) and the folder its PASCAL3D+ release is written to.
PSEUDO_SPLITS = {"pseudo_train": "train", "pseudo_val": "val"}
PSEUDO_REAL_ROOT = str(preflight.pseudo_real_root(config) or f"{RESULTS}/pseudo_real/PASCAL3D")
DIFFUSION_BACKENDS = list(generate.DIFFUSION_BACKENDS)


def check_config():
    """Checks the schema cannot express; each error names the key and how to fix it."""
    if config["assets"]["source"] == "folders":
        folders = config["assets"]["folders"]
        models_key = "cad_dir" if folders["models_format"] == "pascal3d-cad" else "models_csv"
        for key in (models_key, "textures_dir", "backgrounds_dir"):
            if not folders[key]:
                raise ValueError(
                    f"config: assets.source is 'folders' but assets.folders.{key} is not set: "
                    "give the path, or use assets.source: embedded"
                )
        if "bop" in config["export"]["formats"] and folders["models_format"] == "3d-dst" and folders["objaverse_dir"]:
            raise ValueError(
                "config: export.formats has 'bop', which reads OBJ and OFF models, but assets.folders.objaverse_dir "
                "gives Objaverse .glb models: leave bop out of export.formats"
            )
    datasets.check_entries(config["evaluate"]["real_sets"])
    datasets.check_entries(config["train"]["real"], "train.real")
    protocols.check_protocols(config)
    nemo_workflow.check(config)
    policy = config["kcf"]["policy"]
    if policy["mode"] == "threshold" and "max_loss" not in policy:
        raise ValueError("config: kcf.policy.mode is 'threshold' but kcf.policy.max_loss is not set")
    if policy["scores"] != ["kcf"] and policy["mode"] != "fraction":
        raise ValueError(
            f"config: kcf.policy.scores {policy['scores']} combine by share, so kcf.policy.mode must be "
            f"'fraction' (it is {policy['mode']!r}); or use scores: [kcf]"
        )


check_config()

REAL_SOURCES = {entry["name"]: entry for entry in config["train"]["real"]}
# Every variant the run trains (train.variants, then those the configured tables read), parsed once.
try:
    VARIANTS = {name: parse_variant(name, list(REAL_SOURCES)) for name in protocols.training_variants(config)}
    imagenet3d.check_tasks(config, list(VARIANTS), ["composite", *DIFFUSION_BACKENDS])
    classification.check(config, VARIANTS)
    generate.check_depth_conditioning(config, [variant.backend for variant in VARIANTS.values() if variant.backend])
except ValueError as error:
    raise WorkflowError(str(error)) from None

# NeMo (rules/nemo.smk; empty when nemo.variants is): the variants a NeMo model is trained on, parsed, the models
# evaluated (those and the CC3D-adapted <variant>+cc3d), and the jobs' settings (the nemo block without the
# interpreter and the model lists; params without the device, a resource).
NEMO_VARIANTS = {name: parse_variant(name, list(REAL_SOURCES)) for name in nemo_workflow.trained_variants(config)}
NEMO_MODELS = nemo_workflow.models(config)
NEMO_CC3D = list(config["nemo"]["cc3d"]["variants"])
NEMO_SETTINGS = nemo_settings(config)
NEMO_PARAMS = output_settings(NEMO_SETTINGS, "nemo")
# Training (and KCF's fold models) reads neither the pose search nor CC3D's settings: changing those reruns only the
# jobs that search (evaluation, CC3D).
NEMO_TRAIN_PARAMS = {key: value for key, value in NEMO_PARAMS.items() if key not in ("search", "cc3d")}

# The task tables (dst3d/imagenet3d.py, dst3d/classification.py) with their defaults; None when not configured.
PROBING = imagenet3d.task_settings(config, "probing")
OPEN_VOCABULARY = imagenet3d.task_settings(config, "open_vocabulary")
PROBE_SOURCES = list(PROBING["sources"]) if PROBING else []
CLASSIFICATION = classification.settings(config)
CLASSIFICATION_SETS = classification.eval_sets(CLASSIFICATION) if CLASSIFICATION else {}
PSEUDO_IMAGEFOLDER = f"{RESULTS}/pseudo_real/ImageFolder"


# What the run needs and lacks (models, API key, asset folders, weights): warnings now, so that a dry run shows
# them; an error before the first job of a real run (onstart). Only the main process checks: a cluster job re-reads
# this file on its node, where the run was already checked.
def uses_conda():
    """Whether this run deploys the rules' conda environments (--software-deployment-method conda)."""
    return DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method


def nemo_interpreter():
    """The NeMo rules' Python: envs/nemo.yaml's under conda, else nemo.python (relative to the workflow's folder
    unless absolute)."""
    if uses_conda():
        return "python"
    return str(WORKFLOW_DIR / config["nemo"]["python"])


PREREQUISITE_PROBLEMS = preflight.problems(config) if workflow.is_main_process else []
NEMO_NEEDED = bool(NEMO_MODELS) or config["kcf"]["estimator"] == "nemo"
if workflow.is_main_process and NEMO_NEEDED and not uses_conda() and not Path(nemo_interpreter()).is_file():
    PREREQUISITE_PROBLEMS.append(
        f"nemo.python: the NeMo interpreter {nemo_interpreter()} does not exist, and nemo.variants or kcf.estimator "
        "nemo needs it: run "
        "`make nemo-setup` (a venv with envs/nemo.yaml's packages: torch 2.2.2, PyTorch3D), set nemo.python to one, "
        "or run with --software-deployment-method conda"
    )
for problem in PREREQUISITE_PROBLEMS:
    logger.warning(f"dst3d prerequisite missing: {problem}")


onstart:
    if PREREQUISITE_PROBLEMS:
        raise WorkflowError(
            f"{len(PREREQUISITE_PROBLEMS)} prerequisite(s) of this run are missing, so no job was started:\n\n"
            + "\n\n".join(PREREQUISITE_PROBLEMS)
        )


wildcard_constraints:
    split="|".join(SPLITS + list(PSEUDO_SPLITS)),
    category="|".join(CATEGORIES),
    shard=r"\d{3}",
    backend="composite|controlnet|controlnet-sdxl",
    selection="all|kcf",
    group="all|" + "|".join(CATEGORIES),
    fold=r"\d+",
    variant="|".join(map(re.escape, VARIANTS)),
    task="pose|category|joint",
    source="|".join(map(re.escape, REAL_SOURCES)) or "^$",
    subset=r"all|\d+shot",


def split_settings(split):
    """images_per_category and shard_size of a render split (a synthetic or a pseudo-real one)."""
    if split in PSEUDO_SPLITS:
        return config["pseudo_real"][PSEUDO_SPLITS[split]]
    return config["splits"][split]


def shards(split):
    """Shard names ("000", "001", ...) of a split."""
    return shard_names(split_settings(split))


def shard_files(pattern, split, categories=None, **wildcards):
    """Expand a per-shard path pattern over the categories and shards of a split."""
    return [
        pattern.format(split=split, category=category, shard=shard, **wildcards)
        for category in categories or CATEGORIES
        for shard in shards(split)
    ]


def kcf_groups():
    return CATEGORIES if config["kcf"]["per_category"] else ["all"]


def synthetic_backends():
    """The generate backends of the variants with generated images, in order."""
    return list(dict.fromkeys(variant.backend for variant in VARIANTS.values() if variant.backend))


def by_attempt(amount):
    """A rule's memory (mem_mb, MB) or time (runtime, minutes) for its first attempt, times the attempt: a job that
    failed (out of memory, out of time) is resubmitted with twice both (profiles/slurm: retries: 1). ``amount``
    is a number or a function of the wildcards. The rules state their own figures; README.md, "Cluster (SLURM)",
    gives the basis of each."""

    def resource(wildcards, attempt):
        return (amount(wildcards) if callable(amount) else amount) * attempt

    return resource


def job_settings(block):
    """The config block without its runtime keys (threads, devices): what a rule's params may hold."""
    return output_settings(config[block], block)


#: What each metrics table shows: the title of its page in the Snakemake report.
TABLE_TITLES = {
    "pose_metrics": "Pose accuracy of every variant on every evaluation set, per category and pooled",
    "category_metrics": "Category-classifier accuracy of every variant on every evaluation set",
    "joint": "Joint classification and pose (ImageNet3D task 3): class accuracy, pose and 3D-aware accuracy",
    "dataset": "Dataset statistics: images generated, with an empty mask, kept and dropped by KCF, per backend, split and category",
    "pose_protocol": "Pose protocol (3D-DST's pose table): variants in and out of distribution",
    "few_shot": "Few-shot protocol (P3D-Diffusion Table 1): real shots alone, fine-tuned and mixed with synthetic data",
    "probing": "Linear probing of 3D awareness (ImageNet3D task 1) per feature source and category",
    "open_vocabulary": "Open-vocabulary pose (ImageNet3D task 2): seen-only estimators on novel categories against the oracle",
    "classification": "Classification with synthetic pre-training (3D-DST Table 1), in and out of distribution",
}


def table_targets():
    """The metrics tables (their CSVs) the run writes."""
    task_tables = {"pose": rules.pose_table, "category": rules.category_table, "joint": rules.joint_table}
    targets = [task_tables[task].output.csv for task in config["train"]["tasks"]]
    targets += [rules.dataset_table.output.csv] if synthetic_backends() else []
    targets += [
        rules.protocol_table.output.csv.format(table=name)
        for name in protocols.TABLES
        if config["tables"][name] is not None
    ]
    named_tables = {
        "probing": rules.probing_table,
        "open_vocabulary": rules.open_vocabulary_table,
        "classification": rules.classification_table,
    }
    targets += [rule.output.csv for name, rule in named_tables.items() if config["tables"][name] is not None]
    return targets


def all_targets():
    """The default target's files (rule all); any other output is a target of its own (README.md, Everyday commands)."""
    targets = table_targets()
    # Each table as an HTML page for the report (`snakemake --report`), beside its CSV.
    targets += [rules.table_html.output[0].format(table=Path(path).stem) for path in table_targets()]
    targets += [rules.plot_samples.output.png, rules.plot_viewpoints.output.png]
    targets += expand(rules.write_prompts.output[0], split=SPLITS, category=CATEGORIES)
    for split in SPLITS:
        targets += shard_files(rules.detect_edges.output[0], split)
    targets += expand(rules.plot_consistency.output.png, backend=kcf_backends())
    targets += expand(rules.plot_kcf.output.png, backend=kcf_backends())
    if "pose" in config["train"]["tasks"]:
        targets += [rules.plot_training.output.png, rules.plot_accuracy.output.png]
    targets += nemo_metrics()  # with train.tasks [pose], pose_table's inputs already
    exports = {
        "coco": list(rules.export_coco.output),
        "nemo": rules.export_nemo.output,
        "bop": rules.export_bop.output,
        "card": [rules.dataset_card.output.card],
    }
    for variant in exported_variants():
        for name in config["export"]["formats"]:
            targets += expand(exports[name], variant=variant)
    return targets


def dataset_settings(backend):
    """What a backend's generated dataset depends on: seed, categories, assets, splits, render and, for a
    diffusion backend, edges, prompts and its generate block (runtime keys left out)."""
    settings = {
        "seed": config["seed"],
        "categories": CATEGORIES,
        "assets": config["assets"],
        "splits": config["splits"],
        "render": job_settings("render"),
    }
    if backend in DIFFUSION_BACKENDS:
        settings.update(
            edges=job_settings("edges"),
            prompts=prompt_job_settings(config["prompts"]),
            generate=output_settings(config["generate"].get(backend) or {}, "generate"),
        )
    return settings


def dataset_settings_hash(backend):
    """A short hash of :func:`dataset_settings`, as the dataset table and card name it."""
    return tables.settings_hash(dataset_settings(backend))


def dataset_card_settings(variant):
    """The configuration blocks that made a synthetic variant's dataset, as its card states them: those of
    dataset_settings and, for a -kcf variant, what decides KCF's selection."""
    backend, selection = VARIANTS[variant].backend, VARIANTS[variant].selection
    settings = dataset_settings(backend)
    if selection == "kcf":
        kcf = config["kcf"]
        policy = kcf["policy"]
        settings["kcf"] = {
            "policy": policy,
            **(
                {
                    "folds": kcf["folds"],
                    "per_category": kcf["per_category"],
                    "train": output_settings(kcf["train"], "train"),
                }
                if "kcf" in policy["scores"]
                else {}
            ),
            **({"consistency": kcf["consistency"]} if "consistency" in policy["scores"] else {}),
        }
    return settings


def exported_variants():
    """The synthetic variants of train.variants: the datasets the export rules write."""
    return [name for name in config["train"]["variants"] if VARIANTS[name].kind == "synthetic"]


def export_inputs(wildcards):
    """A synthetic variant's generated shards of both splits and, for a -kcf variant, KCF's kept list."""
    variant = VARIANTS[wildcards.variant]
    inputs = {
        split: shard_files(rules.generate_shard.output.annotations, split, backend=variant.backend) for split in SPLITS
    }
    if variant.selection == "kcf":
        inputs["kept"] = rules.kcf_select.output.kept.format(backend=variant.backend)
    return inputs


def kcf_backends():
    """The generate backends whose images KCF filters (those of a -kcf variant)."""
    return list(dict.fromkeys(variant.backend for variant in VARIANTS.values() if variant.selection == "kcf"))


def kcf_select_inputs(wildcards):
    """The fold scores and/or the consistency scores, as kcf.policy.scores chooses."""
    inputs = {}
    if "kcf" in config["kcf"]["policy"]["scores"]:
        fold_rule = rules.kcf_fold_nemo if config["kcf"]["estimator"] == "nemo" else rules.kcf_fold
        inputs["folds"] = expand(
            fold_rule.output[0], backend=wildcards.backend, group=kcf_groups(), fold=range(config["kcf"]["folds"])
        )
    if "consistency" in config["kcf"]["policy"]["scores"]:
        inputs["consistency"] = rules.kcf_consistency.output[0].format(backend=wildcards.backend)
    return inputs


# Input functions of the stage files (Snakemake's linter asks for them here, apart from the rules).


def asset_inputs(wildcards):
    if config["assets"]["source"] == "embedded":
        return {"embedded": rules.build_embedded_assets.output[0]}
    folders = config["assets"]["folders"]
    if folders["models_format"] == "pascal3d-cad":
        return {"cad_dir": folders["cad_dir"]}
    return {"models_csv": folders["models_csv"]}


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


def evaluation_backend(variant):
    """Whose generated test split is a variant's synthetic-test set: its own backend's, and for a real-only
    variant the first synthetic variant's (composite when there is none)."""
    return VARIANTS[variant].backend or (synthetic_backends() or ["composite"])[0]


def synthetic_test_shards(wildcards):
    return shard_files(rules.generate_shard.output.annotations, "test", backend=evaluation_backend(wildcards.variant))


def render_inputs(wildcards):
    """The asset tables a render shard draws from: the indexed assets, or the pseudo-real domain's own."""
    inputs = {"models": rules.index_assets.output.models, "environments": rules.index_assets.output.environments}
    if wildcards.split in PSEUDO_SPLITS:
        inputs["textures"] = rules.build_pseudo_real_assets.output.textures
        inputs["backgrounds"] = rules.build_pseudo_real_assets.output.backgrounds
    else:
        inputs["textures"] = rules.index_assets.output.textures
        inputs["backgrounds"] = rules.index_assets.output.backgrounds
    return inputs


def render_settings(wildcards):
    """The render block as a shard's params; pseudo-real shards are lit by pseudo_real.light."""
    settings = job_settings("render")
    if wildcards.split in PSEUDO_SPLITS:
        settings = {**settings, "light": config["pseudo_real"]["light"]}
    return settings


def real_source_root(wildcards):
    return REAL_SOURCES[wildcards.source]["root"]


def training_inputs(wildcards, task=None):
    """Input function of the training rules: the generated shards (and KCF's kept list) of the synthetic part, the
    selected real objects of the real part, and for a fine-tuned variant the synthetic variant's checkpoint of the
    same task (``task``, else the {task} wildcard)."""
    variant = VARIANTS[wildcards.variant]
    found = labelled_inputs(variant)
    if variant.kind == "finetune":
        found["init"] = trained_model(variant.synthetic, task or wildcards.task)
    return found


def labelled_inputs(variant):
    """A training variant's labelled data: the generated training shards (and KCF's kept list) of its synthetic
    part, the selected real objects of its real part (a fine-tuned variant: only the real part)."""
    found = {}
    if variant.kind in ("synthetic", "mixed"):
        found["shards"] = shard_files(rules.generate_shard.output.annotations, "train", backend=variant.backend)
        if variant.selection == "kcf":
            found["kept"] = rules.kcf_select.output.kept.format(backend=variant.backend)
    if variant.source is not None:
        found["real"] = rules.select_real.output[0].format(source=variant.source, subset=variant.subset)
    return found


def trained_model(variant, task):
    """The checkpoint of ``variant``'s ``task`` network (train.tasks: pose, category, joint)."""
    return rules.train_model.output.model.format(variant=variant, task=task)


def training_settings(wildcards):
    """A training job's settings: train.finetune laid over the train block for a fine-tuned variant."""
    if VARIANTS[wildcards.variant].kind == "finetune":
        return output_settings(finetune_settings(config), "train")
    return output_settings(ESTIMATOR_SETTINGS, "train")


def table_metrics(name):
    """The metrics files a protocol table reads: the ResNet's of its variants, then NeMo's of its NeMo models."""
    files = []
    for variant in protocols.table_variants(config, name):
        for eval_set in protocols.table_eval_sets(config, name):
            if eval_set == SYNTHETIC_TEST:
                files.append(rules.evaluate_pose.output.metrics.format(variant=variant))
            else:
                files.append(rules.evaluate_pose_real.output.metrics.format(variant=variant, real_set=eval_set))
    files += nemo_metrics(protocols.table_nemo_models(config, name), protocols.table_eval_sets(config, name))
    return list(dict.fromkeys(files))


def probing_backend():
    return PROBING["backend"] or (synthetic_backends() or ["composite"])[0]


def probe_inputs(wildcards):
    """The probe's training and evaluation objects and, for a variant's backbone, its checkpoint."""
    backend = probing_backend()
    inputs = {}
    if PROBING["train_set"] == imagenet3d.SYNTHETIC_TRAIN:
        inputs["train_shards"] = shard_files(rules.generate_shard.output.annotations, "train", backend=backend)
    else:
        inputs["train_real"] = rules.select_real.output[0].format(source=PROBING["train_set"], subset="all")
    if PROBING["eval_set"] == SYNTHETIC_TEST:
        inputs["eval_shards"] = shard_files(rules.generate_shard.output.annotations, "test", backend=backend)
    else:
        inputs["eval_root"] = REAL_SETS[PROBING["eval_set"]]["root"]
    if wildcards.probe in VARIANTS:
        inputs["model"] = trained_model(wildcards.probe, "pose")
    return inputs


def open_vocabulary_inputs(wildcards):
    """Per (variant, evaluation set): the seen-only estimator's predictions and the oracle's."""
    inputs = {"seen_only": [], "oracle": []}
    for variant in OPEN_VOCABULARY["variants"]:
        for eval_set in OPEN_VOCABULARY["eval_sets"]:
            if eval_set == SYNTHETIC_TEST:
                seen_only = rules.evaluate_open_vocabulary.output.predictions.format(variant=variant)
            else:
                seen_only = rules.evaluate_open_vocabulary_real.output.predictions.format(
                    variant=variant, real_set=eval_set
                )
            inputs["seen_only"].append(seen_only)
            if eval_set == SYNTHETIC_TEST:
                inputs["oracle"].append(rules.evaluate_pose.output.predictions.format(variant=variant))
            else:
                inputs["oracle"].append(
                    rules.evaluate_pose_real.output.predictions.format(variant=variant, real_set=eval_set)
                )
    return inputs


def classification_inputs(wildcards):
    inputs = {"train": CLASSIFICATION["train"]}
    if CLASSIFICATION["classes"]:
        inputs["classes"] = CLASSIFICATION["classes"]
    if wildcards.pretraining != classification.NO_PRETRAINING:
        inputs["init"] = rules.pretrain_classifier.output.model.format(
            variant=wildcards.pretraining, backbone_name=wildcards.backbone_name
        )
    return inputs


def prompt_inputs(wildcards):
    """The model table (its CAD keywords) and, when prompts.class_names is a file, that file."""
    inputs = {"models": rules.index_assets.output.models}
    if isinstance(config["prompts"].get("class_names"), str):
        inputs["class_names"] = config["prompts"]["class_names"]
    return inputs


def kcf_fold_shards(wildcards):
    """A fold job's generated training shards: its category's (kcf.per_category), or all. Folds are drawn per
    category from the image ids alone, so a category's job reads only its own shards and scores the same."""
    categories = None if wildcards.group == "all" else [wildcards.group]
    return shard_files(rules.generate_shard.output.annotations, "train", categories, backend=wildcards.backend)


# NeMo (rules/nemo.smk). Each job gets one JSON (--job) for `python -m dst3d.nemo.cli`; params functions that take
# input, output or threads are not rerun triggers (Snakemake leaves such derived params out), so the job JSON, the
# interpreter and the workflow's folder change nothing by themselves; the settings, seed and categories are the
# rules' plain params, the rerun triggers.


def nemo_python(wildcards, input):
    return nemo_interpreter()


def nemo_root(wildcards, input):
    return str(WORKFLOW_DIR)


def nemo_model(model):
    """The checkpoint of a NeMo model (a variant's, or a CC3D-adapted ``<variant>+cc3d``)."""
    if model.endswith(nemo_workflow.CC3D_SUFFIX):
        return rules.cc3d_nemo.output.model.format(variant=nemo_workflow.model_variant(model))
    return rules.train_nemo.output.model.format(variant=model)


def nemo_metrics(models=None, eval_sets=None):
    """The NeMo metrics files of ``models`` (default: all) on ``eval_sets`` (default: every evaluation set)."""
    models = NEMO_MODELS if models is None else models
    eval_sets = [SYNTHETIC_TEST, *REAL_SETS] if eval_sets is None else eval_sets
    files = []
    for model in models:
        for eval_set in eval_sets:
            if eval_set == SYNTHETIC_TEST:
                files.append(rules.evaluate_nemo.output.metrics.format(model=model))
            else:
                files.append(rules.evaluate_nemo_real.output.metrics.format(model=model, real_set=eval_set))
    return files


def nemo_training_inputs(wildcards):
    """A NeMo training job's labelled data (as the ResNet's), the meshes, and for a fine-tuned variant the NeMo
    model of its synthetic part."""
    variant = NEMO_VARIANTS[wildcards.variant]
    found = labelled_inputs(variant)
    if variant.kind == "finetune":
        found["init"] = rules.train_nemo.output.model.format(variant=variant.synthetic)
    found["meshes"] = expand(rules.nemo_mesh.output[0], category=CATEGORIES)
    return found


def nemo_cc3d_inputs(wildcards):
    """CC3D's start (the variant's NeMo model), the unlabelled real objects (nemo.cc3d.source's training split,
    pose labels unused) and the variant's own labelled training data."""
    source = config["nemo"]["cc3d"]["source"]
    return {
        "model": rules.train_nemo.output.model.format(variant=wildcards.variant),
        "unlabelled": rules.select_real.output[0].format(source=source, subset="all"),
        **labelled_inputs(NEMO_VARIANTS[wildcards.variant]),
    }


def _labelled_job(input):
    return {"shards": list(input.get("shards", [])), "kept": input.get("kept"), "real": input.get("real")}


def nemo_train_job(wildcards, input, output, threads):
    return json.dumps(
        {
            "variant": wildcards.variant,
            **_labelled_job(input),
            "init": input.get("init"),
            "meshes": dict(zip(CATEGORIES, input.meshes, strict=True)),
            "categories": CATEGORIES,
            "settings": NEMO_SETTINGS,
            "seed": config["seed"],
            "threads": threads,
            "outputs": {"model": output.model, "history": output.history},
        }
    )


def nemo_cc3d_job(wildcards, input, output, threads):
    return json.dumps(
        {
            "variant": wildcards.variant + nemo_workflow.CC3D_SUFFIX,
            "model": input.model,
            "unlabelled": input.unlabelled,
            **_labelled_job(input),
            "categories": CATEGORIES,
            "settings": NEMO_SETTINGS,
            "seed": config["seed"],
            "threads": threads,
            "outputs": {"model": output.model, "history": output.history, "pseudo_labels": output.pseudo_labels},
        }
    )


def nemo_kcf_job(wildcards, input, output, threads):
    return json.dumps(
        {
            "backend": wildcards.backend,
            "group": wildcards.group,
            "fold": int(wildcards.fold),
            "folds": config["kcf"]["folds"],
            "shards": list(input.shards),
            "meshes": dict(zip(CATEGORIES, input.meshes, strict=True)),
            "categories": CATEGORIES,
            "settings": NEMO_SETTINGS,
            "seed": config["seed"],
            "threads": threads,
            "outputs": {"scores": output[0]},
        }
    )


def nemo_test_shards(wildcards):
    """A NeMo model's synthetic-test set: its variant's backend's generated test split, and for a real-only
    variant the one the ResNet variants are evaluated on (evaluation_backend)."""
    backend = NEMO_VARIANTS[nemo_workflow.model_variant(wildcards.model)].backend
    backend = backend or (synthetic_backends() or ["composite"])[0]
    return shard_files(rules.generate_shard.output.annotations, "test", backend=backend)


def nemo_evaluate_job(wildcards, input, output, threads):
    real_set = getattr(wildcards, "real_set", None)
    return json.dumps(
        {
            "model": input.model,
            "shards": None if real_set else list(input.shards),
            "real_set": REAL_SETS[real_set] if real_set else None,
            "categories": CATEGORIES,
            "batch_size": config["evaluate"]["batch_size"],
            "search": config["nemo"]["search"],
            "threads": threads,
            "outputs": {"predictions": output.predictions, "metrics": output.metrics},
        }
    )
