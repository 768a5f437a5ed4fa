# assets: the embedded default's procedural inputs, or the user's folders, indexed into four tables
# (models, textures, backgrounds, HDR environment maps).


rule build_embedded_assets:
    output:
        directory(f"{RESULTS}/assets/embedded"),
    log:
        "logs/build_embedded_assets/embedded.log",
    conda:
        "../envs/vision.yaml"
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(15),
    params:
        settings=config["assets"]["embedded"],
        categories=CATEGORIES,
        seed=config["seed"],
    script:
        "../scripts/build_embedded_assets.py"


rule index_assets:
    input:
        unpack(asset_inputs),
    output:
        models=f"{RESULTS}/assets/models.csv",
        textures=f"{RESULTS}/assets/textures.csv",
        backgrounds=f"{RESULTS}/assets/backgrounds.csv",
        environments=f"{RESULTS}/assets/environments.csv",
    log:
        "logs/index_assets/index.log",
    conda:
        "../envs/vision.yaml"
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(15),
    params:
        source=config["assets"]["source"],
        folders=config["assets"]["folders"],
        environments_dir=config["assets"]["environments_dir"],
        test_fraction=config["assets"]["folders"]["test_fraction"],
        dtd_split=config["assets"]["folders"]["dtd_split"],
        categories=CATEGORIES,
    script:
        "../scripts/index_assets.py"
