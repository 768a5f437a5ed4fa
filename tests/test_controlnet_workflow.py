"""The paper path end to end: the ControlNet backends through every stage after them.

One run of the seconds-scale tiny config with the variants a paper run trains (`controlnet-all`,
`controlnet-kcf`, and `controlnet-sdxl-all`), on tiny random-weight SD 1.5 and SDXL pipelines saved to disk and
loaded through `from_pretrained` (dst3d/testing/tiny_diffusion.py), with the prompts written by the openai backend
against a scripted OpenAI-compatible server on 127.0.0.1. `controlnet` keeps the generated image
(`background: generated`, 3D-DST), `controlnet-sdxl` is conditioned on the edge map and the rendered depth map
(`canny+depth`, a multi-ControlNet) and pastes the object onto the background photo (`paste`, P3D-Diffusion); a
second run switches `controlnet` to `paste` and reruns only what that changes. Images are 64 px
from 48 px renders, so every box and cuboid goes through the render-to-image scaling.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import yaml
from llm_server import FakeLLMServer, answer
from PIL import Image
from workflow_runs import REPO, job_counts, run

from dst3d.generate import GENERATED_COLUMNS
from dst3d.generate.composite import fit_background
from dst3d.tables import read_csv
from dst3d.testing.tiny_diffusion import build_tiny_controlnet, build_tiny_pipeline

pytestmark = pytest.mark.slow

TINY = [REPO / "config" / "config.yaml", REPO / ".test" / "config" / "config.yaml"]
DESCRIPTIONS = ["a red car", "a photo of a car", "a blue car"]
VARIANTS = ["controlnet-all", "controlnet-kcf", "controlnet-sdxl-all"]
SIZE = 64


def diffusion_block(models, **overrides) -> dict:
    return {
        "base_model": str(models.base_model),
        "controlnet_model": str(models.controlnet_model),
        "size": SIZE,
        "steps": 2,
        "batch_size": 2,
        "device": "cpu",
        "local_files_only": True,
        **overrides,
    }


@pytest.fixture(scope="module")
def controlnet_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("controlnet-run")
    sd15 = build_tiny_pipeline(root / "tiny-sd15")
    sdxl = build_tiny_pipeline(root / "tiny-sdxl", sdxl=True)
    sdxl_depth = build_tiny_controlnet(root / "tiny-sdxl" / "depth-controlnet", sdxl=True, seed=3)
    server = FakeLLMServer(script=[answer(json.dumps(DESCRIPTIONS))] * 4).start()
    workdir = root / "work"
    workdir.mkdir()
    overlay = {
        "train": {"variants": VARIANTS},
        "prompts": {
            "backend": "openai",
            "openai": {"base_url": server.base_url, "prompts_per_category": 3, "max_retries": 0},
        },
        # SDXL conditioned on the edge map and the rendered depth map (a multi-ControlNet), from 16-bit depth renders.
        "render": {"depth": "png16"},
        "generate": {
            "controlnet": diffusion_block(sd15),
            "controlnet-sdxl": diffusion_block(
                sdxl,
                vae_model=str(sdxl.vae_model),
                scheduler="euler",
                background="paste",
                conditioning="canny+depth",
                depth_controlnet_model=str(sdxl_depth),
            ),
        },
    }
    overlay_path = root / "controlnet.yaml"
    overlay_path.write_text(yaml.safe_dump(overlay))
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-controlnet-run", "HF_HUB_OFFLINE": "1"}
    result = run(workdir, "--cores", "2", configfiles=[*TINY, overlay_path], env=env, timeout_s=1500)
    server.stop()
    yield {
        "workdir": workdir,
        "result": result,
        "server": server,
        "overlay": overlay,
        "root": root,
        "env": env,
        "configfiles": [*TINY, overlay_path],
    }


def test_every_controlnet_variant_reaches_the_tables_and_figures(controlnet_run):
    result = controlnet_run["result"]
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    results = controlnet_run["workdir"] / "results"
    table = read_csv(results / "tables" / "pose_metrics.csv")
    assert set(table["variant"]) == set(VARIANTS)
    assert set(table["category"]) == {"car", "boat", "mean (pooled)", "mean (per-category)"}
    assert (results / "kcf" / "controlnet" / "kept.csv").is_file()
    with Image.open(results / "figures" / "samples.png") as figure:
        assert figure.width > 200 and figure.height > 100
    # One request per category, with the key from the environment: the train and test prompt sets of a category
    # ask the same question, so the second is answered from the cache.
    assert len(controlnet_run["server"].requests) == 2
    assert {request.headers["authorization"] for request in controlnet_run["server"].requests} == {
        "Bearer sk-test-controlnet-run"
    }


def test_generated_tables_follow_the_contract(controlnet_run):
    workdir = controlnet_run["workdir"]
    results = workdir / "results"
    render = pd.read_parquet(results / "render" / "train" / "car" / "000.parquet")
    for backend, mode in (("controlnet", "generated"), ("controlnet-sdxl", "paste")):
        table = pd.read_parquet(results / "generate" / backend / "train" / "car" / "000.parquet")
        assert list(table.columns) == [*render.columns, *GENERATED_COLUMNS]
        # The render record is kept as it was: the render seed is not replaced by the generation seed.
        pd.testing.assert_frame_equal(table[render.columns], render)
        assert (table["generate_seed"] != table["seed"]).all()
        assert set(table["prompt"]) <= set(DESCRIPTIONS)
        assert (table["backend"] == backend).all() and (table["background_mode"] == mode).all()
        assert (table["image_width"] == SIZE).all() and (table["image_height"] == SIZE).all()
        assert table["base_model_revision"].str.startswith("sha256:").all()
        for path in table["image_path"]:
            with Image.open(workdir / path) as image:
                assert image.size == (SIZE, SIZE)
    sdxl = pd.read_parquet(results / "generate" / "controlnet-sdxl" / "train" / "car" / "000.parquet")
    assert sdxl["vae_model_revision"].str.startswith("sha256:").all()
    assert set(sdxl["conditioning"]) == {"canny+depth"} and sdxl["depth_path"].str.endswith("_depth.png").all()
    assert sdxl["depth_controlnet_model_revision"].str.startswith("sha256:").all()
    sd15 = pd.read_parquet(results / "generate" / "controlnet" / "train" / "car" / "000.parquet")
    assert set(sd15["conditioning"]) == {"canny"} and sd15["depth_controlnet_model"].isna().all()
    # The COCO export of a ControlNet variant: its images have another size than their renders, so its masks and
    # cameras are scaled to the image (pycocotools reads it back).
    from pycocotools.coco import COCO

    coco = COCO(str(results / "export" / "controlnet-kcf" / "coco" / "instances_train.json"))
    kept = read_csv(results / "kcf" / "controlnet" / "kept.csv")
    assert sorted(image["image_key"] for image in coco.dataset["images"]) == sorted(kept["image_id"])
    annotation = coco.dataset["annotations"][0]
    image = coco.loadImgs(annotation["image_id"])[0]
    assert coco.annToMask(annotation).shape == (SIZE, SIZE) and image["width"] == SIZE
    assert annotation["K"][0] == pytest.approx(render["K"].iloc[0][0] * SIZE / render["width"].iloc[0])
    # The NeMo layout of the same images, read back by the nemo reader, with the focal length scaled as K is;
    # the dataset card names the models that generated them.
    from dst3d.inputs.datasets import read_nemo

    export = results / "export" / "controlnet-kcf"
    nemo = read_nemo(export / "nemo", "train", ["car", "boat"])
    assert sorted(nemo["image_id"].str.split("/").str[1]) == sorted(kept["image_id"])
    with np.load(export / "nemo" / "train" / "annotations" / f"{nemo['image_id'].iloc[0]}.npz") as npz:
        assert float(npz["focal"]) == pytest.approx(annotation["K"][0]) and tuple(npz["principal"]) == (SIZE / 2,) * 2
    card = (export / "DATASET.md").read_text()
    assert "Images: generated by `" in card and "base model's licence" in card
    # Paste mode: outside the object mask every pixel is the background photo's, fitted to the image.
    record = sdxl.iloc[0]
    mask = np.asarray(Image.open(workdir / record["mask_path"]).convert("L").resize((SIZE, SIZE), Image.NEAREST)) >= 128
    generated = np.asarray(Image.open(workdir / record["image_path"]).convert("RGB"))
    with Image.open(workdir / record["background_path"]) as photo:
        background = fit_background(np.asarray(photo.convert("RGB")), SIZE, SIZE)
    assert mask.any() and (~mask).any()
    assert np.array_equal(generated[~mask], background[~mask])
    assert not np.array_equal(generated[mask], background[mask])


def test_a_finished_run_plans_nothing_and_a_paste_switch_reruns_only_controlnet(controlnet_run):
    workdir, configfiles, env = controlnet_run["workdir"], controlnet_run["configfiles"], controlnet_run["env"]
    idle = run(workdir, "-n", configfiles=configfiles, env=env)
    assert idle.returncode == 0 and "Nothing to be done" in idle.stdout + idle.stderr, idle.stdout[-3000:]

    overlay = controlnet_run["overlay"]
    overlay["generate"]["controlnet"]["background"] = "paste"
    paste_path = controlnet_run["root"] / "controlnet-paste.yaml"
    paste_path.write_text(yaml.safe_dump(overlay))
    configfiles = [*configfiles[:-1], paste_path]
    counts = job_counts(run(workdir, "-n", configfiles=configfiles, env=env).stdout)
    # 2 categories x (2 train + 1 test) shards of controlnet; its KCF (2 folds, the consistency check) and both its
    # variants; the table
    # and the sample and consistency figures, the COCO, NeMo and BOP exports and cards of both variants, the dataset statistics. Nothing of controlnet-sdxl, no render, edge or prompt job.
    assert counts == {
        "generate_shard": 6,
        "kcf_fold": 2,
        "kcf_consistency": 1,
        "plot_consistency": 1,
        "kcf_select": 1,
        "train_model": 2,
        "evaluate_pose": 2,
        "pose_table": 1,
        "plot_samples": 1,
        "export_coco": 2,
        "export_nemo": 2,
        "export_bop": 2,
        "dataset_card": 2,
        "dataset_table": 1,
        "table_html": 2,
        "plot_kcf": 1,
        "plot_training": 1,
        "plot_accuracy": 1,
        "all": 1,
        "total": 32,
    }, counts

    result = run(workdir, "--cores", "2", configfiles=configfiles, env=env, timeout_s=1500)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    results = workdir / "results"
    table = pd.read_parquet(results / "generate" / "controlnet" / "train" / "boat" / "000.parquet")
    assert (table["background_mode"] == "paste").all()
    assert set(read_csv(results / "tables" / "pose_metrics.csv")["variant"]) == set(VARIANTS)
