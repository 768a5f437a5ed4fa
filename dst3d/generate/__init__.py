"""The generate stage: realistic images from the renders, one shard at a time, and the table that describes them.

Backends: ``composite`` (the render over its background photo; offline, :mod:`dst3d.generate.composite`),
``controlnet`` (SD 1.5 + canny ControlNet) and ``controlnet-sdxl`` (SDXL + canny ControlNet), both in
:mod:`dst3d.generate.diffusion`. :func:`generate_shard` is the one entry point: it prepares each backend's
inputs from the render records (prompt, edge map, generation seed), runs the backend into a staging folder,
publishes the folder in one rename and returns the shard's table, checked against the contract below.

The generated-image contract: a generated shard's table is the render stage's record of every image, all of its
columns unchanged (the render ``seed`` included), followed by ``GENERATED_COLUMNS`` in that order with those
dtypes, whatever the backend. A column that does not apply to a backend is null (the composite has no prompt,
seed or model). A backend that returns a column the render record already has, or lacks a contract column, fails
its own job with the column named.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from dst3d.identity import image_seed
from dst3d.io import staged_directory

BACKENDS = ("composite", "controlnet", "controlnet-sdxl")
DIFFUSION_BACKENDS = ("controlnet", "controlnet-sdxl")

#: The columns the generate stage adds to the render record, with their pandas dtypes (``object`` holds strings;
#: "Int64", float and string columns may be null, the first four never are).
GENERATED_COLUMNS: dict[str, str] = {
    "image_path": "object",  # the generated image (PNG, RGB)
    "image_width": "int64",  # its size in pixels; boxes and cuboids of the render record scale by
    "image_height": "int64",  # image_width / width and image_height / height
    "backend": "object",  # composite | controlnet | controlnet-sdxl
    "prompt": "object",  # the text prompt of the image (null for composite)
    "negative_prompt": "object",
    "edge_path": "object",  # the Canny edge map that conditioned the image
    "generate_seed": "Int64",  # seed of the image's own noise generator (not the render's ``seed``)
    "base_model": "object",  # model ids or local folders, as configured
    "base_model_revision": "object",  # Hub snapshot commit, or sha256 of a local folder's files
    "conditioning": "object",  # canny | depth | canny+depth (diffusion; depth: the record's depth_path); composite: null
    "controlnet_model": "object",  # the canny ControlNet (null when it is not used)
    "controlnet_model_revision": "object",
    "depth_controlnet_model": "object",  # the depth ControlNet (null when it is not used)
    "depth_controlnet_model_revision": "object",
    "vae_model": "object",  # null: the base model's own VAE
    "vae_model_revision": "object",
    "scheduler": "object",
    "steps": "Int64",
    "eta": "float64",  # DDIM only (NaN otherwise)
    "guidance_scale": "float64",
    "conditioning_scale": "float64",  # of the canny ControlNet
    "depth_conditioning_scale": "float64",
    "size": "Int64",  # side of the square output before any paste
    "batch_size": "Int64",  # images per pipeline call (changes pixels only by float rounding)
    "dtype": "object",
    "device": "object",
    "device_name": "object",
    "background_mode": "object",  # generated | paste (diffusion); composite: null
    "diffusers_version": "object",
}
REQUIRED_COLUMNS = ("image_path", "image_width", "image_height", "backend")

_log = logging.getLogger(__name__)


class ContractError(ValueError):
    """A backend returned a table that breaks the generated-image contract."""


def prepare_records(
    records: pd.DataFrame,
    backend: str,
    global_seed: int,
    prompt_set: Mapping | None = None,
    edges_dir: str | Path | None = None,
) -> pd.DataFrame:
    """The render records with the inputs a diffusion backend reads: ``prompt`` (from the prompt set; an image
    missing from it is an error naming the image), ``edge_path`` and ``generate_seed`` (from the image identity).
    For ``composite`` the records are returned unchanged."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown generate backend {backend!r}; expected one of {BACKENDS}")
    if backend == "composite":
        return records
    if prompt_set is None or edges_dir is None:
        raise ValueError(f"the {backend} backend needs the prompt set and the edge-map folder of the shard")
    prompts = prompt_set["prompts"]
    missing = [image_id for image_id in records["image_id"] if image_id not in prompts]
    if missing:
        raise ValueError(
            f"the prompt set of {prompt_set.get('split')}/{prompt_set.get('category')} has no prompt for the images "
            f"{missing[:5]}{' ...' if len(missing) > 5 else ''}: rerun its write_prompts job (delete the prompt file)"
        )
    prepared = records.copy()
    prepared["prompt"] = [prompts[image_id] for image_id in records["image_id"]]
    prepared["edge_path"] = [f"{Path(edges_dir).as_posix()}/{image_id}.png" for image_id in records["image_id"]]
    prepared["generate_seed"] = [
        image_seed(global_seed, row.split, row.category, row.image_index, "generate") for row in records.itertuples()
    ]
    return prepared


def generate_shard(
    backend: str,
    records: pd.DataFrame,
    out_dir: str | Path,
    settings: Mapping[str, Any] | None,
    global_seed: int,
    prompt_set: Mapping | None = None,
    edges_dir: str | Path | None = None,
    log: logging.Logger = _log,
) -> pd.DataFrame:
    """Generate the images of one shard into ``out_dir`` (published atomically) and return the shard's table.

    ``records``: the shard's render records. ``settings``: the backend's block of ``generate`` (unused by
    ``composite``). ``prompt_set`` (the write_prompts JSON) and ``edges_dir`` (the shard's edge maps) are needed by
    the diffusion backends. The table is the records with ``GENERATED_COLUMNS`` after them, checked by
    :func:`check_generated`.
    """
    out_dir = Path(out_dir)
    prepared = prepare_records(records, backend, global_seed, prompt_set, edges_dir)
    with staged_directory(out_dir) as staging:
        if backend == "composite":
            from dst3d.generate.composite import composite_images

            generated = composite_images(prepared, staging, log=log).assign(backend="composite")
        else:
            from dst3d.generate.diffusion import generate_images

            generated = generate_images(
                backend, prepared, staging, settings or {}, prompt_set["negative_prompt"], log=log
            )
        # Checked while still staged, so a table that breaks the contract publishes nothing.
        table = check_generated(merge_generated(prepared, generated, backend), records.columns, backend)
        staged = f"{staging.as_posix()}/"
        table["image_path"] = [
            f"{out_dir.as_posix()}/{path[len(staged) :]}" if path.startswith(staged) else path
            for path in table["image_path"]
        ]
    return table


def merge_generated(prepared: pd.DataFrame, generated: pd.DataFrame, backend: str) -> pd.DataFrame:
    """The prepared records with a backend's columns after them, in contract order; a backend column that would
    overwrite a record column is an error."""
    overlap = sorted((set(generated.columns) - {"image_id"}) & set(prepared.columns))
    if overlap:
        raise ContractError(
            f"the {backend} backend returned the columns {overlap}, which the render record already "
            "has: a generated table never overwrites a record column"
        )
    unknown = sorted(set(generated.columns) - {"image_id"} - set(GENERATED_COLUMNS))
    if unknown:
        raise ContractError(
            f"the {backend} backend returned the columns {unknown}, which are not in "
            "dst3d.generate.GENERATED_COLUMNS: add them to the contract first"
        )
    table = prepared.merge(generated, on="image_id", how="left", validate="one_to_one")
    for column in GENERATED_COLUMNS:
        if column not in table:
            table[column] = None
    return table


def check_generated(table: pd.DataFrame, record_columns, backend: str) -> pd.DataFrame:
    """``table`` in contract form (record columns, then ``GENERATED_COLUMNS`` cast to their dtypes), or
    ContractError naming the first problem: a missing column, a null required value, a missing image file."""
    record_columns = [column for column in record_columns if column not in GENERATED_COLUMNS]
    missing = [column for column in [*record_columns, *GENERATED_COLUMNS] if column not in table.columns]
    if missing:
        raise ContractError(f"the {backend} shard table lacks the columns {missing}")
    table = table[[*record_columns, *GENERATED_COLUMNS]].copy()
    for column in REQUIRED_COLUMNS:
        if table[column].isna().any():
            images = table.loc[table[column].isna(), "image_id"].tolist()
            raise ContractError(f"the {backend} backend left {column} empty for the images {images[:5]}")
    for column, dtype in GENERATED_COLUMNS.items():
        table[column] = table[column].astype(dtype)
    absent = [path for path in table["image_path"] if not Path(path).is_file()]
    if absent:
        raise ContractError(f"the {backend} backend did not write the images {absent[:3]}")
    return table


def check_depth_conditioning(config: Mapping[str, Any], backends: list[str]) -> None:
    """A diffusion backend conditioned on depth needs the renders' 16-bit depth maps: a ValueError naming both keys
    otherwise (before any job)."""
    from dst3d.generate.settings import resolve_settings, uses_depth

    for backend in dict.fromkeys(backends):
        if backend not in DIFFUSION_BACKENDS:
            continue
        settings = resolve_settings(backend, config["generate"].get(backend) or {})
        if uses_depth(settings) and config["render"]["depth"] != "png16":
            raise ValueError(
                f"config: generate.{backend}.conditioning is {settings['conditioning']!r}, which reads the rendered "
                f"depth maps, but render.depth is {config['render']['depth']!r}: set render.depth: png16"
            )
