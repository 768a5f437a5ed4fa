"""NeMo's side of the workflow in the main environment (rules/nemo.smk): which NeMo models a config makes, the
checks of the ``nemo`` block that the schema cannot express, and each category's neural mesh file (rule
``nemo_mesh``). The models themselves are trained and run by ``dst3d.nemo.cli`` in the NeMo interpreter
(torch 2.2.2 and PyTorch3D); this module imports neither.

Model names: a NeMo model trained on a training variant is named by the variant (``composite-kcf``); its CC3D
adaptation to a real source's unlabelled images is ``<variant>+cc3d``. In the metrics tables their rows carry
``estimator`` :data:`ESTIMATOR`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dst3d.training.variants import parse_variant

#: The ``estimator`` column's value of NeMo's metrics rows (the ResNet's are ``resnet``).
ESTIMATOR = "nemo"
#: The suffix of a CC3D-adapted model's name.
CC3D_SUFFIX = "+cc3d"


def _sources(config: Mapping[str, Any]) -> list[str]:
    return [entry["name"] for entry in config["train"]["real"]]


def trained_variants(config: Mapping[str, Any]) -> list[str]:
    """The variants a NeMo model is trained on: ``nemo.variants``, then the synthetic part of each
    ``<synthetic>_then_<real>`` one (its fine-tuning starts from that NeMo model), in order."""
    names = list(config["nemo"]["variants"])
    for name in config["nemo"]["variants"]:
        variant = parse_variant(name, _sources(config))
        if variant.kind == "finetune":
            names.append(variant.synthetic)
    return list(dict.fromkeys(names))


def cc3d_models(config: Mapping[str, Any]) -> list[str]:
    """The CC3D-adapted models, ``<variant>+cc3d`` for each of ``nemo.cc3d.variants``."""
    return [f"{name}{CC3D_SUFFIX}" for name in config["nemo"]["cc3d"]["variants"]]


def models(config: Mapping[str, Any]) -> list[str]:
    """Every NeMo model the run trains and evaluates (none when NeMo is off)."""
    return trained_variants(config) + cc3d_models(config)


def model_variant(model: str) -> str:
    """The training variant of a NeMo model name (``composite-kcf+cc3d`` -> ``composite-kcf``)."""
    return model.removesuffix(CC3D_SUFFIX)


def check(config: Mapping[str, Any]) -> None:
    """The checks of the ``nemo`` block that the schema cannot express; each ValueError names the key."""
    nemo, sources = config["nemo"], _sources(config)
    for name in nemo["variants"]:
        try:
            parse_variant(name, sources)
        except ValueError as error:
            raise ValueError(f"config: nemo.variants: {error}") from None
    cc3d = nemo["cc3d"]
    for name in cc3d["variants"]:
        if name not in nemo["variants"]:
            raise ValueError(
                f"config: nemo.cc3d.variants: {name!r} is not one of nemo.variants ({nemo['variants'] or 'none'}); "
                "CC3D adapts a NeMo model, so add the variant to nemo.variants too"
            )
    if cc3d["variants"] and cc3d["source"] is None:
        raise ValueError(
            "config: nemo.cc3d.variants is set but nemo.cc3d.source is not: name the train.real entry whose "
            f"training split is CC3D's unlabelled real data (train.real names: {sources or 'none'})"
        )
    if cc3d["source"] is not None and cc3d["source"] not in sources:
        raise ValueError(
            f"config: nemo.cc3d.source {cc3d['source']!r} is not a train.real entry "
            f"(train.real names: {sources or 'none'})"
        )
    folders = config["assets"]["folders"]
    if (
        nemo["variants"]
        and config["assets"]["source"] == "folders"
        and folders["models_format"] == "3d-dst"
        and folders["objaverse_dir"]
    ):
        raise ValueError(
            "config: nemo.variants is set, and NeMo's mesh rule reads OBJ and OFF models, but "
            "assets.folders.objaverse_dir gives Objaverse .glb models: leave nemo.variants empty for this asset set"
        )


def category_extent(
    models: pd.DataFrame, category: str, axes: dict, stretch: float = 0.0, coverage: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """The cuboid covering a category's models as the renders show them: each model file read as the renders
    place it (:func:`dst3d.inputs.meshes.canonical_mesh`: its axes, normalised), its box grown by ``1 + stretch``
    per axis (``render.stretch`` scales each axis by up to that factor, about the box's centre, the origin), then
    :func:`dst3d.nemo.mesh.category_extent` with ``coverage``. OBJ and OFF files only (ValueError naming the
    model otherwise)."""
    from dst3d.inputs import meshes
    from dst3d.nemo.mesh import category_extent as extent

    rows = models[models["category"] == category]
    if rows.empty:
        raise ValueError(f"NeMo's mesh of {category!r}: the model table has no model of this category")
    low, high = [], []
    for model in rows.to_dict("records"):
        if model["format"] not in meshes.READERS:
            raise ValueError(
                f"NeMo's mesh rule reads OBJ and OFF models; model {model['model_id']} of {category!r} "
                f"({model['path']}) is {model['format']!r}: convert it, or leave nemo.variants empty"
            )
        vertices, _ = meshes.canonical_mesh(model, axes)
        low.append(vertices.min(axis=0) * (1 + stretch))
        high.append(vertices.max(axis=0) * (1 + stretch))
    return extent(np.array(low), np.array(high), coverage)


def write_category_mesh(
    path: str | Path, models: pd.DataFrame, category: str, axes: dict, settings: Mapping[str, Any]
) -> dict[str, np.ndarray]:
    """Write a category's neural mesh as ``.npz``: ``vertices`` (V x 3 float32), ``faces`` (F x 3 int64), ``low``
    and ``high`` (the cuboid's corners, 3 floats each). ``settings``: ``vertices``, ``coverage`` (the nemo block)
    and ``stretch`` (render.stretch). Returns the arrays."""
    from dst3d.io import atomic_write
    from dst3d.nemo.mesh import cuboid_mesh

    low, high = category_extent(models, category, axes, settings["stretch"], settings["coverage"])
    neural = cuboid_mesh(low, high, settings["vertices"])
    arrays = {
        "vertices": neural.vertices.astype(np.float32),
        "faces": neural.faces.astype(np.int64),
        "low": np.asarray(low, float),
        "high": np.asarray(high, float),
    }
    with atomic_write(path) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, **arrays)
    return arrays
