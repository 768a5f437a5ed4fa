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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from dst3d.evaluate import PER_CATEGORY, SYNTHETIC_TEST
from dst3d.training.variants import SOURCE_NAME, parse_variant, real_variant

ROW_LABELS = {
    "real": "real only",
    "finetune": "synthetic, then fine-tuned on real",
    "mixed": "synthetic + real",
}
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


def _cell(metrics: pd.DataFrame, variant: str, eval_set: str) -> pd.Series:
    rows = metrics[(metrics["variant"] == variant) & (metrics["eval_set"] == eval_set)]
    rows = rows[rows["category"] == PER_CATEGORY]
    if len(rows) != 1:
        raise ValueError(f"the metrics hold {len(rows)} {PER_CATEGORY!r} rows of {variant} on {eval_set}, not one")
    return rows.iloc[0]


def _provenance(cell: pd.Series, **where: str) -> dict:
    """Where a table cell comes from: ``where`` (its row and column) and the metrics row's provenance."""
    return {
        **where,
        "variant": cell["variant"],
        "eval_set": cell["eval_set"],
        "images": int(cell["images"]),
        "checkpoint_sha256": cell["checkpoint_sha256"],
        "manifest_hash": cell["manifest_hash"],
        "metrics_file": cell["metrics_file"],
    }


def pose_protocol_table(metrics: pd.DataFrame, table: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The 3D-DST pose table and its provenance from the concatenated metrics files (with ``metrics_file``)."""
    rows, provenance = [], []
    sets = [*table["in_distribution"], *table["out_of_distribution"]]
    for variant in table["variants"]:
        row = {"variant": variant}
        for eval_set in sets:
            cell = _cell(metrics, variant, eval_set)
            for key in ("acc_pi_6", "acc_pi_18"):
                row[f"{eval_set}/{key}"] = float(cell[key])
            provenance.append(_provenance(cell, table_row=variant))
        rows.append(row)
    return pd.DataFrame(rows), pd.DataFrame(provenance)


def few_shot_table(metrics: pd.DataFrame, table: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The P3D-Diffusion few-shot table and its provenance; ``mean`` averages the shot columns."""
    names = few_shot_variants(table)
    rows, provenance = [], []
    for kind in table["rows"]:
        row = {"training_data": ROW_LABELS[kind]}
        for key in POSE_METRICS:
            values = []
            for shots in table["shots"]:
                cell = _cell(metrics, names[(kind, shots)], table["eval_set"])
                row[f"{shots}shot/{key}"] = float(cell[key])
                values.append(float(cell[key]))
                if key == "acc_pi_6":
                    provenance.append(_provenance(cell, table_row=ROW_LABELS[kind], shots=str(shots)))
            row[f"mean/{key}"] = sum(values) / len(values)
        ordered = ["training_data"] + [
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
