# kcf: K-fold consistency scores for every generated training image, then the kept list by policy.


rule kcf_fold:
    input:
        generated_shards("train"),
    output:
        f"{RESULTS}/kcf/{{backend}}/folds/{{group}}-{{fold}}.csv",
    log:
        "logs/kcf_fold/{backend}/{group}-{fold}.log",
    benchmark:
        "benchmarks/kcf_fold/{backend}/{group}-{fold}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=1 if KCF_SETTINGS["device"] == "cuda" else 0,
    params:
        folds=config["kcf"]["folds"],
        train_settings=output_settings(KCF_SETTINGS, "train"),
        seed=config["seed"],
    script:
        "../scripts/kcf_fold.py"


rule kcf_select:
    input:
        expand(
            f"{RESULTS}/kcf/{{{{backend}}}}/folds/{{group}}-{{fold}}.csv",
            group=kcf_groups(),
            fold=range(config["kcf"]["folds"]),
        ),
    output:
        scores=f"{RESULTS}/kcf/{{backend}}/scores.csv",
        kept=f"{RESULTS}/kcf/{{backend}}/kept.csv",
        summary=f"{RESULTS}/kcf/{{backend}}/summary.csv",
    log:
        "logs/kcf_select/{backend}.log",
    conda:
        "../envs/torch.yaml"
    params:
        policy=config["kcf"]["policy"],
    script:
        "../scripts/kcf_select.py"
