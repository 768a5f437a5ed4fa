"""Shared fixtures: a small embedded asset set and render settings, built once per test session."""

from pathlib import Path

import pytest

from dst3d import assets

REPO = Path(__file__).resolve().parent.parent

EMBEDDED = {
    "categories": ["car", "chair", "airplane", "boat"], "models_per_category": 2, "distance": 2.0,
    "sampling_mode": "3", "textures_per_class": 3, "texture_test_fraction": 0.34, "texture_size": 64,
    "backgrounds_train": 4, "backgrounds_test": 2, "background_size": 96,
}

RENDER = {
    "width": 96, "height": 96, "samples": 4, "denoise": False, "device": "cpu", "threads": 2,
    "lens_mm": 35, "sensor_width_mm": 32, "diffuse_bounces": 1, "glossy_bounces": 1, "texture_scale": 2.0,
    "obj_axes": {"forward": "Y", "up": "Z"},
    "light": {"energy_w": 300, "size": 3.0, "jitter_deg": 20, "energy_jitter": 0.3, "ambient": 0.3, "distance_factor": 1.5},
    "viewpoint": {"mode": None, "theta_sd_deg": 10.0,
                  "distance": {"mode": "truncnorm", "sd": 0.3, "low": -0.3, "high": 0.6},
                  "p3d": {"mean": 5, "sd": 8, "low": -15, "high": 50}},
}


@pytest.fixture(scope="session")
def embedded_assets(tmp_path_factory) -> dict:
    """Embedded assets on disk with their three index tables."""
    root = tmp_path_factory.mktemp("embedded")
    assets.build_embedded_assets(root, EMBEDDED, global_seed=0)
    return {
        "root": root,
        "models": assets.read_model_table(root / "models.csv"),
        "textures": assets.index_textures(root / "textures", 0.3),
        "backgrounds": assets.index_backgrounds(root / "backgrounds", 0.3),
    }


@pytest.fixture
def render_settings() -> dict:
    return {key: (dict(value) if isinstance(value, dict) else value) for key, value in RENDER.items()}
