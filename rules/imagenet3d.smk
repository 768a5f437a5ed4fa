# imagenet3d: ImageNet3D's tasks beyond pose estimation (dst3d/imagenet3d.py). tables.probing: linear probes of
# frozen features per feature source; tables.open_vocabulary: pose estimators trained on the seen categories,
# evaluated on the novel ones beside the oracle. (The third task, joint classification and pose, is the joint
# network of train.tasks: rules/train.smk and rules/evaluate.smk.)
import re


rule probe_features:
    input:
        unpack(probe_inputs),
    output:
        predictions=f"{RESULTS}/probing/{{probe}}/predictions.csv",
        metrics=f"{RESULTS}/probing/{{probe}}/metrics.csv",
    log:
        "logs/probe_features/{probe}.log",
    wildcard_constraints:
        probe="|".join(map(re.escape, PROBE_SOURCES)) or "^$",
    conda:
        "../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=by_attempt(16000),
        runtime=by_attempt(240),
    params:
        probe_settings={key: PROBING[key] for key in ("epochs", "lr", "weight_decay")} if PROBING else {},
        train_set=PROBING["train_set"] if PROBING else None,
        eval_set=PROBING["eval_set"] if PROBING else None,
        real_set=REAL_SETS.get(PROBING["eval_set"]) if PROBING else None,
        crops={key: ESTIMATOR_SETTINGS[key] for key in ("input_size", "context", "crop_jitter")},
        batch_size=config["evaluate"]["batch_size"],
        categories=CATEGORIES,
        seed=config["seed"],
    script:
        "../scripts/probe_features.py"


rule probing_table:
    input:
        expand(rules.probe_features.output.metrics, probe=PROBE_SOURCES),
    output:
        csv=f"{RESULTS}/tables/probing.csv",
        markdown=f"{RESULTS}/tables/probing.md",
        latex=f"{RESULTS}/tables/probing.tex",
    log:
        "logs/probing_table/probing.log",
    conda:
        "../envs/vision.yaml"
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(15),
    script:
        "../scripts/metrics_table.py"


rule train_open_vocabulary:
    input:
        unpack(lambda wildcards: training_inputs(wildcards, "pose")),
    output:
        model=f"{RESULTS}/open_vocabulary/{{variant}}/model.pt",
        history=f"{RESULTS}/open_vocabulary/{{variant}}/history.csv",
    log:
        "logs/train_open_vocabulary/{variant}.log",
    benchmark:
        "benchmarks/train_open_vocabulary/{variant}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=by_attempt(32000),
        runtime=by_attempt(2880),
        gpu=1 if ESTIMATOR_SETTINGS["device"] == "cuda" else 0,
    params:
        task="pose",
        settings=training_settings,
        categories=CATEGORIES,
        seen_categories=OPEN_VOCABULARY["seen"] if OPEN_VOCABULARY else [],
        seed=config["seed"],
        resume=lambda wildcards: f"{RESULTS}/open_vocabulary/{wildcards.variant}/resume.pt",
    script:
        "../scripts/train_estimator.py"


rule evaluate_open_vocabulary:
    input:
        model=rules.train_open_vocabulary.output.model,
        shards=synthetic_test_shards,
    output:
        predictions=f"{RESULTS}/open_vocabulary/{{variant}}/{SYNTHETIC_TEST}/predictions.csv",
        metrics=f"{RESULTS}/open_vocabulary/{{variant}}/{SYNTHETIC_TEST}/metrics.csv",
    log:
        "logs/evaluate_open_vocabulary/{variant}.log",
    conda:
        "../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=by_attempt(8000),
        runtime=by_attempt(120),
    params:
        settings={key: config["evaluate"][key] for key in ("batch_size", "flip")},
    script:
        "../scripts/evaluate_pose.py"


rule evaluate_open_vocabulary_real:
    input:
        model=rules.train_open_vocabulary.output.model,
        root=lambda wildcards: REAL_SETS[wildcards.real_set]["root"],
    output:
        predictions=f"{RESULTS}/open_vocabulary/{{variant}}/{{real_set}}/predictions.csv",
        metrics=f"{RESULTS}/open_vocabulary/{{variant}}/{{real_set}}/metrics.csv",
    log:
        "logs/evaluate_open_vocabulary_real/{variant}/{real_set}.log",
    wildcard_constraints:
        real_set="|".join(map(re.escape, REAL_SETS)) or "^$",
    conda:
        "../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=by_attempt(8000),
        runtime=by_attempt(120),
    params:
        real_set=lambda wildcards: REAL_SETS[wildcards.real_set],
        settings={key: config["evaluate"][key] for key in ("batch_size", "flip")},
        categories=CATEGORIES,
    script:
        "../scripts/evaluate_pose.py"


rule open_vocabulary_table:
    input:
        unpack(open_vocabulary_inputs),
    output:
        csv=f"{RESULTS}/tables/open_vocabulary.csv",
        markdown=f"{RESULTS}/tables/open_vocabulary.md",
        latex=f"{RESULTS}/tables/open_vocabulary.tex",
    log:
        "logs/open_vocabulary_table/open_vocabulary.log",
    conda:
        "../envs/torch.yaml"
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(15),
    params:
        table=OPEN_VOCABULARY,
    script:
        "../scripts/open_vocabulary_table.py"
