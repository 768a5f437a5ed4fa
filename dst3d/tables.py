"""Tables for reading: a DataFrame as GitHub Markdown, a LaTeX ``tabular`` (booktabs) or an HTML page, accuracies in percent
with one decimal, median errors in degrees, counts as they are, missing cells empty; and the workflow's dataset
statistics (:func:`dataset_statistics`). The CSV beside each keeps every digit.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

#: The metric columns and their printed names.
METRICS = {"acc_pi_6": "Acc@pi/6", "acc_pi_18": "Acc@pi/18", "median_error_deg": "MedErr", "accuracy": "Acc"}
#: Long columns (hashes, weight paths) of the CSVs left out of the Markdown and LaTeX versions (the CSV keeps them).
HASH_COLUMNS = ("manifest_hash", "checkpoint_sha256", "weights")
#: A column whose name ends so holds hex digests (``manifest_hash``, ``checkpoint_sha256``, ``settings_hash``, ...):
#: :func:`read_csv` reads it as text.
DIGEST_SUFFIXES = ("hash", "sha256", "digest")


def read_csv(path, **kwargs) -> pd.DataFrame:
    """A CSV, read so that no field can crash the interpreter: the one way this project reads CSVs (ruff's TID251
    bans a plain ``pandas.read_csv``; pyproject.toml).

    pandas 2.3.3's default float parser (``float_precision="high"``, also behind ``engine="python"``) indexes out of
    bounds on some fields that look like a number with a huge exponent, and the interpreter dies of SIGSEGV: a hex
    digest such as ``9e647828529417f9...`` does (its prefix is taken for 9e647828529417, whose exponent overflows the
    parser's table). Measured here, 3 of 2,042 SHA-256 digests crash it; a checkpoint's digest changes with the
    folder a run is in, so the crash comes and goes between machines (CI died of it once, in a test reading
    category_metrics.csv). Two guards: digest columns (by name, :data:`DIGEST_SUFFIXES`) are read as text, which also
    keeps a short all-digit digest's leading zeros; every other field is parsed with Python's own float parser
    (``float_precision="round_trip"``, exact to the last digit), which has no such bug.

    ``dtype`` entries given by the caller win over the digest columns'."""
    header = pd.read_csv(path, nrows=0, sep=kwargs.get("sep", ","))  # noqa: TID251 (no field is parsed)
    dtype: Any = {column: str for column in header.columns if str(column).endswith(DIGEST_SUFFIXES)}
    given = kwargs.pop("dtype", None)
    if isinstance(given, Mapping):
        dtype.update(given)
    elif given is not None:
        dtype = given
    kwargs.setdefault("float_precision", "round_trip")
    return pd.read_csv(path, dtype=dtype, **kwargs)  # noqa: TID251


def _cell(column: str, value) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if column.endswith("median_error_deg"):
            return f"{value:.1f}"
        if any(column.endswith(metric) for metric in ("acc_pi_6", "acc_pi_18", "accuracy")):
            return f"{100 * value:.1f}"
        return f"{value:g}"
    return str(value)


def _formatted(table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    table = table.drop(columns=[column for column in HASH_COLUMNS if column in table])
    header = list(table.columns)
    body = [
        [_cell(column, value) for column, value in zip(header, row, strict=True)]
        for row in table.itertuples(index=False)
    ]
    pretty = []
    for column in header:
        for key, name in METRICS.items():
            column = column.replace(key, name)
        pretty.append(column)
    return pretty, body


def markdown(table: pd.DataFrame, caption: str) -> str:
    """A GitHub-flavoured Markdown table under ``caption``."""
    header, body = _formatted(table)
    lines = [caption, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines) + "\n"


def html_page(table: pd.DataFrame, caption: str) -> str:
    """A self-contained HTML page of the same cells under ``caption`` (what the Snakemake report shows)."""
    header, body = _formatted(table)

    def cell(tag: str, text: str, numeric: bool) -> str:
        align = ' style="text-align:right"' if numeric else ""
        return f"<{tag}{align}>{html.escape(text)}</{tag}>"

    def is_number(text: str) -> bool:
        try:
            float(text)
        except ValueError:
            return False
        return True

    rows = ["<tr>" + "".join(cell("th", name, False) for name in header) + "</tr>"]
    rows += ["<tr>" + "".join(cell("td", text, is_number(text)) for text in cells) + "</tr>" for cells in body]
    style = (
        "body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
        "th,td{border-bottom:1px solid #ccc;padding:0.2em 0.6em}th{text-align:left;background:#f4f4f4}"
    )
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{html.escape(caption)}</title>'
        f"<style>{style}</style></head>\n<body><p>{html.escape(caption)}</p>\n<table>\n"
        + "\n".join(rows)
        + "\n</table></body></html>\n"
    )


def latex(table: pd.DataFrame, caption: str) -> str:
    """A booktabs ``tabular`` of the same cells, with the caption as a comment above it."""

    def escape(text: str) -> str:
        for character, replacement in (
            ("\\", r"\textbackslash{}"),
            ("_", r"\_"),
            ("%", r"\%"),
            ("&", r"\&"),
            ("#", r"\#"),
        ):
            text = text.replace(character, replacement)
        return text.replace("pi/", r"$\pi$/")

    header, body = _formatted(table)
    lines = [f"% {caption}", r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}", r"\toprule"]
    lines.append(" & ".join(map(escape, header)) + r" \\")
    lines.append(r"\midrule")
    lines += [" & ".join(map(escape, cells)) + r" \\" for cells in body]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def settings_hash(settings: Mapping[str, Any]) -> str:
    """The first 12 hex digits of the SHA-256 of ``settings`` as canonical JSON (what made a dataset)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]


def dataset_statistics(
    generated: Mapping[tuple[str, str], pd.DataFrame], kept: Mapping[str, pd.DataFrame], hashes: Mapping[str, str]
) -> pd.DataFrame:
    """One row per backend, split and category: images generated, images whose object left the frame (empty
    render mask: their pose label is not in the image), and for the training split of a backend KCF filters the
    images it kept and dropped; ``settings_hash`` names the render and generation settings (``hashes[backend]``).
    ``generated[(backend, split)]``: the generated-image records; ``kept[backend]``: KCF's kept list."""
    rows = []
    for (backend, split), records in generated.items():
        for category, group in records.groupby("category", sort=True):
            row = {
                "backend": backend,
                "split": split,
                "category": category,
                "generated": len(group),
                "empty_mask": int((group["bbox_x0"] < 0).sum()),
                "kcf_kept": float("nan"),
                "kcf_dropped": float("nan"),
            }
            if split == "train" and backend in kept:
                kept_here = int(group["image_id"].isin(kept[backend]["image_id"]).sum())
                row.update({"kcf_kept": kept_here, "kcf_dropped": len(group) - kept_here})
            rows.append({**row, "settings_hash": hashes[backend]})
    table = pd.DataFrame(rows)
    for column in ("kcf_kept", "kcf_dropped"):
        table[column] = table[column].astype("Int64")
    return table


#: The ``estimator`` of the ResNet pose classifier's metrics rows (NeMo's are ``nemo``, dst3d.nemo_workflow).
RESNET = "resnet"


def with_estimator(metrics: pd.DataFrame) -> pd.DataFrame:
    """A pose metrics table with the ``estimator`` column first: the ResNet's metrics files have none (their rows
    are :data:`RESNET`'s), NeMo's start with it."""
    metrics = metrics.copy()
    if "estimator" not in metrics:
        metrics.insert(0, "estimator", RESNET)
    metrics["estimator"] = metrics["estimator"].fillna(RESNET)
    return metrics[["estimator", *(column for column in metrics.columns if column != "estimator")]]
