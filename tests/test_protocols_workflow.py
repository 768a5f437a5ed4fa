"""The real-data protocols through the whole workflow: the pseudo-real PASCAL3D+ release written by the workflow
and read by the real reader, real / few-shot / fine-tuned / mixed variants, both protocol tables with their
provenance, and what a table or a fine-tuning setting change reruns. The same run trains and evaluates NeMo and
CC3D (tests/data/nemo.yaml) in the NeMo interpreter (tests/nemo_env.py: DST3D_NEMO_PYTHON, else the repository's
.venv-nemo that `make test` builds; a missing one fails the test)."""

import hashlib
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from nemo_env import nemo_python
from test_workflow import REPO, job_counts, snakemake
from workflow_runs import trained_tasks

from dst3d import tables
from dst3d.inputs import datasets
from dst3d.tables import read_csv

PROTOCOLS = REPO / "config" / "protocols.yaml"
TINY = REPO / ".test" / "config" / "config.yaml"
NEMO = REPO / "tests" / "data" / "nemo.yaml"
FINETUNED = [
    "composite-kcf_then_real-pseudo",
    "composite-kcf_then_real-pseudo-2shot",
    "composite-kcf_then_real-pseudo-4shot",
]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_config(workdir: Path, nemo: str | None = None, **changes) -> Path:
    """config/config.yaml, .test/config/config.yaml and config/protocols.yaml, made seconds-scale: 8 + 4 pseudo-real
    images per category, 2 and 4 shots, every row kind, the mixed variant in the pose table, both tasks; with
    ``nemo`` (the NeMo interpreter) tests/data/nemo.yaml too."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    layers = [TINY, PROTOCOLS, *([NEMO] if nemo else [])]
    for layer in map(yaml.safe_load, (path.read_text() for path in layers)):
        for key, value in layer.items():
            config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    if nemo:
        config["nemo"]["python"] = nemo
    config["pseudo_real"].update(
        {
            "train": {"images_per_category": 8, "shard_size": 8},
            "val": {"images_per_category": 4, "shard_size": 4},
            "textures": 3,
            "backgrounds": 4,
        }
    )
    config["train"].update({"finetune": {"epochs": 1}, "tasks": ["pose", "category"]})
    config["tables"]["few_shot"].update({"shots": [2, 4], "rows": ["real", "finetune", "mixed"]})
    config["tables"]["pose_protocol"]["variants"].append("composite-kcf_plus_real-pseudo")
    for key, value in changes.items():
        block, name = key.split(".")
        config[block][name] = value
    path = workdir / f"config-{len(changes)}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_protocols_config_plans_the_tables_on_the_embedded_default(tmp_path):
    result = snakemake(tmp_path, "-n", overlay=PROTOCOLS)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout)
    # composite-kcf, real-pseudo, its fine-tuned version, then 3 shots x (real only, fine-tuned).
    assert trained_tasks(result.stdout) == {"pose": 9} and counts["protocol_table"] == 2
    assert counts["select_real"] == 4  # all, 7shot, 20shot, 50shot
    assert counts["render_shard"] == 28 + 4 + 4  # one shard per category of pseudo_train and of pseudo_val
    assert counts["evaluate_pose_real"] == 9 and counts["write_pseudo_real"] == 1


@pytest.mark.slow
def test_real_data_protocols_end_to_end(tmp_path):
    nemo = nemo_python()
    config = _write_config(tmp_path, nemo)
    result = snakemake(tmp_path, configfile=config)
    assert result.returncode == 0, result.stderr[-5000:]
    results = tmp_path / "results"

    # The pseudo-real release, read back by the PASCAL3D+ reader as a real set entry of the config.
    entry = {"name": "pseudo-real", "format": "pascal3d", "root": str(results / "pseudo_real" / "PASCAL3D")}
    val = datasets.load_real_set({**entry, "split": "val", "sources": ["imagenet"]}, ["car", "boat"])
    assert 0 < len(val) <= 8
    pose_table = tables.read_csv(results / "tables" / "pose_metrics.csv")
    assert pose_table.columns[0] == "estimator"
    counted = pose_table[(pose_table["eval_set"] == "pseudo-real") & (pose_table["category"] == "mean (pooled)")]
    assert set(counted["images"]) == {len(val)}  # NeMo's rows too
    resnet = pose_table[pose_table["estimator"] == "resnet"]
    assert len(set(resnet["variant"])) == 4 + 2 * 3  # the pose table's 4, then 2 shots x 3 kinds

    # Few-shot subsets are nested; every training set is what its variant says.
    subsets = {
        name: set(pd.read_parquet(results / "real" / "pseudo" / f"{name}.parquet")["image_id"])
        for name in ("2shot", "4shot", "all")
    }
    assert subsets["2shot"] < subsets["4shot"] < subsets["all"]
    checkpoints = {
        path.parent.name: torch.load(path, weights_only=False) for path in (results / "train").glob("*/pose.pt")
    }
    synthetic_images = checkpoints["composite-kcf"]["images"]
    assert checkpoints["real-pseudo-2shot"]["images"] == 4 and checkpoints["real-pseudo"]["images"] == len(
        subsets["all"]
    )
    assert checkpoints["composite-kcf_plus_real-pseudo-4shot"]["images"] == synthetic_images + 8
    synthetic_sha = _sha256(results / "train" / "composite-kcf" / "pose.pt")
    for name in FINETUNED:
        assert checkpoints[name]["init_checkpoint_sha256"] == synthetic_sha
        assert [row["epoch"] for row in checkpoints[name]["history"]] == [1]  # train.finetune.epochs
    category = torch.load(
        results / "train" / "composite-kcf_then_real-pseudo-2shot" / "category.pt", weights_only=False
    )
    assert category["init_checkpoint_sha256"] == _sha256(results / "train" / "composite-kcf" / "category.pt")

    # Both tables, in three formats, every cell traced to its checkpoint.
    few_shot = tables.read_csv(results / "tables" / "few_shot.csv")
    few_shot_resnet = few_shot[few_shot["estimator"] == "resnet"]
    assert list(few_shot_resnet["training_data"]) == [
        "real only",
        "synthetic, then fine-tuned on real",
        "synthetic + real",
    ]
    assert "mean/acc_pi_6" in few_shot and "4shot/median_error_deg" in few_shot
    protocol = tables.read_csv(results / "tables" / "pose_protocol.csv")
    protocol_resnet = protocol[protocol["estimator"] == "resnet"]
    assert list(protocol_resnet["variant"]) == [
        "composite-kcf",
        "real-pseudo",
        *FINETUNED[:1],
        "composite-kcf_plus_real-pseudo",
    ]
    assert list(protocol.columns[2:]) == [
        f"{s}/{m}" for s in ("pseudo-real", "synthetic-test") for m in ("acc_pi_6", "acc_pi_18")
    ]
    for name in ("few_shot", "pose_protocol"):
        assert (results / "tables" / f"{name}.md").read_text().count("\n|") >= 3
        assert r"\begin{tabular}" in (results / "tables" / f"{name}.tex").read_text()
        provenance = tables.read_csv(results / "tables" / f"{name}.provenance.csv")
        for row in provenance.itertuples():
            if row.estimator == "nemo":
                assert row.checkpoint_sha256 == _sha256(results / "nemo" / "train" / f"{row.variant}.pt")
                continue
            model = results / "train" / row.variant / "pose.pt"
            assert row.checkpoint_sha256 == _sha256(model)
            assert row.manifest_hash == checkpoints[row.variant]["manifest_hash"]
    cell = protocol_resnet.set_index("variant").loc["real-pseudo", "pseudo-real/acc_pi_6"]
    source = resnet[
        (resnet["variant"] == "real-pseudo")
        & (resnet["eval_set"] == "pseudo-real")
        & (resnet["category"] == "mean (per-category)")
    ]
    assert cell == pytest.approx(source["acc_pi_6"].iloc[0])
    _check_nemo(tmp_path, config, pose_table, protocol, few_shot)

    # Asking for one table rebuilds only it; a fine-tuning setting reruns only the fine-tuned variants.
    for suffix in ("csv", "md", "tex", "provenance.csv"):
        (results / "tables" / f"few_shot.{suffix}").unlink()
    again = snakemake(tmp_path, "-n", str(Path("results") / "tables" / "few_shot.csv"), configfile=config)
    assert again.returncode == 0, again.stderr[-3000:]
    assert job_counts(again.stdout) == {"protocol_table": 1, "total": 1}
    changed = _write_config(tmp_path, nemo, **{"train.finetune": {"epochs": 2}})
    rerun = snakemake(tmp_path, "-n", configfile=changed)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    counts = job_counts(rerun.stdout)
    assert trained_tasks(rerun.stdout) == {"pose": 3, "category": 3}
    assert "kcf_fold" not in counts and "select_real" not in counts and "render_shard" not in counts
    assert "train_nemo" not in counts and "cc3d_nemo" not in counts  # NeMo has no train.finetune


NEMO_MODELS = ["composite-kcf", "composite-kcf_then_real-pseudo-2shot", "composite-kcf+cc3d"]


def _check_nemo(workdir: Path, config: Path, pose_table, protocol, few_shot) -> None:
    """NeMo's part of the protocols run: its rows in every table, CC3D's model and pseudo-labels, nothing left to
    do, and no rerun for a new interpreter path or device (runtime, not settings)."""
    results, settings = workdir / "results", yaml.safe_load(NEMO.read_text())["nemo"]
    rows = pose_table[pose_table["estimator"] == "nemo"]
    pooled = rows[rows["category"] == "mean (pooled)"]
    assert sorted(zip(pooled["variant"], pooled["eval_set"], strict=True)) == sorted(
        (model, eval_set) for model in NEMO_MODELS for eval_set in ("pseudo-real", "synthetic-test")
    )
    assert set(rows["category"]) == {"car", "boat", "mean (pooled)", "mean (per-category)"}
    assert rows[["acc_pi_6", "acc_pi_18"]].apply(lambda column: column.between(0, 1)).all().all()
    for model in NEMO_MODELS:
        sha = _sha256(results / "nemo" / "train" / f"{model}.pt")
        assert set(rows.loc[rows["variant"] == model, "checkpoint_sha256"]) == {sha}, model
        assert (results / "nemo" / "train" / f"{model}_history.csv").stat().st_size > 0, model
    # KCF scored with NeMo fold models (kcf.estimator: nemo): every generated training image once, by the
    # reconstruction loss of its label, and kcf_select kept by those scores.
    generated = pd.concat(
        pd.read_parquet(path) for path in (results / "generate" / "composite" / "train").glob("*/*.parquet")
    )
    scores = read_csv(results / "kcf" / "composite" / "scores.csv")
    assert sorted(scores["image_id"]) == sorted(generated["image_id"])
    assert scores["kcf_loss"].between(0, 2).all() and scores["kcf_loss"].nunique() > 1
    fold_logs = list((workdir / "logs" / "kcf_fold_nemo" / "composite").glob("*.log"))
    assert fold_logs and all("NeMo KCF fold" in log.read_text() for log in fold_logs)
    kept = read_csv(results / "kcf" / "composite" / "kept.csv")
    assert set(kept["image_id"]) < set(scores["image_id"])
    labels = read_csv(results / "nemo" / "train" / "composite-kcf+cc3d_pseudo_labels.csv")
    assert 0 < len(labels) and labels.groupby("category").size().max() <= settings["cc3d"]["keep"]
    unlabelled = set(pd.read_parquet(results / "real" / "pseudo" / "all.parquet")["image_id"])
    assert set(labels["image_id"]) <= unlabelled
    # The protocol tables: the ResNet's rows, then one per NeMo model; few-shot: NeMo's fine-tuned row, 2 shots.
    assert list(protocol.columns[:2]) == ["estimator", "variant"]
    assert list(protocol.loc[protocol["estimator"] == "nemo", "variant"]) == NEMO_MODELS
    nemo_cell = protocol[(protocol["estimator"] == "nemo") & (protocol["variant"] == "composite-kcf+cc3d")]
    source = rows[
        (rows["variant"] == "composite-kcf+cc3d")
        & (rows["eval_set"] == "pseudo-real")
        & (rows["category"] == "mean (per-category)")
    ]
    assert nemo_cell["pseudo-real/acc_pi_6"].iloc[0] == pytest.approx(source["acc_pi_6"].iloc[0])
    nemo_few_shot = few_shot[few_shot["estimator"] == "nemo"]
    assert list(nemo_few_shot["training_data"]) == ["synthetic, then fine-tuned on real"]
    assert nemo_few_shot["2shot/acc_pi_6"].notna().all() and nemo_few_shot["4shot/acc_pi_6"].isna().all()
    # Done is done; the interpreter's path and the device are not settings.
    again = snakemake(workdir, "-n", configfile=config)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]
    runtime = yaml.safe_load(config.read_text())
    runtime["nemo"].update(python=str(Path(runtime["nemo"]["python"]).with_name("python3")), device="auto")
    (workdir / "runtime.yaml").write_text(yaml.safe_dump(runtime))
    again = snakemake(workdir, "-n", configfile=workdir / "runtime.yaml")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]
    # The pose search is evaluation's and CC3D's setting, not training's: a new one retrains no NeMo model.
    searched = yaml.safe_load(config.read_text())
    searched["nemo"]["search"]["steps"] += 1
    (workdir / "searched.yaml").write_text(yaml.safe_dump(searched))
    again = snakemake(workdir, "-n", configfile=workdir / "searched.yaml")
    assert again.returncode == 0, again.stderr[-3000:]
    counts = job_counts(again.stdout)
    assert "train_nemo" not in counts and "kcf_fold_nemo" not in counts and counts["cc3d_nemo"] == 1
    assert counts["evaluate_nemo"] == counts["evaluate_nemo_real"] == len(NEMO_MODELS)


def test_one_table_from_nothing_plans_only_its_own_variants(tmp_path):
    config = _write_config(tmp_path)
    result = snakemake(tmp_path, "-n", str(Path("results") / "tables" / "few_shot.csv"), configfile=config)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout)
    # composite-kcf (the fine-tuning start) and 3 rows x 2 shots; not real-pseudo nor its fine-tuned version.
    assert trained_tasks(result.stdout) == {"pose": 7} and counts["protocol_table"] == 1
    assert "pose_table" not in counts
    assert counts["select_real"] == 2
