"""Shared fixtures: a small embedded asset set and render settings, built once per test session."""

import copy
from pathlib import Path

import pytest

from dst3d.inputs import catalog, embedded

REPO = Path(__file__).resolve().parent.parent

EMBEDDED = {
    "categories": ["car", "chair", "airplane", "boat"],
    "models_per_category": 2,
    "distance": 2.0,
    "sampling_mode": "3",
    "textures_per_class": 3,
    "texture_test_fraction": 0.34,
    "texture_size": 64,
    "backgrounds_train": 4,
    "backgrounds_test": 2,
    "background_size": 96,
}


def schema_defaults(section: str, overrides: dict) -> dict:
    """A config section as the workflow sees it: ``overrides`` completed with config/schema.yaml's defaults."""
    from snakemake.utils import validate

    config = {"categories": ["car"], section: copy.deepcopy(overrides)}
    validate(config, str(REPO / "config" / "schema.yaml"), set_default=True)
    return config[section]


RENDER = schema_defaults(
    "render",
    {
        "width": 96,
        "height": 96,
        "samples": 4,
        "denoise": False,
        "threads": 2,
        "viewpoint": {"theta_sd_deg": 10.0, "distance": {"mode": "truncnorm", "sd": 0.3, "low": -0.3, "high": 0.6}},
    },
)


@pytest.fixture(scope="session")
def embedded_assets(tmp_path_factory) -> dict:
    """Embedded assets on disk with their three index tables."""
    root = tmp_path_factory.mktemp("embedded")
    embedded.build_embedded_assets(root, EMBEDDED, global_seed=0)
    return {
        "root": root,
        "models": catalog.read_model_table(root / "models.csv"),
        "textures": catalog.index_textures(root / "textures", 0.3),
        "backgrounds": catalog.index_backgrounds(root / "backgrounds", 0.3),
    }


@pytest.fixture
def render_settings() -> dict:
    return copy.deepcopy(RENDER)
