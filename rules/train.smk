# train: per training variant (<backend>-<all|kcf>), a pose estimator and (train.tasks: category) a classifier.


rule train_pose_estimator:
    input:
        unpack(training_inputs),
    output:
        model=f"{RESULTS}/train/{{backend}}-{{selection}}/model.pt",
        history=f"{RESULTS}/train/{{backend}}-{{selection}}/history.csv",
    log:
        "logs/train_pose_estimator/{backend}-{selection}.log",
    benchmark:
        "benchmarks/train_pose_estimator/{backend}-{selection}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=8000,
        runtime=720,
        gpu=1 if ESTIMATOR_SETTINGS["device"] == "cuda" else 0,
    params:
        task="pose",
        settings=output_settings(ESTIMATOR_SETTINGS, "train"),
        categories=CATEGORIES,
        seed=config["seed"],
        resume=lambda wildcards: f"{RESULTS}/train/{wildcards.backend}-{wildcards.selection}/resume.pt",
    script:
        "../scripts/train_estimator.py"


rule train_category_classifier:
    input:
        unpack(training_inputs),
    output:
        model=f"{RESULTS}/train/{{backend}}-{{selection}}/category.pt",
        history=f"{RESULTS}/train/{{backend}}-{{selection}}/category_history.csv",
    log:
        "logs/train_category_classifier/{backend}-{selection}.log",
    benchmark:
        "benchmarks/train_category_classifier/{backend}-{selection}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=8000,
        runtime=720,
        gpu=1 if ESTIMATOR_SETTINGS["device"] == "cuda" else 0,
    params:
        task="category",
        settings=output_settings(ESTIMATOR_SETTINGS, "train"),
        categories=CATEGORIES,
        seed=config["seed"],
        resume=lambda wildcards: f"{RESULTS}/train/{wildcards.backend}-{wildcards.selection}/category_resume.pt",
    script:
        "../scripts/train_estimator.py"
