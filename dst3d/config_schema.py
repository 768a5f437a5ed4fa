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
#: Keys that were renamed (old dotted key -> new one, same value): an old config that still uses one stops with a
#: line naming the new key instead of an unknown-key error.
RENAMED_KEYS = {"evaluate.benchmarks": "evaluate.real_sets"}


@cache
def _schema() -> dict:
    import yaml

    return yaml.safe_load(SCHEMA_PATH.read_text())


def _resolved(schema: Mapping) -> Mapping:
    """A schema with its local ``$ref`` (``#/$defs/...``) followed, its own keys over the referenced ones. Its own
    ``properties`` are merged into the referenced ones key by key, so that two users of one definition can give
    their properties different defaults (JSON Schema applies both, and a default only annotates)."""
    if "$ref" not in schema:
        return schema
    target = _schema()
    for part in schema["$ref"].removeprefix("#/").split("/"):
        target = target[part]
    referenced = _resolved(target)
    own = {key: value for key, value in schema.items() if key != "$ref"}
    merged = {**referenced, **own}
    if "properties" in own and "properties" in referenced:
        names = {**referenced["properties"], **own["properties"]}
        merged["properties"] = {
            name: {**referenced["properties"].get(name, {}), **own["properties"].get(name, {})} for name in names
        }
    return merged


def _with_defaults(schema: Mapping, value: Any) -> Any:
    """``value`` with every missing property that has a schema default filled in, recursively through objects
    and array items (as Snakemake's ``validate(..., set_default=True)`` fills them)."""
    schema = _resolved(schema)
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [_with_defaults(schema["items"], item) for item in value]
    if not isinstance(value, dict):
        return value
    filled = dict(value)
    for key, property_schema in schema.get("properties", {}).items():
        if key not in filled and "default" in property_schema:
            filled[key] = copy.deepcopy(property_schema["default"])
        if key in filled:
            filled[key] = _with_defaults(property_schema, filled[key])
    return filled


def _renamed(key: str) -> str:
    return f"{key} is now {RENAMED_KEYS[key]} (renamed; same entries)"


def _renamed_keys(config: Mapping) -> list[str]:
    """One line per renamed key (:data:`RENAMED_KEYS`) that ``config`` still uses."""
    found = []
    for old in RENAMED_KEYS:
        block = config
        *parents, name = old.split(".")
        for parent in parents:
            block = block.get(parent) if isinstance(block, Mapping) else None
        if isinstance(block, Mapping) and name in block:
            found.append(_renamed(old))
    return found


def _message(error, prefix: tuple[str, ...] = ()) -> str:
    """One line for a schema error: the dotted key, what is wrong, and for an unknown key the closest known one."""
    import difflib

    path = [*prefix, *map(str, error.path)]
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(known))
        parts = []
        for key in unknown:
            close = difflib.get_close_matches(key, known, n=1)
            where = ".".join([*path, key])
            if where in RENAMED_KEYS:
                parts.append(_renamed(where))
                continue
            parts.append(f"{where} is not a known key" + (f" (did you mean {close[0]}?)" if close else ""))
        return "; ".join(parts) + f"; the keys of {'.'.join(path) or 'the top level'} are: {', '.join(known)}"
    return f"{'.'.join(path) or 'the config'}: {error.message}"


def validate_config(config: dict) -> None:
    """Check the whole workflow config against config/schema.yaml and fill in its defaults, in place; raises
    ValueError with one line per problem (the first three), each naming the key (see :func:`_message`); a renamed
    key (:data:`RENAMED_KEYS`) is reported alone, naming its new key."""
    import jsonschema

    renamed = _renamed_keys(config)
    if renamed:
        raise ValueError("\n".join(f"config: {line}" for line in renamed))
    filled = _with_defaults(_schema(), config)
    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(filled), key=lambda error: list(map(str, error.path)))
    if errors:
        lines = [f"config: {_message(error)}" for error in errors[:3]]
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise ValueError("\n".join(lines) + more + "\nThe keys and their allowed values: config/README.md.")
    config.clear()
    config.update(filled)


def block_schema(block: str) -> Mapping:
    """The schema of ``block``, a top-level key or a dotted path into one (``generate.controlnet``), its
    ``$ref`` followed."""
    schema: Mapping = _schema()
    for key in block.split("."):
        schema = _resolved(schema)["properties"][key]
    return _resolved(schema)


def block_settings(block: str, settings: Mapping[str, Any], ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    """The ``block`` settings (``block`` as in :func:`block_schema`) completed with the schema's defaults, or
    ValueError naming the first key that breaks the schema (``block.key: what is wrong``). ``ignore`` lists keys
    of the block that are not checked (and not filled in)."""
    import jsonschema

    schema = block_schema(block)
    given = {key: value for key, value in settings.items() if key not in ignore}
    checked = {
        **schema,
        "properties": {k: v for k, v in schema["properties"].items() if k not in ignore},
        "$defs": _schema()["$defs"],  # for the references inside the block
    }
    filled = _with_defaults(checked, given)
    errors = sorted(
        jsonschema.Draft202012Validator(checked).iter_errors(filled), key=lambda error: list(map(str, error.path))
    )
    if errors:
        raise ValueError(f"{_message(errors[0], tuple(block.split('.')))} (config/schema.yaml)")
    return {key: value for key, value in filled.items() if key not in ignore}


def schema_enum(block: str, key: str) -> list:
    """The allowed values of ``block.key``."""
    return list(_schema()["properties"][block]["properties"][key]["enum"])
