"""Classification pre-training (3D-DST Table 1) as a configured table, ``tables.classification``: a classifier per
backbone trained on a real ImageFolder set, either from scratch (row ``none``: real data only) or pre-trained on
the generated images of a synthetic variant and then fine-tuned on the real set; top-1 accuracy on the
in-distribution validation set and on each out-of-distribution set (``results/tables/classification.csv``: rows =
pre-training data, columns = backbone x evaluation set).

The real label space is the training ImageFolder's class folders (:mod:`dst3d.inputs.imagefolder`); classes with
no generated data are trained on too (the generated images are pre-training, not the label space). When
fine-tuning, the head rows of classes that the class list maps to a workflow category start from the pre-trained
classifier's row for that category; the other rows start from a fresh initialisation. An out-of-distribution set
may hold a subset of the classes; its predictions are the arg-max over the classes it holds (the usual ImageNet-R
protocol for a model with more classes than the set).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

#: The defaults of ``tables.classification``'s keys (a null table has none).
DEFAULTS = {
    "ood": {},
    "classes": None,
    "backbones": None,  # None: [train.backbone]
    "pretraining": ["none"],
    "pretrain": {},
    "finetune": {"context": 1.0},
}
#: The row of classifiers trained on the real set alone.
NO_PRETRAINING = "none"
#: The name of the in-distribution validation set in the metrics and the table.
ID_SET = "val"
ROW_LABELS = {NO_PRETRAINING: "none (real only)"}


def settings(config: Mapping[str, Any]) -> dict | None:
    """``tables.classification`` with its defaults, or None when not configured."""
    table = config["tables"].get("classification")
    if table is None:
        return None
    filled = {**DEFAULTS, **table}
    filled["finetune"] = {**DEFAULTS["finetune"], **table.get("finetune", {})}
    filled["backbones"] = filled["backbones"] or [config["train"]["backbone"]]
    return filled


def eval_sets(table: Mapping[str, Any]) -> dict[str, str]:
    """Evaluation set name -> ImageFolder root: ``val`` first, then the out-of-distribution sets."""
    return {ID_SET: table["val"], **table["ood"]}


def check(config: Mapping[str, Any], variants: Mapping[str, Any]) -> None:
    """What the schema cannot say: pre-training rows are ``none`` or synthetic variants; OOD names are not ``val``."""
    table = settings(config)
    if table is None:
        return
    from dst3d.training.variants import parse_variant

    for name in table["pretraining"]:
        if name == NO_PRETRAINING:
            continue
        try:
            variant = variants.get(name) or parse_variant(name, [])
        except ValueError:
            variant = None
        if variant is None or variant.kind != "synthetic":
            raise ValueError(
                f"config: tables.classification.pretraining {name!r}: use 'none' (real data only) or a synthetic "
                "variant <backend>-<all|kcf> (its generated images pre-train the classifier)"
            )
    if ID_SET in table["ood"]:
        raise ValueError(f"config: tables.classification.ood: {ID_SET!r} is the in-distribution set's name; rename it")


def initial_head(
    pretrained_weight, pretrained_bias, pretrained_categories: list[str], mapping: Mapping[str, str | None], fresh
):
    """The fine-tuning head's weight and bias: row k (class folder k of ``mapping``, in order) is the pre-trained
    row of the category it maps to, else the row of the freshly initialised ``fresh`` linear layer."""
    weight, bias = fresh.weight.detach().clone(), fresh.bias.detach().clone()
    for row, category in enumerate(mapping.values()):
        if category is not None and category in pretrained_categories:
            source = pretrained_categories.index(category)
            weight[row] = pretrained_weight[source]
            bias[row] = pretrained_bias[source]
    return weight, bias


def table(metrics: pd.DataFrame, pretraining: list[str], backbones: list[str], sets: list[str]) -> pd.DataFrame:
    """3D-DST Table 1's layout from the per-model metrics (columns pretraining, backbone, eval_set, category,
    accuracy): one row per pre-training, one column ``<backbone>/<eval set>`` of pooled top-1 accuracy each."""
    pooled = metrics[metrics["category"] == "mean (pooled)"]
    cells = pooled.set_index(["pretraining", "backbone", "eval_set"])["accuracy"]
    rows = []
    for name in pretraining:
        row = {"pretraining": ROW_LABELS.get(name, name)}
        for backbone in backbones:
            for eval_set in sets:
                row[f"{backbone}/{eval_set}/accuracy"] = float(cells.loc[(name, backbone, eval_set)])
        rows.append(row)
    return pd.DataFrame(rows)
