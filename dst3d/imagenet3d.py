"""ImageNet3D's tasks beyond plain pose estimation, as configured tables (``tables.probing``,
``tables.open_vocabulary``; the third, joint classification and pose, is the ``joint`` network of ``train.tasks``):

* ``probing`` (ImageNet3D Sec. 4.1): linear probes of frozen features (:mod:`dst3d.training.probing`), one row
  per feature source and category, Acc@pi/6 and median error of the probed pose; ``results/tables/probing.csv``.
* ``open_vocabulary`` (ImageNet3D Table 2): per training variant, a pose estimator trained on the ``seen``
  categories only, evaluated on the ``novel`` ones, beside the oracle (the variant's own estimator, trained on all
  categories) on the same objects; ``results/tables/open_vocabulary.csv``. This is meaningful only where the
  categories share one canonical frame: the embedded categories do by construction; for real data use
  ImageNet3D's cross-category aligned annotations.

The config side (defaults, checks, the variants they need) and the tables are here; the rules are in
rules/imagenet3d.smk.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dst3d.classification import settings as settings_of_classification
from dst3d.config_schema import schema_enum
from dst3d.evaluate import PER_CATEGORY, POOLED, SYNTHETIC_TEST, metrics_table

TASK_TABLES = ("probing", "open_vocabulary")
#: The backbones a feature source may name (those of train.backbone).
BACKBONES = tuple(schema_enum("train", "backbone"))
#: The defaults of a configured task table's keys (a null table has none).
TASK_DEFAULTS = {
    "probing": {
        "train_set": "synthetic",
        "eval_set": SYNTHETIC_TEST,
        "backend": None,
        "epochs": 300,
        "lr": 0.05,
        "weight_decay": 0.0001,
    },
    "open_vocabulary": {"eval_sets": [SYNTHETIC_TEST]},
}
#: The name of the generated training split as a probing train_set.
SYNTHETIC_TRAIN = "synthetic"


KINDS = ("random", "imagenet")


@dataclass(frozen=True)
class FeatureSource:
    """``kind`` is random, imagenet or variant; ``backbone`` for the first two, ``variant`` for the last."""

    name: str
    kind: str
    backbone: str | None = None
    variant: str | None = None


def parse_source(name: str, variants: list[str]) -> FeatureSource:
    """The feature source ``name`` names; ``variants`` are the run's training variants. A ValueError names the key."""
    for kind in KINDS:
        prefix = f"{kind}-"
        if name.startswith(prefix):
            backbone = name[len(prefix) :]
            if backbone not in BACKBONES:
                raise ValueError(
                    f"config: tables.probing.sources: {name!r} names the backbone {backbone!r}; use one of "
                    f"{list(BACKBONES)}"
                )
            return FeatureSource(name, kind, backbone=backbone)
    if name in variants:
        return FeatureSource(name, "variant", variant=name)
    raise ValueError(
        f"config: tables.probing.sources: {name!r} is none of random-<backbone>, imagenet-<backbone> or a "
        f"training variant (train.variants: {variants})"
    )


def task_settings(config: Mapping[str, Any], name: str) -> dict | None:
    """``tables.<name>`` with its defaults filled in, or None when not configured."""
    table = config["tables"][name]
    return None if table is None else {**TASK_DEFAULTS[name], **table}


def task_variants(config: Mapping[str, Any]) -> list[str]:
    """The training variants the configured task tables need trained: the open-vocabulary oracles, the
    variants whose backbones are probed and those whose generated images pre-train the classifiers."""
    names = []
    open_vocabulary = task_settings(config, "open_vocabulary")
    if open_vocabulary is not None:
        names += open_vocabulary["variants"]
    probing = task_settings(config, "probing")
    if probing is not None:
        names += [name for name in probing["sources"] if not name.startswith(("random-", "imagenet-"))]
    classification = settings_of_classification(config)
    if classification is not None:
        names += [name for name in classification["pretraining"] if name != "none"]
    return list(dict.fromkeys(names))


def check_tasks(config: Mapping[str, Any], variants: list[str], backends: list[str]) -> None:
    """The checks of ``tables.probing`` and ``tables.open_vocabulary`` that the schema cannot express;
    ``variants`` are every training variant of the run, ``backends`` the generate backends."""
    real_sets = [entry["name"] for entry in config["evaluate"]["real_sets"]]
    real = [entry["name"] for entry in config["train"]["real"]]
    probing = task_settings(config, "probing")
    if probing is not None:
        for name in probing["sources"]:
            parse_source(name, variants)
        if probing["train_set"] not in (SYNTHETIC_TRAIN, *real):
            raise ValueError(
                f"config: tables.probing.train_set {probing['train_set']!r}: use 'synthetic' (the generated "
                f"training split) or a train.real name ({real or 'none'})"
            )
        if probing["eval_set"] not in (SYNTHETIC_TEST, *real_sets):
            raise ValueError(
                f"config: tables.probing.eval_set {probing['eval_set']!r}: use {SYNTHETIC_TEST!r} or an "
                f"evaluate.real_sets name ({real_sets or 'none'})"
            )
        if probing["backend"] is not None and probing["backend"] not in backends:
            raise ValueError(
                f"config: tables.probing.backend {probing['backend']!r} is not a generate backend ({backends})"
            )
    table = task_settings(config, "open_vocabulary")
    if table is not None:
        categories = config["categories"]
        for key in ("seen", "novel"):
            unknown = sorted(set(table[key]) - set(categories))
            if unknown:
                raise ValueError(
                    f"config: tables.open_vocabulary.{key} has {unknown}, which are not in categories {categories}"
                )
        both = sorted(set(table["seen"]) & set(table["novel"]))
        if both:
            raise ValueError(f"config: tables.open_vocabulary: {both} are both seen and novel; list each in one")
        for name in table["eval_sets"]:
            if name not in (SYNTHETIC_TEST, *real_sets):
                raise ValueError(
                    f"config: tables.open_vocabulary.eval_sets {name!r}: use {SYNTHETIC_TEST!r} or an "
                    f"evaluate.real_sets name ({real_sets or 'none'})"
                )


def open_vocabulary_table(novel_predictions: pd.DataFrame, oracle_predictions: pd.DataFrame) -> pd.DataFrame:
    """One evaluation set's rows: per novel category, then the pooled and per-category means, the seen-only
    estimator's and the oracle's Acc@pi/6, Acc@pi/18 and median error on the same objects. Both tables hold the
    per-object predictions (image_id, category, error) of the same evaluation set; only the novel categories of
    ``novel_predictions`` are scored."""
    oracle = oracle_predictions[oracle_predictions["image_id"].isin(novel_predictions["image_id"])]
    if len(oracle) != len(novel_predictions):
        raise ValueError(
            f"the oracle's predictions cover {len(oracle)} of the {len(novel_predictions)} novel objects: "
            "they were made on another evaluation set"
        )
    columns = ["images", "acc_pi_6", "acc_pi_18", "median_error_deg"]
    seen_only = metrics_table(novel_predictions).set_index("category")[columns]
    reference = metrics_table(oracle).set_index("category")[columns[1:]]
    seen_only = seen_only.rename(columns={name: f"seen_only_{name}" for name in columns[1:]})
    table = seen_only.join(reference.rename(columns=lambda name: f"oracle_{name}")).reset_index()
    order = [name for name in table["category"] if name not in (POOLED, PER_CATEGORY)] + [POOLED, PER_CATEGORY]
    return table.set_index("category").loc[order].reset_index()
