"""The workflow as a user drives it: dry-run, lint, config errors, and (marked slow) a real end-to-end run
of the embedded default followed by the resume/no-op/one-figure checks.

The end-to-end run takes the embedded default as it is except for a third of the training images per category
(160, two shards) and a third of the KCF fold models' epochs (4): every stage, category and model of the default
runs, in a fraction of the 18 minutes of `make run`, which keeps the suite well inside CI's time. DST3D_E2E_FULL=1 runs the default
unchanged (the KCF separation goal on the full default is measured by bench/kcf.py, see BENCHMARKS.md)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from workflow_runs import job_counts, snakemake_command

from dst3d.tables import read_csv
from dst3d.workflow_config import WORKFLOW_TRAIN_KEYS

REPO = Path(__file__).resolve().parent.parent
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


DEFAULT_CONFIG = REPO / "config" / "config.yaml"
#: What the end-to-end test changes in the default (unless DST3D_E2E_FULL is set): a third of the training
#: images (two shards per category) and a third of the KCF fold models' epochs, what keeps the suite in CI's time.
E2E_OVERLAY = {"splits": {"train": {"images_per_category": 160}}, "kcf": {"train": {"epochs": 4}}}


def snakemake(
    workdir: Path, *arguments: str, configfile: Path | None = None, overlay: Path | None = None
) -> subprocess.CompletedProcess:
    # --configfile takes several values: it goes before --cores so that a target is never read as a config file.
    configfiles = [configfile or DEFAULT_CONFIG] + ([overlay] if overlay else [])
    command = snakemake_command(workdir, "--cores", "2", *arguments, configfiles=configfiles)
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=1800)


def test_dry_run_plans_every_stage_in_shards(tmp_path):
    result = snakemake(tmp_path, "-n")
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    # 4 categories x (6 train + 1 test shards) = 28 shards; 3 KCF folds over all categories.
    assert counts["render_shard"] == 28 and counts["detect_edges"] == 28 and counts["generate_shard"] == 28
    assert counts["write_prompts"] == 8 and counts["kcf_fold"] == 3
    for rule in (
        "build_embedded_assets",
        "index_assets",
        "kcf_select",
        "train_model",
        "evaluate_pose",
        "pose_table",
        "plot_samples",
        "plot_viewpoints",
    ):
        assert counts[rule] == 1, rule


def test_lint_reports_nothing():
    result = subprocess.run([SNAKEMAKE, "--lint"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


def test_kcf_train_accepts_exactly_the_estimator_keys_of_the_train_block():
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())["properties"]
    estimator_keys = set(schema["train"]["properties"]) - {*WORKFLOW_TRAIN_KEYS, "threads"}
    assert set(schema["kcf"]["properties"]["train"]["propertyNames"]["enum"]) == estimator_keys


@pytest.mark.parametrize(
    "override, expected",
    [
        ({"generate": {"controlnet": {"scheduler": "dalle"}}}, "dalle"),
        ({"generate": {"backend": "controlnet"}}, "backend"),
        ({"render": {"samples": 0}}, "samples"),
        ({"train": {"variants": ["composite-best"]}}, "composite-best"),
        ({"renderer": {}}, "renderer"),
        ({"kcf": {"train": {"optimiser": "adamw"}}}, "optimiser"),
        ({"train": {"device": "tpu"}}, "tpu"),
        ({"train": {"variants": ["real-pascal3d"]}}, "not a train.real entry"),
        (
            {"kcf": {"policy": {"mode": "threshold", "max_loss": 3.0, "scores": ["kcf", "consistency"]}}},
            "kcf.policy.mode must be 'fraction'",
        ),
        ({"tables": {"pose_protocol": {"variants": ["composite-kcf"], "in_distribution": ["p3d"]}}}, "'p3d'"),
    ],
)
def test_bad_config_names_the_key(tmp_path, override, expected):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for key, value in override.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", configfile=path)
    assert result.returncode != 0
    assert expected in result.stderr + result.stdout


def test_folders_source_without_paths_says_which_key(tmp_path):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["assets"]["source"] = "folders"
    path = tmp_path / "folders.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", configfile=path)
    assert result.returncode != 0
    assert "assets.folders.models_csv is not set" in result.stderr + result.stdout


#: Pooled Acc@pi/6 of the end-to-end run as measured on the 2-core machine (BENCHMARKS.md, "End-to-end
#: accuracy"): 0.350 with E2E_OVERLAY (160 training images per category, KCF fold models 4 epochs); 0.531 with
#: 240 images and the default's 12 KCF epochs (the overlay before 2026-12-01); the full default not measured here.
#: Training is deterministic for a machine and thread count, so the bound allows for other CPUs only.
E2E_ACC_PI_6 = {160: 0.350}


@pytest.mark.slow
def test_embedded_default_end_to_end(tmp_path, capsys):
    default = yaml.safe_load(DEFAULT_CONFIG.read_text())
    overlay = None
    images = default["splits"]["train"]["images_per_category"]
    if not os.environ.get("DST3D_E2E_FULL"):
        overlay = tmp_path / "e2e.yaml"
        overlay.write_text(yaml.safe_dump(E2E_OVERLAY))
        images = E2E_OVERLAY["splits"]["train"]["images_per_category"]
    categories = len(default["categories"])
    kept_per_category = math.ceil(default["kcf"]["policy"]["keep_fraction"] * images)

    def run(*arguments):
        return snakemake(tmp_path, *arguments, overlay=overlay)

    result = run()
    assert result.returncode == 0, result.stderr[-5000:]
    results = tmp_path / "results"
    metrics = read_csv(results / "tables" / "pose_metrics.csv").set_index("category")
    assert {"car", "chair", "airplane", "boat", "mean (pooled)", "mean (per-category)"} <= set(metrics.index)
    with capsys.disabled():
        print(f"\nend-to-end pose metrics ({images} training images per category):\n{metrics.to_string()}")
    # Chance for Acc@pi/6 is a few percent; the run must keep 80 % of the accuracy it was measured at.
    if images in E2E_ACC_PI_6:
        assert metrics.loc["mean (pooled)", "acc_pi_6"] >= 0.8 * E2E_ACC_PI_6[images], metrics
    assert metrics["images"].to_dict() == {
        "airplane": 40,
        "boat": 40,
        "car": 40,
        "chair": 40,
        "mean (pooled)": 160,
        "mean (per-category)": 160,
    }
    for figure in ("samples", "viewpoints", "consistency_composite", "kcf_composite", "training", "accuracy"):
        assert (results / "figures" / f"{figure}.png").stat().st_size > 10_000, figure
        assert (results / "figures" / f"{figure}.pdf").read_bytes().startswith(b"%PDF"), figure
    kept = read_csv(results / "kcf" / "composite" / "kept.csv")
    scores = read_csv(results / "kcf" / "composite" / "scores.csv")
    assert len(scores) == categories * images and len(kept) == categories * kept_per_category
    # The model-free check beside KCF: every generated training image scored; composites match their renders.
    consistency = read_csv(results / "kcf" / "composite" / "consistency.csv")
    assert sorted(consistency["image_id"]) == sorted(scores["image_id"])
    assert (
        consistency[["edge_f", "silhouette_iou", "consistency"]].apply(lambda column: column.between(0, 1)).all().all()
    )
    assert consistency["edge_f"].median() > 0.8
    # The COCO export of the variant: its kept training images, all test images, read back by pycocotools.
    from pycocotools.coco import COCO

    coco = COCO(str(results / "export" / "composite-kcf" / "coco" / "instances_train.json"))
    assert sorted(image["image_key"] for image in coco.dataset["images"]) == sorted(kept["image_id"])
    test_coco = COCO(str(results / "export" / "composite-kcf" / "coco" / "instances_test.json"))
    # Its NeMo layout, read back by the nemo reader, and its dataset card, which counts the same images.
    from dst3d.inputs.datasets import read_nemo

    nemo = read_nemo(results / "export" / "composite-kcf" / "nemo", "train", default["categories"])
    assert sorted(nemo["image_id"].str.split("/").str[1]) == sorted(kept["image_id"])
    bop_gt = json.loads(
        (results / "export" / "composite-kcf" / "bop" / "train" / "000001" / "scene_gt.json").read_text()
    )
    assert len(bop_gt) == kept_per_category  # scene 1 = the first category's kept images
    card = (results / "export" / "composite-kcf" / "DATASET.md").read_text()
    assert f"| train | car | {images} | 0 | {kept_per_category} |" in card and "no third-party content" in card
    splits = {**default["splits"], **(E2E_OVERLAY["splits"] if overlay else {})}
    assert len(test_coco.getImgIds()) == categories * splits["test"]["images_per_category"]
    # The dataset statistics count what was generated and what KCF kept, and render as Markdown.
    statistics = read_csv(results / "tables" / "dataset.csv")
    train_rows = statistics[statistics["split"] == "train"]
    assert (train_rows["generated"] == images).all() and (train_rows["kcf_kept"] == kept_per_category).all()
    assert statistics["settings_hash"].nunique() == 1
    pose_markdown = (results / "tables" / "pose_metrics.md").read_text()
    assert "| composite-kcf | synthetic-test | mean (pooled) |" in pose_markdown and "sha256" not in pose_markdown
    assert "| composite | train |" in (results / "tables" / "dataset.md").read_text()

    # Records point into the working folder by relative paths (assets included), so a moved run stays valid.
    render = pd.read_parquet(results / "render" / "train" / "car" / "000.parquet")
    for column in ("render_path", "mask_path", "texture_path", "background_path"):
        assert not render[column].str.startswith("/").any(), column
        assert all((tmp_path / path).is_file() for path in render[column]), column

    # A complete run leaves nothing to do.
    result = run("-n")
    assert result.returncode == 0 and "Nothing to be done" in result.stdout + result.stderr

    # Deleting the figure and asking for it reruns only the figure rule.
    (results / "figures" / "samples.png").unlink()
    result = run("-n", "results/figures/samples.png")
    assert job_counts(result.stdout) == {"plot_samples": 1, "total": 1}
    result = run("results/figures/samples.png")
    assert result.returncode == 0 and (results / "figures" / "samples.png").exists()


def test_a_misspelt_key_is_one_line_with_the_closest_known_key(tmp_path):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["render"]["sampels"] = 3
    path = tmp_path / "misspelt.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", configfile=path)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "config: render.sampels is not a known key (did you mean samples?)" in output
    assert len(output.splitlines()) < 12, output  # not a dump of the schema and the config
