# train: per training variant (dst3d/training/variants.py: synthetic, real, few-shot, fine-tuned, mixed), a pose
# estimator and (train.tasks) a category classifier and a joint category-and-pose network.


rule train_pose_estimator:
    input:
        unpack(training_inputs("pose")),
    output:
        model=f"{RESULTS}/train/{{variant}}/model.pt",
        history=f"{RESULTS}/train/{{variant}}/history.csv",
    log:
        "logs/train_pose_estimator/{variant}.log",
    benchmark:
        "benchmarks/train_pose_estimator/{variant}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=8000,
        runtime=720,
        gpu=1 if ESTIMATOR_SETTINGS["device"] == "cuda" else 0,
    params:
        task="pose",
        settings=training_settings,
        categories=CATEGORIES,
        seed=config["seed"],
        resume=lambda wildcards: f"{RESULTS}/train/{wildcards.variant}/resume.pt",
    script:
        "../scripts/train_estimator.py"


rule train_category_classifier:
    input:
        unpack(training_inputs("category")),
    output:
        model=f"{RESULTS}/train/{{variant}}/category.pt",
        history=f"{RESULTS}/train/{{variant}}/category_history.csv",
    log:
        "logs/train_category_classifier/{variant}.log",
    benchmark:
        "benchmarks/train_category_classifier/{variant}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=8000,
        runtime=720,
        gpu=1 if ESTIMATOR_SETTINGS["device"] == "cuda" else 0,
    params:
        task="category",
        settings=training_settings,
        categories=CATEGORIES,
        seed=config["seed"],
        resume=lambda wildcards: f"{RESULTS}/train/{wildcards.variant}/category_resume.pt",
    script:
        "../scripts/train_estimator.py"


rule train_joint_model:
    input:
        unpack(training_inputs("joint")),
    output:
        model=f"{RESULTS}/train/{{variant}}/joint.pt",
        history=f"{RESULTS}/train/{{variant}}/joint_history.csv",
    log:
        "logs/train_joint_model/{variant}.log",
    benchmark:
        "benchmarks/train_joint_model/{variant}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=8000,
        runtime=720,
        gpu=1 if ESTIMATOR_SETTINGS["device"] == "cuda" else 0,
    params:
        task="joint",
        settings=training_settings,
        categories=CATEGORIES,
        seed=config["seed"],
        resume=lambda wildcards: f"{RESULTS}/train/{wildcards.variant}/joint_resume.pt",
    script:
        "../scripts/train_estimator.py"
