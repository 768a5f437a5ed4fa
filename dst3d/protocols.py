"""The papers' real-data protocols as tables: which training variants a run needs for them, and the tables
themselves, built from the per-variant metrics files (``tables.pose_protocol``, ``tables.few_shot``).

* ``pose_protocol`` (3D-DST Table 4): one row per training variant, columns Acc@pi/6 and Acc@pi/18 on each
  in-distribution set, then on each out-of-distribution set.
* ``few_shot`` (P3D-Diffusion Table 1, the NVSM protocol): one row per kind of training data, ``real`` (the
  N-shot real subset alone), ``finetune`` (the synthetic variant fine-tuned on it) and ``mixed`` (both sets
  together), columns N shots and their mean x Acc@pi/6, Acc@pi/18 and median error.

Every cell is the evaluation set's ``mean (per-category)`` row (the unweighted mean over categories, as the papers
report); the sidecar ``<table>.provenance.csv`` gives, per cell, the checkpoint's file hash, its data manifest hash
and the metrics file it was read from.

With NeMo models configured (``nemo.variants``, dst3d.nemo_workflow) both tables get an ``estimator`` column first
(``resnet`` for the rows above) and NeMo rows after the ResNet's: in ``pose_protocol`` one per NeMo model (CC3D's
``<variant>+cc3d`` included), in ``few_shot`` one per row kind that has a NeMo model among its shot variants and
one more per row kind with a CC3D-adapted one; a shot without such a model is an empty cell, and so is the row's
mean then. Without NeMo the tables are as above.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from dst3d import nemo_workflow
from dst3d.evaluate import PER_CATEGORY, SYNTHETIC_TEST
from dst3d.tables import RESNET
from dst3d.training.variants import SOURCE_NAME, parse_variant, real_variant

ROW_LABELS = {
    "real": "real only",
    "finetune": "synthetic, then fine-tuned on real",
    "mixed": "synthetic + real",
}
#: What a few-shot row of CC3D-adapted NeMo models adds to its row kind's label.
CC3D_LABEL = ", then CC3D on unlabelled real"
#: The pose metrics of a few-shot cell, in column order.
POSE_METRICS = ("acc_pi_6", "acc_pi_18", "median_error_deg")

TABLES = ("pose_protocol", "few_shot")
#: The defaults of a configured table's keys (the schema cannot hold them: a table is null when not configured).
TABLE_DEFAULTS = {
    "pose_protocol": {"out_of_distribution": []},
    "few_shot": {"shots": [7, 20, 50], "synthetic": "composite-kcf", "rows": ["real", "finetune", "mixed"]},
}


def table_settings(config: Mapping[str, Any], name: str) -> dict | None:
    """``tables.<name>`` with its defaults filled in, or None when the table is not configured."""
    table = config["tables"][name]
    return None if table is None else {**TABLE_DEFAULTS[name], **table}


def few_shot_variants(table: Mapping[str, Any]) -> dict[tuple[str, int], str]:
    """(row kind, shots) -> the variant name a ``tables.few_shot`` cell is read from."""
    names = {}
    for shots in table["shots"]:
        real = real_variant(table["source"], shots)
        for row in table["rows"]:
            names[(row, shots)] = {
                "real": real,
                "finetune": f"{table['synthetic']}_then_{real}",
                "mixed": f"{table['synthetic']}_plus_{real}",
            }[row]
    return names


def table_variants(config: Mapping[str, Any], name: str) -> list[str]:
    """The variants a configured table reads (empty when the table is not configured)."""
    table = table_settings(config, name)
    if table is None:
        return []
    if name == "pose_protocol":
        return list(table["variants"])
    return list(dict.fromkeys(few_shot_variants(table).values()))


def table_nemo_models(config: Mapping[str, Any], name: str) -> list[str]:
    """The NeMo models a configured table has rows of (see the module docstring; empty without NeMo)."""
    table = table_settings(config, name)
    if table is None:
        return []
    if name == "pose_protocol":
        return nemo_workflow.models(config)
    variants = set(few_shot_variants(table).values())
    return [model for model in nemo_workflow.models(config) if nemo_workflow.model_variant(model) in variants]


def table_eval_sets(config: Mapping[str, Any], name: str) -> list[str]:
    table = table_settings(config, name)
    if table is None:
        return []
    if name == "pose_protocol":
        return [*table["in_distribution"], *table["out_of_distribution"]]
    return [table["eval_set"]]


def training_variants(config: Mapping[str, Any]) -> list[str]:
    """Every variant the run trains: ``train.variants``, then those the configured tables (and task tables) add,
    in order."""
    from dst3d.imagenet3d import task_variants

    names = list(config["train"]["variants"])
    for name in TABLES:
        names += table_variants(config, name)
    return list(dict.fromkeys(names + task_variants(config)))


def check_protocols(config: Mapping[str, Any]) -> None:
    """The checks of ``train.real``, the variant names and ``tables`` that the schema cannot express; each
    ValueError names the key and how to fix it."""
    sources = [entry["name"] for entry in config["train"]["real"]]
    for name in sources:
        if not SOURCE_NAME.match(name) or parse_variant(f"real-{name}", [name]).shots is not None:
            raise ValueError(
                f"config: train.real name {name!r}: use letters, digits, '.' and '-' only, not ending in "
                "-<N>shot (the name is part of variant names such as real-<name>-7shot)"
            )
    if len(set(sources)) != len(sources):
        raise ValueError(f"config: train.real has entries with the same name ({sources}); names must be unique")
    for variant in config["train"]["variants"]:
        try:
            parse_variant(variant, sources)
        except ValueError as error:
            raise ValueError(f"config: train.variants: {error}") from None
    eval_sets = [SYNTHETIC_TEST, *(entry["name"] for entry in config["evaluate"]["real_sets"])]
    for name in TABLES:
        table = table_settings(config, name)
        if table is None:
            continue
        if name == "few_shot":
            if table["source"] not in sources:
                raise ValueError(
                    f"config: tables.few_shot.source {table['source']!r} is not a train.real entry "
                    f"(train.real names: {sources or 'none'})"
                )
            variant = parse_variant(table["synthetic"], sources)
            if variant.kind != "synthetic":
                raise ValueError(
                    f"config: tables.few_shot.synthetic {table['synthetic']!r} must be a synthetic variant "
                    "(<backend>-<all|kcf>)"
                )
        for variant in table_variants(config, name):
            try:
                parse_variant(variant, sources)
            except ValueError as error:
                raise ValueError(f"config: tables.{name}: {error}") from None
        for eval_set in table_eval_sets(config, name):
            if eval_set not in eval_sets:
                raise ValueError(
                    f"config: tables.{name} reads the evaluation set {eval_set!r}, which is none of {eval_sets} "
                    f"({SYNTHETIC_TEST!r} or an evaluate.real_sets name)"
                )


def _cell(metrics: pd.DataFrame, variant: str, eval_set: str, estimator: str = RESNET) -> pd.Series:
    rows = metrics[(metrics["variant"] == variant) & (metrics["eval_set"] == eval_set)]
    if "estimator" in rows:
        rows = rows[rows["estimator"].fillna(RESNET) == estimator]
    rows = rows[rows["category"] == PER_CATEGORY]
    if len(rows) != 1:
        model = variant if estimator == RESNET else f"{variant} ({estimator})"
        raise ValueError(f"the metrics hold {len(rows)} {PER_CATEGORY!r} rows of {model} on {eval_set}, not one")
    return rows.iloc[0]


def _provenance(cell: pd.Series, estimator: str | None = None, **where: str) -> dict:
    """Where a table cell comes from: ``where`` (its row and column) and the metrics row's provenance; with
    ``estimator`` (tables with NeMo rows) that first."""
    return {
        **({"estimator": estimator} if estimator else {}),
        **where,
        "variant": cell["variant"],
        "eval_set": cell["eval_set"],
        "images": int(cell["images"]),
        "checkpoint_sha256": cell["checkpoint_sha256"],
        "manifest_hash": cell["manifest_hash"],
        "metrics_file": cell["metrics_file"],
    }


def pose_protocol_table(
    metrics: pd.DataFrame, table: Mapping[str, Any], nemo_models: list[str] | tuple[str, ...] = ()
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The 3D-DST pose table and its provenance from the concatenated metrics files (with ``metrics_file``), with
    rows of ``nemo_models`` after the ResNet's (:func:`table_nemo_models`)."""
    rows, provenance = [], []
    sets = [*table["in_distribution"], *table["out_of_distribution"]]
    tagged = bool(nemo_models)
    entries = [(RESNET, variant) for variant in table["variants"]]
    entries += [(nemo_workflow.ESTIMATOR, model) for model in nemo_models]
    for estimator, variant in entries:
        row = {"estimator": estimator} if tagged else {}
        row["variant"] = variant
        for eval_set in sets:
            cell = _cell(metrics, variant, eval_set, estimator)
            for key in ("acc_pi_6", "acc_pi_18"):
                row[f"{eval_set}/{key}"] = float(cell[key])
            provenance.append(_provenance(cell, estimator if tagged else None, table_row=variant))
        rows.append(row)
    return pd.DataFrame(rows), pd.DataFrame(provenance)


def few_shot_table(
    metrics: pd.DataFrame, table: Mapping[str, Any], nemo_models: list[str] | tuple[str, ...] = ()
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The P3D-Diffusion few-shot table and its provenance; ``mean`` averages the shot columns. With
    ``nemo_models`` (:func:`table_nemo_models`), their rows follow the ResNet's (module docstring)."""
    names = few_shot_variants(table)
    tagged, available = bool(nemo_models), set(nemo_models)
    # (estimator, label, {shots: the model of the cell}), the ResNet's rows first.
    entries = [(RESNET, ROW_LABELS[kind], {n: names[(kind, n)] for n in table["shots"]}) for kind in table["rows"]]
    for suffix, label in (("", ""), (nemo_workflow.CC3D_SUFFIX, CC3D_LABEL)):
        for kind in table["rows"]:
            cells = {n: names[(kind, n)] + suffix for n in table["shots"] if names[(kind, n)] + suffix in available}
            if cells:
                entries.append((nemo_workflow.ESTIMATOR, ROW_LABELS[kind] + label, cells))
    rows, provenance = [], []
    for estimator, label, cells in entries:
        row = {"estimator": estimator} if tagged else {}
        row["training_data"] = label
        for key in POSE_METRICS:
            values = []
            for shots in table["shots"]:
                if shots not in cells:
                    row[f"{shots}shot/{key}"] = float("nan")
                    continue
                cell = _cell(metrics, cells[shots], table["eval_set"], estimator)
                row[f"{shots}shot/{key}"] = float(cell[key])
                values.append(float(cell[key]))
                if key == "acc_pi_6":
                    provenance.append(
                        _provenance(cell, estimator if tagged else None, table_row=label, shots=str(shots))
                    )
            row[f"mean/{key}"] = sum(values) / len(values) if len(values) == len(table["shots"]) else float("nan")
        ordered = (["estimator"] if tagged else []) + ["training_data"]
        ordered += [
            f"{column}/{key}" for column in [*(f"{n}shot" for n in table["shots"]), "mean"] for key in POSE_METRICS
        ]
        rows.append({column: row[column] for column in ordered})
    return pd.DataFrame(rows), pd.DataFrame(provenance)


CAPTIONS = {
    "pose_protocol": "Pose estimation (3D-DST Table 4 layout): Acc@pi/6 and Acc@pi/18 (%) per evaluation set, "
    "mean over categories.",
    "few_shot": "Few-shot pose estimation (P3D-Diffusion Table 1 layout): N annotated real objects per category; "
    "Acc@pi/6, Acc@pi/18 (%) and median error (degrees), mean over categories.",
}
