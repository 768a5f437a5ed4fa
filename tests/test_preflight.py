"""What a run needs is checked before any job: each missing prerequisite stops a real run before its first job,
naming the config key, and shows as a warning in a dry run (which still plans the work)."""

from __future__ import annotations

import os

import pytest
import yaml
from workflow_runs import REPO, run

from dst3d import preflight
from dst3d.config_schema import block_settings, validate_config
from dst3d.identity import shard_names

TINY = [REPO / "config" / "config.yaml", REPO / ".test" / "config" / "config.yaml"]


def attempt(tmp_path, overlay: dict, *arguments: str, env: dict | None = None):
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(overlay))
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    return run(workdir, "--cores", "2", *arguments, configfiles=[*TINY, path], env=env or dict(os.environ))


def without(variable: str) -> dict:
    return {key: value for key, value in os.environ.items() if key != variable}


CASES = {
    "controlnet-weights": (
        {
            "train": {"variants": ["controlnet-kcf"]},
            "generate": {"controlnet": {"base_model": "no/such-dir/sd15", "controlnet_model": "no/such-dir/canny"}},
        },
        None,
        ["generate.controlnet.base_model", "generate.controlnet.controlnet_model", "no/such-dir/sd15"],
    ),
    "sdxl-offline-cache": (
        {"train": {"variants": ["controlnet-sdxl-all"]}},
        {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": "/nonexistent-hf-cache"},
        [
            "generate.controlnet-sdxl.base_model",
            "generate.controlnet-sdxl.vae_model",
            "/nonexistent-hf-cache",
            "hf download stabilityai/stable-diffusion-xl-base-1.0",
        ],
    ),
    "openai-key": (
        {
            "prompts": {
                "backend": "openai",
                "openai": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "DST3D_TEST_NO_SUCH_KEY"},
            }
        },
        None,
        ["DST3D_TEST_NO_SUCH_KEY", "prompts.openai.api_key_env"],
    ),
    "asset-folders": (
        {
            "assets": {
                "source": "folders",
                "folders": {
                    "models_csv": "data/none/models.csv",
                    "textures_dir": "data/none/dtd",
                    "backgrounds_dir": "data/none/backgrounds",
                },
            }
        },
        None,
        [
            "assets.folders.models_csv = 'data/none/models.csv'",
            "assets.folders.textures_dir",
            "assets.folders.backgrounds_dir",
        ],
    ),
    "pretrained-weights": (
        {"train": {"pretrained": True, "backbone": "resnet18"}},
        {"TORCH_HOME": "/nonexistent-torch-home"},
        ["train.pretrained", "kcf.train.pretrained", "/nonexistent-torch-home/hub/checkpoints/resnet18-"],
    ),
    "nemo-pretrained-weights": (
        {"nemo": {"variants": ["composite-kcf"], "pretrained": True, "backbone": "resnet34"}},
        {"TORCH_HOME": "/nonexistent-torch-home"},
        ["nemo.pretrained", "/nonexistent-torch-home/hub/checkpoints/resnet34-", "set nemo.pretrained: false"],
    ),
    "real-set-root": (
        {"evaluate": {"real_sets": [{"name": "p3d", "format": "pascal3d", "root": "/nonexistent-pascal3d"}]}},
        None,
        ["evaluate.real_sets[0] ('p3d').root", "/nonexistent-pascal3d"],
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_missing_prerequisite_stops_the_run_before_any_job(tmp_path, case):
    overlay, extra_env, expected = CASES[case]
    env = {**without("DST3D_TEST_NO_SUCH_KEY"), **(extra_env or {})}
    result = attempt(tmp_path, overlay, env=env)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    # A missing rule input (the model table, a real set root) Snakemake refuses itself when it builds the DAG,
    # after the warnings that name the key; the other problems stop the run in onstart.
    refused_by_snakemake = case in ("asset-folders", "real-set-root")
    assert ("Missing input files" if refused_by_snakemake else "no job was started") in output, output[-3000:]
    for text in expected:
        assert text in output, (text, output[-3000:])
    workdir = tmp_path / "work"
    assert not (workdir / "results").exists() and not (workdir / "logs").exists()

    dry = attempt(tmp_path, overlay, "-n", env=env)
    dry_output = dry.stdout + dry.stderr
    if refused_by_snakemake:
        assert "Missing input files" in dry_output
    else:
        assert dry.returncode == 0, dry_output[-3000:]
        assert "Job stats" in dry_output
    assert "dst3d prerequisite missing" in dry_output and expected[0] in dry_output


def test_the_embedded_default_needs_nothing(tmp_path):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    from snakemake.utils import validate

    validate(config, str(REPO / "config" / "schema.yaml"), set_default=True)
    config["results"] = str(tmp_path / "results")
    assert preflight.problems(config, environ={}) == []


def test_kcf_fold_weights_follow_the_kcf_estimator(tmp_path):
    """KCF's fold models are ResNets with kcf.estimator resnet (kcf.train.pretrained asks for their weights) and NeMo
    models with nemo (nemo.pretrained does; kcf.train is unused then)."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    from snakemake.utils import validate

    validate(config, str(REPO / "config" / "schema.yaml"), set_default=True)
    config["results"] = str(tmp_path / "results")
    config["kcf"]["train"] = {"pretrained": True, "backbone": "resnet34"}
    config["nemo"].update({"pretrained": True, "backbone": "resnet50"})
    torch_home = tmp_path / "no-torch-cache"
    import torch

    original = torch.hub.get_dir()
    torch.hub.set_dir(str(torch_home / "hub"))
    try:
        by_resnet = " ".join(preflight.problems(config, environ={}))
        config["kcf"]["estimator"] = "nemo"
        by_nemo = " ".join(preflight.problems(config, environ={}))
    finally:
        torch.hub.set_dir(original)
    assert "kcf.train.pretrained" in by_resnet and "nemo.pretrained" not in by_resnet
    assert "kcf.train.pretrained" not in by_nemo and "nemo.pretrained is true" in by_nemo
    assert "resnet50" in by_nemo and str(torch_home) in by_nemo


def test_finished_outputs_need_no_prerequisites(tmp_path):
    """A finished ControlNet run copied to a machine without the weights (to redo a table) is not refused."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for layer in (
        yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text()),
        {
            "train": {"variants": ["controlnet-all"]},
            "results": str(tmp_path / "results"),
            "generate": {"controlnet": {"base_model": str(tmp_path / "gone")}},
        },
    ):
        for key, value in layer.items():
            config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    from snakemake.utils import validate

    validate(config, str(REPO / "config" / "schema.yaml"), set_default=True)
    assert any("generate.controlnet.base_model" in problem for problem in preflight.problems(config))
    for split, settings in config["splits"].items():
        for category in config["categories"]:
            for shard in shard_names(settings):
                path = tmp_path / "results" / "generate" / "controlnet" / split / category / f"{shard}.parquet"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
    assert preflight.problems(config) == []


RENAMED_LINE = "config: evaluate.benchmarks is now evaluate.real_sets (renamed; same entries)"


def test_a_renamed_key_names_its_new_key():
    entry = {"name": "p3d", "format": "pascal3d", "root": "/nonexistent-pascal3d"}
    with pytest.raises(ValueError) as raised:
        validate_config({"evaluate": {"benchmarks": [entry]}})
    assert str(raised.value) == RENAMED_LINE
    with pytest.raises(ValueError, match=r"evaluate\.benchmarks is now evaluate\.real_sets"):
        block_settings("evaluate", {"benchmarks": [entry]})


def test_an_old_config_with_a_renamed_key_stops_before_any_job(tmp_path):
    """A config written before evaluate.benchmarks became evaluate.real_sets stops in one line naming the new key,
    dry run or not."""
    entry = {"name": "p3d", "format": "pascal3d", "root": str(tmp_path)}
    for arguments in (("-n",), ()):
        result = attempt(tmp_path, {"evaluate": {"benchmarks": [entry]}}, *arguments)
        output = result.stdout + result.stderr
        assert result.returncode != 0, output[-3000:]
        assert RENAMED_LINE in output.splitlines(), output[-3000:]
        assert "Job stats" not in output and "not a known key" not in output, output[-3000:]
    workdir = tmp_path / "work"
    assert not (workdir / "results").exists() and not (workdir / "logs").exists()
