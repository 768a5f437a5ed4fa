"""The controlnet / controlnet-sdxl generate backends, run for real on tiny random-weight models.

The models are built from configs by dst3d/testing/tiny_diffusion.py, saved with ``save_pretrained`` and loaded by the
backend through ``from_pretrained``, as the published weights would be. Images are 32 px, 3 denoising steps.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dst3d.generate.diffusion import DEPTH_CONTROL_RANGE, ControlNetBackend, load_depth_control
from dst3d.generate.diffusion import generate_images as generate_shard
from dst3d.generate.hub import ModelNotAvailableError, check_models_available
from dst3d.generate.settings import resolve_settings
from dst3d.testing.tiny_diffusion import build_tiny_controlnet, build_tiny_pipeline

SIZE = 32
NEGATIVE_PROMPT = "longbody, lowres, bad anatomy, worst quality, low quality"
PROMPTS = ("a red car", "a photo of a bus", "a blue car", "an image of a car", "a red bus")


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and two threads on a busy 2-core machine stall each other."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    """Folders of a tiny SD 1.5-like pipeline, its ControlNet and a standalone VAE."""
    return build_tiny_pipeline(tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture(scope="module")
def tiny_sdxl(tmp_path_factory):
    return build_tiny_pipeline(tmp_path_factory.mktemp("tiny-sdxl"), sdxl=True)


def _settings(models, **overrides) -> dict:
    settings = {
        "base_model": str(models.base_model),
        "controlnet_model": str(models.controlnet_model),
        "vae_model": None,
        "size": SIZE,
        "steps": 3,
        "batch_size": 3,
        "device": "cpu",
    }
    settings.update(overrides)
    return settings


@pytest.fixture(scope="module")
def shard(tmp_path_factory) -> pd.DataFrame:
    """Five images' inputs: random edge maps, a centred square object mask, 64x32 background photos."""
    root = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(7)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[8:24, 10:26] = 255
    Image.fromarray(mask).save(root / "mask.png")
    rows = []
    for index, prompt in enumerate(PROMPTS):
        edges = (rng.random((SIZE, SIZE, 1)) > 0.8).astype(np.uint8) * 255
        Image.fromarray(np.repeat(edges, 3, axis=2)).save(root / f"edges-{index}.png")
        background = rng.integers(0, 256, (SIZE, 2 * SIZE, 3), dtype=np.uint8)
        Image.fromarray(background).save(root / f"background-{index}.png")
        rows.append(
            {
                "image_id": f"train-car-{index:06d}",
                "generate_seed": 1000 + 17 * index,
                "prompt": prompt,
                "edge_path": str(root / f"edges-{index}.png"),
                "render_path": str(root / "unused-render.png"),
                "mask_path": str(root / "mask.png"),
                "background_path": str(root / f"background-{index}.png"),
                "azimuth_rad": 0.1 * index,
            }
        )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def backend_batch3(tiny_sd) -> ControlNetBackend:
    return ControlNetBackend("controlnet", _settings(tiny_sd))


def _pixels(paths) -> list[np.ndarray]:
    return [np.asarray(Image.open(path)).astype(np.int16) for path in paths]


def test_defaults_are_the_published_settings():
    sd15, sdxl = resolve_settings("controlnet"), resolve_settings("controlnet-sdxl")
    assert (sd15["scheduler"], sd15["eta"], sd15["steps"], sd15["guidance_scale"]) == ("ddim", 1.0, 20, 9.0)
    assert (sd15["conditioning_scale"], sd15["size"], sd15["batch_size"]) == (1.0, 512, 4)
    assert sd15["controlnet_model"] == "lllyasviel/control_v11p_sd15_canny"
    assert (sdxl["controlnet_model"], sdxl["vae_model"], sdxl["size"]) == (
        "diffusers/controlnet-canny-sdxl-1.0",
        "madebyollin/sdxl-vae-fp16-fix",
        1024,
    )
    assert (sd15["device"], sd15["dtype"], sd15["attention"], sdxl["device"]) == ("auto", "auto", "sdpa", "auto")
    assert resolve_settings("controlnet", {"steps": 30, "size": None}) == {**sd15, "steps": 30, "size": None}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"steps_count": 3}, r"generate\.controlnet\.steps_count is not a known key \(did you mean steps\?\)"),
        ({"size": 500}, r"generate\.controlnet\.size: 500 is not a multiple of 8"),
        ({"steps": 0}, r"generate\.controlnet\.steps"),
        ({"base_model": ""}, r"generate\.controlnet\.base_model"),
        ({"scheduler": "pndm"}, "generate.controlnet.scheduler"),
        ({"device": "gpu"}, "generate.controlnet.device"),
        ({"background": "keep"}, "generate.controlnet.background"),
    ],
)
def test_settings_are_validated(override, message):
    with pytest.raises(ValueError, match=message):
        resolve_settings("controlnet", override)


def test_every_image_of_a_shard_is_written_at_the_configured_size(backend_batch3, shard, tmp_path):
    result = backend_batch3.generate(shard, tmp_path / "out", NEGATIVE_PROMPT)

    assert result["image_id"].tolist() == shard["image_id"].tolist()
    assert result[["image_width", "image_height"]].drop_duplicates().values.tolist() == [[SIZE, SIZE]]
    for image_id, image_path in zip(result["image_id"], result["image_path"], strict=True):
        assert Path(image_path) == tmp_path / "out" / f"{image_id}.png"
        with Image.open(image_path) as image:
            assert (image.size, image.mode) == ((SIZE, SIZE), "RGB")
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == sorted(f"{i}.png" for i in shard["image_id"])
    record = result.iloc[0]
    assert record["backend"] == "controlnet"
    assert (record["scheduler"], record["steps"], record["eta"], record["guidance_scale"]) == ("ddim", 3, 1.0, 9.0)
    assert (record["size"], record["batch_size"], record["device"], record["dtype"]) == (SIZE, 3, "cpu", "float32")
    assert record["background_mode"] == "generated"
    assert record["negative_prompt"] == NEGATIVE_PROMPT
    # Local folders are identified by a hash of their files.
    assert record["base_model_revision"].startswith("sha256:") and record["vae_model_revision"] is None


def test_size_null_generates_at_the_edge_maps_size_as_the_official_sdxl_code(tiny_sd, shard, tmp_path):
    # The edge maps are SIZE px; a configured size overrides them, null follows them.
    larger = generate_shard(
        "controlnet", shard.iloc[:2], tmp_path / "fixed", _settings(tiny_sd, size=2 * SIZE), NEGATIVE_PROMPT
    )
    assert set(larger["image_width"]) == {2 * SIZE}
    follow = generate_shard(
        "controlnet", shard.iloc[:2], tmp_path / "edge", _settings(tiny_sd, size=None), NEGATIVE_PROMPT
    )
    assert set(follow["image_width"]) == set(follow["image_height"]) == {SIZE}
    odd = tmp_path / "odd.png"
    Image.new("RGB", (36, 36)).save(odd)
    with pytest.raises(ValueError, match="multiple of 8"):
        generate_shard(
            "controlnet",
            shard.iloc[:1].assign(edge_path=str(odd)),
            tmp_path / "odd",
            _settings(tiny_sd, size=None),
            NEGATIVE_PROMPT,
        )


def test_same_seed_gives_the_same_image_across_runs_and_loads(backend_batch3, tiny_sd, shard, tmp_path):
    first = backend_batch3.generate(shard, tmp_path / "first", NEGATIVE_PROMPT)
    again = backend_batch3.generate(shard, tmp_path / "again", NEGATIVE_PROMPT)
    reloaded = generate_shard("controlnet", shard, tmp_path / "reloaded", _settings(tiny_sd), NEGATIVE_PROMPT)

    for first_image, again_image, reloaded_image in zip(
        _pixels(first["image_path"]), _pixels(again["image_path"]), _pixels(reloaded["image_path"]), strict=True
    ):
        assert np.array_equal(first_image, again_image)
        assert np.array_equal(first_image, reloaded_image)


def test_shard_size_and_order_do_not_change_an_image(backend_batch3, shard, tmp_path):
    whole = backend_batch3.generate(shard, tmp_path / "whole", NEGATIVE_PROMPT)
    expected = dict(zip(whole["image_id"], _pixels(whole["image_path"]), strict=True))
    for name, order in {"pair": [4, 2], "single": [3], "reversed": [4, 3, 2, 1, 0]}.items():
        part = backend_batch3.generate(shard.iloc[order], tmp_path / name, NEGATIVE_PROMPT)
        for image_id, pixels in zip(part["image_id"], _pixels(part["image_path"]), strict=True):
            assert np.array_equal(pixels, expected[image_id]), (name, image_id)


def test_batch_size_1_and_3_give_the_same_images(backend_batch3, tiny_sd, shard, tmp_path):
    batch3 = backend_batch3.generate(shard, tmp_path / "batch3", NEGATIVE_PROMPT)
    batch1 = generate_shard("controlnet", shard, tmp_path / "batch1", _settings(tiny_sd, batch_size=1), NEGATIVE_PROMPT)

    for one, three in zip(_pixels(batch1["image_path"]), _pixels(batch3["image_path"]), strict=True):
        difference = np.abs(one - three)
        # Same noise, same model: only the rounding of batched float32 matrix products differs.
        assert difference.max() <= 1
        assert (difference == 0).mean() > 0.99


def test_different_seeds_and_edge_maps_give_different_images(backend_batch3, shard, tmp_path):
    base = backend_batch3.generate(shard, tmp_path / "base", NEGATIVE_PROMPT)
    reseeded = backend_batch3.generate(
        shard.assign(generate_seed=shard["generate_seed"] + 1), tmp_path / "reseeded", NEGATIVE_PROMPT
    )
    edges_swapped = backend_batch3.generate(
        shard.assign(edge_path=shard["edge_path"].iloc[::-1].tolist()), tmp_path / "edges", NEGATIVE_PROMPT
    )

    base_pixels = _pixels(base["image_path"])
    # Measured: 43-47 grey levels for another seed, 4.5-5.0 for another edge map.
    for index, pixels in enumerate(_pixels(reseeded["image_path"])):
        assert np.abs(pixels - base_pixels[index]).mean() > 30.0
    for index, pixels in enumerate(_pixels(edges_swapped["image_path"])):
        if index != 2:  # the middle image keeps its own edge map
            assert np.abs(pixels - base_pixels[index]).mean() > 3.0
        else:
            assert np.array_equal(pixels, base_pixels[index])


@pytest.mark.parametrize(
    "change, least",
    [
        ({"prompt": "a blue bus"}, 0.1),  # measured 0.2-0.6 grey levels (a tiny text encoder)
        ({"negative_prompt": "a red car"}, 0.7),  # 1.4-1.7
        ({"guidance_scale": 3.0}, 0.6),  # 1.3-1.6
        ({"conditioning_scale": 0.2}, 8.0),  # 15-19
    ],
)
def test_prompt_negative_prompt_guidance_and_conditioning_change_the_image(tiny_sd, shard, tmp_path, change, least):
    """Each setting reaches the pipeline: the same seeds and edge maps give other pixels (the record echoing the
    setting is not enough)."""
    rows = shard.iloc[:2]
    settings = _settings(tiny_sd, batch_size=2)
    base = generate_shard("controlnet", rows, tmp_path / "base", settings, NEGATIVE_PROMPT)
    negative = change.get("negative_prompt", NEGATIVE_PROMPT)
    if "prompt" in change:
        rows = rows.assign(prompt=change["prompt"])
    settings.update({key: value for key, value in change.items() if key.endswith("_scale")})
    changed = generate_shard("controlnet", rows, tmp_path / "changed", settings, negative)
    for before, after in zip(_pixels(base["image_path"]), _pixels(changed["image_path"]), strict=True):
        assert np.abs(before - after).mean() > least


def test_paste_keeps_the_background_outside_the_mask(backend_batch3, tiny_sd, shard, tmp_path):
    generated = backend_batch3.generate(shard, tmp_path / "generated", NEGATIVE_PROMPT)
    pasted = generate_shard(
        "controlnet", shard, tmp_path / "pasted", _settings(tiny_sd, background="paste"), NEGATIVE_PROMPT
    )

    inside = np.asarray(Image.open(shard["mask_path"].iloc[0])) == 255
    assert pasted["background_mode"].unique().tolist() == ["paste"]
    for row, pasted_pixels, generated_pixels in zip(
        shard.itertuples(), _pixels(pasted["image_path"]), _pixels(generated["image_path"]), strict=True
    ):
        # The 64x32 photo already covers 32x32 at scale 1: the centred crop is columns 16..47.
        background = np.asarray(Image.open(row.background_path)).astype(np.int16)[:, 16:48]
        assert np.array_equal(pasted_pixels[~inside], background[~inside])
        assert np.array_equal(pasted_pixels[inside], generated_pixels[inside])


def test_scheduler_and_attention_are_selectable(backend_batch3, tiny_sd, shard, tmp_path):
    backend = ControlNetBackend("controlnet", _settings(tiny_sd, scheduler="unipc", steps=2, attention="eager"))
    result = backend.generate(shard.iloc[:2], tmp_path, NEGATIVE_PROMPT)

    assert type(backend.pipeline.scheduler).__name__ == "UniPCMultistepScheduler"
    assert {type(processor).__name__ for processor in backend.pipeline.unet.attn_processors.values()} == {
        "AttnProcessor"
    }
    assert type(backend_batch3.pipeline.scheduler).__name__ == "DDIMScheduler"
    assert {type(processor).__name__ for processor in backend_batch3.pipeline.unet.attn_processors.values()} == {
        "AttnProcessor2_0"
    }
    assert result["scheduler"].tolist() == ["unipc", "unipc"]
    assert result["eta"].isna().all()


def test_sdxl_backend_generates_with_a_separate_vae(tiny_sdxl, shard, tmp_path):
    import torch
    from diffusers import AutoencoderKL

    # A VAE that decodes differently from the base model's own: its decoder's output bias moved.
    perturbed = tmp_path / "perturbed-vae"
    vae = AutoencoderKL.from_pretrained(tiny_sdxl.vae_model)
    with torch.no_grad():
        vae.decoder.conv_out.bias += 0.4
    vae.save_pretrained(perturbed)
    settings = _settings(tiny_sdxl, vae_model=str(perturbed), batch_size=2, scheduler="euler")
    backend = ControlNetBackend("controlnet-sdxl", settings)
    assert Path(backend.pipeline.vae.config._name_or_path) == perturbed
    result = backend.generate(shard.iloc[:3], tmp_path / "perturbed", NEGATIVE_PROMPT)
    own = generate_shard(
        "controlnet-sdxl", shard.iloc[:3], tmp_path / "own", {**settings, "vae_model": None}, NEGATIVE_PROMPT
    )

    assert result["vae_model"].tolist() == [str(perturbed)] * 3
    assert result["vae_model_revision"].iloc[0] != own["base_model_revision"].iloc[0]
    for image_path in result["image_path"]:
        with Image.open(image_path) as image:
            assert image.size == (SIZE, SIZE)
    for with_vae, with_own in zip(_pixels(result["image_path"]), _pixels(own["image_path"]), strict=True):
        assert np.abs(with_vae - with_own).mean() > 5.0  # the bias shift brightens every pixel
    again = generate_shard("controlnet-sdxl", shard.iloc[[2]], tmp_path / "again", settings, NEGATIVE_PROMPT)
    assert np.array_equal(_pixels(again["image_path"])[0], _pixels(result["image_path"])[2])


def test_missing_model_path_stops_before_any_work(tiny_sd, shard, tmp_path):
    missing = tmp_path / "no-such-folder" / "sd15"
    with pytest.raises(ModelNotAvailableError) as raised:
        generate_shard(
            "controlnet", shard, tmp_path / "out", _settings(tiny_sd, base_model=str(missing)), NEGATIVE_PROMPT
        )
    message = str(raised.value)
    assert str(missing) in message
    assert "generate.controlnet.base_model" in message
    assert "hf download stable-diffusion-v1-5/stable-diffusion-v1-5" in message
    assert not (tmp_path / "out").exists()


def test_offline_hub_id_must_be_in_the_cache(tiny_sd, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    settings = _settings(tiny_sd, controlnet_model="dst3d-tests/no-such-controlnet", local_files_only=True)
    with pytest.raises(ModelNotAvailableError) as raised:
        check_models_available("controlnet", settings)
    message = str(raised.value)
    assert "generate.controlnet.controlnet_model = 'dst3d-tests/no-such-controlnet'" in message
    assert str(tmp_path / "hub") in message
    assert "HF_HUB_CACHE" in message and "hf download dst3d-tests/no-such-controlnet" in message
    # With downloads allowed, from_pretrained would fetch it: the check does not stand in the way.
    check_models_available("controlnet", {**settings, "local_files_only": False})


def test_offline_loading_uses_the_hugging_face_cache(tiny_sd, shard, tmp_path, monkeypatch):
    """A Hub id resolves offline to its snapshot in HF_HUB_CACHE, laid out as ``hf download`` leaves it."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    for repo, folder in (("tiny-sd", tiny_sd.base_model), ("tiny-controlnet", tiny_sd.controlnet_model)):
        repo_dir = cache / f"models--dst3d-tests--{repo}"
        shutil.copytree(folder, repo_dir / "snapshots" / ("0" * 40))
        (repo_dir / "refs").mkdir()
        (repo_dir / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    settings = _settings(
        tiny_sd,
        base_model="dst3d-tests/tiny-sd",
        controlnet_model="dst3d-tests/tiny-controlnet",
        local_files_only=True,
    )

    result = generate_shard("controlnet", shard.iloc[:1], tmp_path / "out", settings, NEGATIVE_PROMPT)
    assert result["base_model"].tolist() == ["dst3d-tests/tiny-sd"]
    assert Path(result["image_path"].iloc[0]).is_file()

    # A snapshot whose UNet weights never arrived is caught by the check, naming what is missing.
    next((cache / "models--dst3d-tests--tiny-sd").glob("snapshots/*/unet/*.safetensors")).unlink()
    with pytest.raises(ModelNotAvailableError, match=r"base_model = 'dst3d-tests/tiny-sd'.*unet/weights"):
        check_models_available("controlnet", settings)


def test_local_folder_that_is_not_a_pipeline_is_reported(tiny_sd, tmp_path):
    not_a_pipeline = tmp_path / "half-copied"
    shutil.copytree(tiny_sd.base_model, not_a_pipeline)
    index = json.loads((not_a_pipeline / "model_index.json").read_text())
    assert "unet" in index
    (not_a_pipeline / "model_index.json").unlink()
    with pytest.raises(ModelNotAvailableError, match=r"generate.controlnet.base_model.*lacks model_index.json"):
        check_models_available("controlnet", _settings(tiny_sd, base_model=str(not_a_pipeline)))


def test_records_are_checked_before_loading(shard, tmp_path):
    settings = {"base_model": str(tmp_path / "never-loaded"), "controlnet_model": str(tmp_path / "never-loaded")}
    with pytest.raises(ValueError, match=r"lack the columns \['prompt'\]"):
        generate_shard("controlnet", shard.drop(columns="prompt"), tmp_path, settings, NEGATIVE_PROMPT)
    with pytest.raises(ValueError, match=r"lack the columns \['mask_path'\]"):
        generate_shard(
            "controlnet",
            shard.drop(columns="mask_path"),
            tmp_path,
            {**settings, "background": "paste"},
            NEGATIVE_PROMPT,
        )
    with pytest.raises(ValueError, match="repeat the image ids"):
        generate_shard("controlnet", pd.concat([shard, shard.iloc[:1]]), tmp_path, settings, NEGATIVE_PROMPT)


@pytest.fixture(scope="module")
def depth_shard(shard, tmp_path_factory) -> pd.DataFrame:
    """The shard with rendered-style depth maps (uint16 PNG, depth / 0.001, 0 = no object): a tilted plane."""
    root = tmp_path_factory.mktemp("depth")
    paths = []
    for index in range(len(shard)):
        depth = np.zeros((SIZE, SIZE), np.uint16)
        depth[8:24, 10:26] = (1500 + 40 * np.arange(16)[:, None] + 100 * index).astype(np.uint16)
        Image.fromarray(depth).save(root / f"depth-{index}.png")
        paths.append(str(root / f"depth-{index}.png"))
    return shard.assign(depth_path=paths, depth_scale=0.001)


@pytest.fixture(scope="module")
def tiny_depth(tmp_path_factory):
    return build_tiny_controlnet(tmp_path_factory.mktemp("tiny-depth") / "controlnet", seed=5)


def test_depth_control_is_near_bright_and_background_black(tmp_path):
    depth = np.zeros((8, 8), np.uint16)
    depth[2:4, 2:4], depth[5:7, 5:7] = 1000, 2000  # 1.0 and 2.0 model units
    Image.fromarray(depth).save(tmp_path / "depth.png")
    control = np.asarray(load_depth_control(tmp_path / "depth.png", 0.001))
    assert control.shape == (8, 8, 3) and control[0, 0, 0] == 0
    assert control[2, 2, 0] == 255 and control[5, 5, 0] == DEPTH_CONTROL_RANGE[0]
    with pytest.raises(ValueError, match="render.depth: png16"):
        load_depth_control(tmp_path / "depth.exr", 0.001)


def test_depth_and_canny_plus_depth_conditioning_reach_the_pixels(tiny_sd, tiny_depth, depth_shard, tmp_path):
    rows = depth_shard.iloc[:3]
    canny = generate_shard("controlnet", rows, tmp_path / "canny", _settings(tiny_sd), NEGATIVE_PROMPT)
    depth_settings = _settings(tiny_sd, conditioning="depth", depth_controlnet_model=str(tiny_depth))
    depth = generate_shard("controlnet", rows, tmp_path / "depth", depth_settings, NEGATIVE_PROMPT)
    both_settings = {**depth_settings, "conditioning": "canny+depth"}
    both = generate_shard("controlnet", rows, tmp_path / "both", both_settings, NEGATIVE_PROMPT)
    muted = generate_shard(
        "controlnet", rows, tmp_path / "muted", {**both_settings, "depth_conditioning_scale": 0.0}, NEGATIVE_PROMPT
    )

    def difference(first, second):
        return max(
            float(np.abs(a - b).mean())
            for a, b in zip(_pixels(first["image_path"]), _pixels(second["image_path"]), strict=True)
        )

    assert difference(canny, depth) > 2.0 and difference(canny, both) > 2.0
    # A multi-ControlNet whose depth scale is 0 adds nothing: the canny image up to float rounding.
    assert difference(canny, muted) < 0.5
    record = depth.iloc[0]
    assert record["conditioning"] == "depth" and record["controlnet_model"] is None
    assert record["depth_controlnet_model"] == str(tiny_depth) and record["depth_controlnet_model_revision"].startswith(
        "sha256:"
    )
    assert both.iloc[0]["conditioning_scale"] == 1.0 and both.iloc[0]["depth_conditioning_scale"] == 1.0
    with pytest.raises(ValueError, match="has no depth map"):
        generate_shard("controlnet", rows.assign(depth_path=None), tmp_path / "none", depth_settings, NEGATIVE_PROMPT)


def test_depth_conditioning_needs_depth_renders_before_any_job():
    from dst3d.generate import check_depth_conditioning

    config = {"render": {"depth": "none"}, "generate": {"controlnet": {"conditioning": "canny+depth"}}}
    with pytest.raises(ValueError, match="generate.controlnet.conditioning is 'canny\\+depth'.*render.depth: png16"):
        check_depth_conditioning(config, ["controlnet"])
    check_depth_conditioning({**config, "render": {"depth": "png16"}}, ["controlnet"])
    check_depth_conditioning(config, ["composite", "controlnet-sdxl"])


def test_sdxl_takes_canny_plus_depth_for_a_whole_batch(tiny_sdxl, depth_shard, tmp_path):
    depth = build_tiny_controlnet(tmp_path / "sdxl-depth", sdxl=True, seed=4)
    settings = _settings(
        tiny_sdxl, scheduler="euler", conditioning="canny+depth", depth_controlnet_model=str(depth), batch_size=2
    )
    table = generate_shard("controlnet-sdxl", depth_shard.iloc[:3], tmp_path / "out", settings, NEGATIVE_PROMPT)
    assert set(table["conditioning"]) == {"canny+depth"} and len(table) == 3
