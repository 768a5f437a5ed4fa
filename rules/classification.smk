# classification: 3D-DST Table 1 (tables.classification, dst3d/classification.py). Per backbone, a classifier
# pre-trained on a synthetic variant's generated images, then trained on a real ImageFolder set (or trained on it
# alone: row none), evaluated on the in-distribution val set and each out-of-distribution set. The embedded
# default's stand-in ImageFolder is written from the pseudo-real release.
import re


rule write_pseudo_imagefolder:
    input:
        release=PSEUDO_REAL_ROOT,
        backgrounds=rules.build_pseudo_real_assets.output.backgrounds,
        assets=rules.build_pseudo_real_assets.output.images,
    output:
        train=directory(f"{PSEUDO_IMAGEFOLDER}/train"),
        val=directory(f"{PSEUDO_IMAGEFOLDER}/val"),
        rendition=directory(f"{PSEUDO_IMAGEFOLDER}/rendition"),
    log:
        "logs/write_pseudo_imagefolder/imagefolder.log",
    conda:
        "../envs/torch.yaml"
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(30),
    params:
        categories=CATEGORIES,
        size=ESTIMATOR_SETTINGS["input_size"],
        seed=config["seed"],
    script:
        "../scripts/write_pseudo_imagefolder.py"


rule pretrain_classifier:
    input:
        unpack(lambda wildcards: training_inputs(wildcards, "category")),
    output:
        model=f"{RESULTS}/classification/pretrain/{{variant}}/{{backbone_name}}.pt",
        history=f"{RESULTS}/classification/pretrain/{{variant}}/{{backbone_name}}_history.csv",
    log:
        "logs/pretrain_classifier/{variant}/{backbone_name}.log",
    benchmark:
        "benchmarks/pretrain_classifier/{variant}/{backbone_name}.tsv"
    wildcard_constraints:
        backbone_name="|".join(CLASSIFICATION["backbones"]) if CLASSIFICATION else "^$",
    conda:
        "../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=by_attempt(32000),
        runtime=by_attempt(2880),
        gpu=1 if ESTIMATOR_SETTINGS["device"] == "cuda" else 0,
    params:
        task="category",
        settings=lambda wildcards: output_settings(
            {**ESTIMATOR_SETTINGS, **CLASSIFICATION["pretrain"], "backbone": wildcards.backbone_name}, "train"
        ),
        categories=CATEGORIES,
        seed=config["seed"],
        resume=lambda wildcards: f"{RESULTS}/classification/pretrain/{wildcards.variant}/{wildcards.backbone_name}_resume.pt",
    script:
        "../scripts/train_estimator.py"


rule train_classification:
    input:
        unpack(classification_inputs),
    output:
        model=f"{RESULTS}/classification/{{pretraining}}/{{backbone_name}}/model.pt",
        history=f"{RESULTS}/classification/{{pretraining}}/{{backbone_name}}/history.csv",
    log:
        "logs/train_classification/{pretraining}/{backbone_name}.log",
    benchmark:
        "benchmarks/train_classification/{pretraining}/{backbone_name}.tsv"
    wildcard_constraints:
        pretraining="|".join(map(re.escape, CLASSIFICATION["pretraining"])) if CLASSIFICATION else "^$",
        backbone_name="|".join(CLASSIFICATION["backbones"]) if CLASSIFICATION else "^$",
    conda:
        "../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=by_attempt(32000),
        runtime=by_attempt(2880),
        gpu=1 if ESTIMATOR_SETTINGS["device"] == "cuda" else 0,
    params:
        settings=lambda wildcards: output_settings(
            {**ESTIMATOR_SETTINGS, **CLASSIFICATION["finetune"], "backbone": wildcards.backbone_name}, "train"
        ),
        categories=CATEGORIES,
        seed=config["seed"],
        resume=lambda wildcards: f"{RESULTS}/classification/{wildcards.pretraining}/{wildcards.backbone_name}/resume.pt",
    script:
        "../scripts/train_classification.py"


rule evaluate_classification:
    input:
        model=rules.train_classification.output.model,
        images=lambda wildcards: CLASSIFICATION_SETS[wildcards.eval_set],
    output:
        predictions=f"{RESULTS}/classification/{{pretraining}}/{{backbone_name}}/{{eval_set}}/predictions.csv",
        metrics=f"{RESULTS}/classification/{{pretraining}}/{{backbone_name}}/{{eval_set}}/metrics.csv",
    log:
        "logs/evaluate_classification/{pretraining}/{backbone_name}/{eval_set}.log",
    wildcard_constraints:
        pretraining="|".join(map(re.escape, CLASSIFICATION["pretraining"])) if CLASSIFICATION else "^$",
        backbone_name="|".join(CLASSIFICATION["backbones"]) if CLASSIFICATION else "^$",
        eval_set="|".join(map(re.escape, CLASSIFICATION_SETS)) or "^$",
    conda:
        "../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=by_attempt(8000),
        runtime=by_attempt(120),
    params:
        batch_size=config["evaluate"]["batch_size"],
    script:
        "../scripts/evaluate_classification.py"


rule classification_table:
    input:
        [
            rules.evaluate_classification.output.metrics.format(
                pretraining=pretraining, backbone_name=backbone, eval_set=eval_set
            )
            for pretraining in (CLASSIFICATION["pretraining"] if CLASSIFICATION else [])
            for backbone in (CLASSIFICATION["backbones"] if CLASSIFICATION else [])
            for eval_set in CLASSIFICATION_SETS
        ],
    output:
        csv=f"{RESULTS}/tables/classification.csv",
        markdown=f"{RESULTS}/tables/classification.md",
        latex=f"{RESULTS}/tables/classification.tex",
        metrics=f"{RESULTS}/tables/classification_metrics.csv",
    log:
        "logs/classification_table/classification.log",
    conda:
        "../envs/torch.yaml"
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(15),
    params:
        table=CLASSIFICATION,
        sets=list(CLASSIFICATION_SETS),
    script:
        "../scripts/classification_table.py"
