"""NeMo's wiring (rules/nemo.smk, dst3d.nemo_workflow): the neural mesh files against the models they cover, the
plans with NeMo on and off, the job JSON each rule hands to `python -m dst3d.nemo.cli`, and the config errors.
NeMo's end-to-end run is part of the protocols' (tests/test_protocols_workflow.py)."""

import json
import re
import shlex

import numpy as np
import pytest
import yaml
from test_workflow import REPO, job_counts, snakemake

from dst3d import nemo_workflow
from dst3d.inputs import meshes

PROTOCOLS = REPO / "config" / "protocols.yaml"
NEMO = REPO / "config" / "nemo.yaml"
NEMO_RULES = {"nemo_mesh", "train_nemo", "cc3d_nemo", "evaluate_nemo", "evaluate_nemo_real"}
AXES = {"obj": {"forward": "NEGATIVE_Z", "up": "Y"}, "off": {"forward": "Y", "up": "Z"}}


def test_category_mesh_covers_every_model_as_rendered_and_grows_with_stretch(embedded_assets, tmp_path):
    models = embedded_assets["models"]
    settings = {"vertices": 400, "coverage": 1.0, "stretch": 0.0}
    arrays = nemo_workflow.write_category_mesh(tmp_path / "car.npz", models, "car", AXES, settings)
    with np.load(tmp_path / "car.npz") as stored:
        assert sorted(stored.files) == ["faces", "high", "low", "vertices"]
        assert stored["vertices"].dtype == np.float32 and stored["faces"].dtype == np.int64
        assert stored["vertices"].shape[1] == 3 and stored["faces"].shape[1] == 3
        assert stored["low"].shape == stored["high"].shape == (3,)
    # The union of the models' normalised boxes: every vertex of every car model inside, each side touched.
    points = np.concatenate(
        [meshes.canonical_mesh(model, AXES)[0] for model in models[models["category"] == "car"].to_dict("records")]
    )
    assert np.allclose(arrays["low"], points.min(axis=0)) and np.allclose(arrays["high"], points.max(axis=0))
    assert np.isclose((arrays["high"] - arrays["low"]).max(), 1.0)  # normalised: largest side 1, no mm scaling
    assert np.allclose(arrays["vertices"].min(axis=0), arrays["low"], atol=1e-6)
    stretched = nemo_workflow.write_category_mesh(
        tmp_path / "stretched.npz", models, "car", AXES, {**settings, "stretch": 0.05}
    )
    assert np.allclose(stretched["high"], 1.05 * arrays["high"]) and np.allclose(stretched["low"], 1.05 * arrays["low"])


def test_category_mesh_names_a_model_it_cannot_read(embedded_assets, tmp_path):
    models = embedded_assets["models"].copy()
    models.loc[models.index[0], "format"] = "blend"
    name = models.loc[models.index[0], "model_id"]
    category = models.loc[models.index[0], "category"]
    settings = {"vertices": 100, "coverage": 1.0, "stretch": 0.0}
    with pytest.raises(ValueError, match=rf"reads OBJ and OFF models; model {re.escape(str(name))} .*'blend'"):
        nemo_workflow.write_category_mesh(tmp_path / "x.npz", models, category, AXES, settings)


def test_nemo_off_plans_no_nemo_job(tmp_path):
    result = snakemake(tmp_path, "-n", overlay=PROTOCOLS)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not NEMO_RULES & set(job_counts(result.stdout))
    assert "nemo.python" not in result.stdout + result.stderr


def shell_jobs(output: str) -> dict[tuple[str, str], dict]:
    """(rule, the job's wildcards) -> the job JSON of every `dst3d.nemo.cli` command a `-n -p` run prints."""
    jobs, rule, wildcards = {}, None, ""
    for line in output.splitlines():
        if match := re.match(r"(local)?rule (\w+):$", line):
            rule, wildcards = match.group(2), ""
        elif line.startswith("    wildcards: "):
            wildcards = line.split(": ", 1)[1]
        elif "-m dst3d.nemo.cli" in line:
            words = shlex.split(line.split("Shell command: ", 1)[-1])
            jobs[(rule, wildcards)] = {
                "command": words[words.index("-m") + 2],
                **json.loads(words[words.index("--job") + 1]),
            }
    return jobs


def test_nemo_on_plans_its_jobs_and_hands_each_its_contract(tmp_path):
    result = snakemake(tmp_path, "-n", "-p", configfile=REPO / "config" / "config.yaml", overlay=None)
    assert result.returncode == 0
    plain = job_counts(result.stdout)
    overlay = tmp_path / "on.yaml"
    layered = yaml.safe_load(PROTOCOLS.read_text()) | yaml.safe_load(NEMO.read_text())
    overlay.write_text(yaml.safe_dump(layered))
    result = snakemake(tmp_path, "-n", "-p", overlay=overlay)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout)
    # composite-kcf and the 7-shot fine-tuned one, CC3D of composite-kcf; 3 models x 2 evaluation sets.
    assert {rule: counts[rule] for rule in NEMO_RULES} == {
        "nemo_mesh": 4,
        "train_nemo": 2,
        "cc3d_nemo": 1,
        "evaluate_nemo": 3,
        "evaluate_nemo_real": 3,
    }
    assert counts["train_model"] == 9 and plain["train_model"] == 1  # the ResNet's jobs are the protocols' own
    jobs = shell_jobs(result.stdout)
    finetuned = jobs[("train_nemo", "variant=composite-kcf_then_real-pseudo-7shot")]
    synthetic = jobs[("train_nemo", "variant=composite-kcf")]
    assert finetuned["command"] == "train" and finetuned["init"] == "results/nemo/train/composite-kcf.pt"
    assert finetuned["shards"] == [] and finetuned["kept"] is None
    assert finetuned["real"] == "results/real/pseudo/7shot.parquet"
    assert synthetic["init"] is None and synthetic["real"] is None and len(synthetic["shards"]) == 24
    assert synthetic["kept"] == "results/kcf/composite/kept.csv"
    assert synthetic["meshes"] == {c: f"results/nemo/meshes/{c}.npz" for c in ["car", "chair", "airplane", "boat"]}
    settings = synthetic["settings"]
    assert "python" not in settings and "variants" not in settings and "variants" not in settings["cc3d"]
    assert settings["backbone"] == "resnet18" and settings["cc3d"]["keep"] == 20 and settings["device"] == "cpu"
    assert synthetic["threads"] == 2 and synthetic["seed"] == 0
    assert synthetic["outputs"] == {
        "model": "results/nemo/train/composite-kcf.pt",
        "history": "results/nemo/train/composite-kcf_history.csv",
    }
    adapted = jobs[("cc3d_nemo", "variant=composite-kcf")]
    assert adapted["command"] == "cc3d" and adapted["variant"] == "composite-kcf+cc3d"
    assert adapted["model"] == "results/nemo/train/composite-kcf.pt"
    assert adapted["unlabelled"] == "results/real/pseudo/all.parquet"
    assert adapted["shards"] == synthetic["shards"] and adapted["kept"] == synthetic["kept"]
    assert adapted["outputs"]["pseudo_labels"] == "results/nemo/train/composite-kcf+cc3d_pseudo_labels.csv"
    real = jobs[("evaluate_nemo_real", "model=composite-kcf+cc3d, real_set=pseudo-real")]
    assert real["command"] == "evaluate" and real["model"] == "results/nemo/train/composite-kcf+cc3d.pt"
    assert real["shards"] is None and real["real_set"]["name"] == "pseudo-real" and real["batch_size"] == 64
    test = jobs[("evaluate_nemo", "model=composite-kcf_then_real-pseudo-7shot")]
    assert test["real_set"] is None and len(test["shards"]) == 4
    assert test["outputs"]["metrics"] == "results/evaluate/nemo/composite-kcf_then_real-pseudo-7shot/metrics.csv"


@pytest.mark.parametrize(
    "nemo, expected",
    [
        ({"variants": ["composite-kcf"], "cc3d": {"variants": ["composite-kcf"]}}, "nemo.cc3d.source is not"),
        (
            {"variants": ["composite-kcf"], "cc3d": {"variants": ["composite-all"], "source": "pseudo"}},
            "nemo.cc3d.variants: 'composite-all' is not one of nemo.variants",
        ),
        ({"variants": ["composite-best"]}, "config: nemo.variants: training variant 'composite-best'"),
        ({"variants": ["real-pascal3d"]}, "config: nemo.variants: training variant 'real-pascal3d'"),
        ({"variants": ["composite-kcf"], "cc3d": {"source": "pascal3d"}}, "nemo.cc3d.source 'pascal3d'"),
        ({"input_size": 100}, "nemo.input_size"),
        ({"variants": ["composite-kcf+cc3d"]}, "nemo.variants"),
    ],
)
def test_bad_nemo_config_names_the_key_before_any_job(tmp_path, nemo, expected):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config |= {key: value for key, value in yaml.safe_load(PROTOCOLS.read_text()).items()}
    config["nemo"] = nemo
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", configfile=path)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and expected in output, output[-3000:]
    assert "Job stats" not in output


def test_kcf_with_nemo_plans_nemo_fold_jobs_with_their_contract(tmp_path):
    overlay = tmp_path / "kcf.yaml"
    overlay.write_text(yaml.safe_dump({"kcf": {"estimator": "nemo"}, "nemo": {"python": "/bin/true"}}))
    result = snakemake(tmp_path, "-n", "-p", overlay=overlay)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout)
    assert counts["kcf_fold_nemo"] == 3 and counts["nemo_mesh"] == 4  # the embedded default's 3 folds over all
    assert "kcf_fold" not in counts
    assert not {"train_nemo", "cc3d_nemo", "evaluate_nemo"} & set(counts)  # NeMo scores only; nemo.variants empty
    jobs = shell_jobs(result.stdout)
    fold = jobs[("kcf_fold_nemo", "backend=composite, group=all, fold=1")]
    assert fold["command"] == "kcf_fold" and fold["fold"] == 1 and fold["folds"] == 3 and fold["group"] == "all"
    assert len(fold["shards"]) == 24 and fold["outputs"] == {"scores": "results/kcf/composite/folds_nemo/all-1.csv"}
    assert fold["meshes"] == {c: f"results/nemo/meshes/{c}.npz" for c in ["car", "chair", "airplane", "boat"]}
    assert fold["settings"]["epochs"] == 20 and "python" not in fold["settings"]
