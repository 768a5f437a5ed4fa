# train: per training variant (dst3d/training/variants.py: synthetic, real, few-shot, fine-tuned, mixed) and task
# (train.tasks: pose estimator, category classifier, joint category-and-pose network), one network.


rule train_model:
    input:
        unpack(training_inputs),
    output:
        model=f"{RESULTS}/train/{{variant}}/{{task}}.pt",
        history=f"{RESULTS}/train/{{variant}}/{{task}}_history.csv",
    log:
        "logs/train_model/{variant}/{task}.log",
    benchmark:
        "benchmarks/train_model/{variant}/{task}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=by_attempt(32000),
        runtime=by_attempt(2880),
        gpu=1 if ESTIMATOR_SETTINGS["device"] == "cuda" else 0,
    params:
        task=lambda wildcards: wildcards.task,
        settings=training_settings,
        categories=CATEGORIES,
        seed=config["seed"],
        resume=lambda wildcards: f"{RESULTS}/train/{wildcards.variant}/{wildcards.task}_resume.pt",
    script:
        "../scripts/train_estimator.py"
