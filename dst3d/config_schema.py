"""``config/schema.yaml`` as the one source of the settings' defaults and bounds, for the package's entry points.

The workflow validates the whole config against the schema when it starts (rules/common.smk); an entry point
called directly (a test, a bench script, another program) gets the same check and the same defaults for its
block from :func:`block_settings`, so a default is never written twice.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "config" / "schema.yaml"


@cache
def _schema() -> dict:
    import yaml

    return yaml.safe_load(SCHEMA_PATH.read_text())


def _with_defaults(schema: Mapping, value: Any) -> Any:
    """``value`` with every missing property that has a schema default filled in, recursively."""
    if not isinstance(value, dict) or schema.get("type") != "object":
        return value
    filled = dict(value)
    for key, property_schema in schema.get("properties", {}).items():
        if key not in filled and "default" in property_schema:
            filled[key] = copy.deepcopy(property_schema["default"])
        if key in filled:
            filled[key] = _with_defaults(property_schema, filled[key])
    return filled


def block_settings(block: str, settings: Mapping[str, Any], ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    """The ``block`` settings completed with the schema's defaults, or ValueError naming the first key that breaks
    the schema (``block.key: what is wrong``). ``ignore`` lists keys of the block that are not checked (and
    not filled in)."""
    import jsonschema

    schema = _schema()["properties"][block]
    given = {key: value for key, value in settings.items() if key not in ignore}
    checked = {**schema, "properties": {k: v for k, v in schema["properties"].items() if k not in ignore}}
    filled = _with_defaults(checked, given)
    errors = sorted(jsonschema.Draft202012Validator(checked).iter_errors(filled), key=lambda error: list(error.path))
    if errors:
        error = errors[0]
        where = ".".join([block, *map(str, error.path)])
        raise ValueError(f"{where}: {error.message} (config/schema.yaml)")
    return {key: value for key, value in filled.items() if key not in ignore}


def schema_enum(block: str, key: str) -> list:
    """The allowed values of ``block.key``."""
    return list(_schema()["properties"][block]["properties"][key]["enum"])
