"""What a run will need, checked from the configuration before any job starts.

The workflow (rules/common.smk) calls :func:`problems` when it reads its config: a dry run prints each problem as
a warning; a real run stops with all of them before the first job (``onstart``), so a cluster run never queues
jobs that are bound to fail on their node. Checked, each only when a job that needs it has outputs to make:

- the diffusion models of every ``controlnet*`` variant (local folders, or the Hugging Face cache when offline);
- the API key variable of ``prompts.backend: openai``;
- the asset folders and the model table of ``assets.source: folders``, and ``assets.environments_dir``;
- the ImageNet weights of ``train.pretrained``, ``nemo.pretrained`` and ``imagenet-<backbone>`` probing sources in the
  torch cache;
- the root folder of every ``evaluate.real_sets`` entry.

Only files and environment variables are looked at: no network and no GPU (the login node that plans a cluster
run has none). Each problem names the config key, the path and how to fix it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dst3d.generate import DIFFUSION_BACKENDS
from dst3d.identity import shard_names


def _shard_paths(config: Mapping[str, Any], pattern: str) -> list[Path]:
    results = config["results"]
    return [
        Path(pattern.format(results=results, split=split, category=category, shard=shard))
        for split, settings in config["splits"].items()
        for category in config["categories"]
        for shard in shard_names(settings)
    ]


def _all_exist(paths: list[Path]) -> bool:
    return all(path.exists() for path in paths)


def _variants(config: Mapping[str, Any]) -> list:
    """The parsed variants the run trains (train.variants and the tables' ones)."""
    from dst3d.protocols import training_variants
    from dst3d.training.variants import parse_variant

    sources = [entry["name"] for entry in config["train"]["real"]]
    return [parse_variant(name, sources) for name in training_variants(config)]


def variant_backends(config: Mapping[str, Any]) -> list[str]:
    """The generate backends that the trained variants with generated images use, in order."""
    return list(dict.fromkeys(variant.backend for variant in _variants(config) if variant.backend))


def problems(config: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> list[str]:
    """Every prerequisite of the run that ``config`` describes that is missing, as one message each."""
    found: list[str] = []
    found += _diffusion_problems(config)
    found += _prompt_problems(config, environ)
    found += _asset_problems(config)
    found += _pretrained_problems(config)
    found += _real_set_problems(config)
    return found


def _diffusion_problems(config: Mapping[str, Any]) -> list[str]:
    from dst3d.generate.hub import model_problems

    found = []
    for backend in variant_backends(config):
        if backend not in DIFFUSION_BACKENDS:
            continue
        tables = _shard_paths(config, f"{{results}}/generate/{backend}/{{split}}/{{category}}/{{shard}}.parquet")
        if not _all_exist(tables):
            found += model_problems(backend, config["generate"].get(backend) or {})
    return found


def _prompt_problems(config: Mapping[str, Any], environ: Mapping[str, str]) -> list[str]:
    from dst3d.generate.prompts import resolve_prompt_settings

    settings = resolve_prompt_settings(config["prompts"])
    if settings["backend"] != "openai":
        return []
    results = config["results"]
    prompt_files = [
        Path(f"{results}/prompts/{split}/{category}.json")
        for split in config["splits"]
        for category in config["categories"]
    ]
    variable = settings["openai"]["api_key_env"]
    if _all_exist(prompt_files) or environ.get(variable, "").strip():
        return []
    return [
        f"prompts.backend is openai but the environment variable {variable} (prompts.openai.api_key_env) is not set "
        f"or empty: export {variable}=... before running Snakemake (or name another variable in "
        "prompts.openai.api_key_env, or use prompts.backend: template). Answers already in the LLM cache "
        f"({results}/cache/llm) are reused without a request, but the job still asks for the variable."
    ]


def _asset_problems(config: Mapping[str, Any]) -> list[str]:
    from dst3d.inputs import catalog

    renders = _shard_paths(config, "{results}/render/{split}/{category}/{shard}.parquet")
    if _all_exist(renders):
        return []
    found = []
    checks = []
    if config["assets"]["source"] == "folders":
        folders = config["assets"]["folders"]
        from dst3d.inputs import official

        models_key = "cad_dir" if folders.get("models_format") == "pascal3d-cad" else "models_csv"
        checks = [
            (
                f"assets.folders.{models_key}",
                folders[models_key],
                lambda path: official.load_models(folders, list(config["categories"])),
            ),
            (
                "assets.folders.textures_dir",
                folders["textures_dir"],
                lambda path: catalog.index_textures(path, folders["test_fraction"], folders["dtd_split"]),
            ),
            (
                "assets.folders.backgrounds_dir",
                folders["backgrounds_dir"],
                lambda path: catalog.index_backgrounds(path, folders["test_fraction"]),
            ),
        ]
    if config["assets"]["environments_dir"]:
        checks.append(
            (
                "assets.environments_dir",
                config["assets"]["environments_dir"],
                lambda path: catalog.index_environments(path),
            )
        )
    for key, value, check in checks:
        path = Path(value)
        if not path.exists():
            found.append(f"{key} = {value!r}: {path.resolve()} does not exist; set {key} to your copy of it")
            continue
        try:
            table = check(path)
        except (catalog.AssetError, OSError, ValueError) as error:
            found.append(f"{key} = {value!r}: {error}")
            continue
        if key in ("assets.folders.models_csv", "assets.folders.cad_dir"):
            absent = [category for category in config["categories"] if category not in set(table["category"])]
            if absent:
                found.append(
                    f"{key} = {value!r}: the model table has no models of the categories {absent}; add "
                    "them, or remove them from categories"
                )
    return found


def _missing_weights(backbone: str, why: str, fix: str) -> str | None:
    """The problem of ImageNet weights of ``backbone`` missing from the torch cache (None when they are there):
    ``why`` says which key asks for them, ``fix`` the other way out."""
    from dst3d.training.loop import pretrained_weights_path

    path, url = pretrained_weights_path(backbone)
    if path.is_file():
        return None
    return (
        f"{why} but the ImageNet weights of {backbone} are not at {path}: download {url} to that path (or set "
        f"TORCH_HOME to a folder holding hub/checkpoints/{path.name}), or {fix}"
    )


def _pretrained_problems(config: Mapping[str, Any]) -> list[str]:
    """The ImageNet weights that train.pretrained (final networks, KCF fold models, classification backbones),
    nemo.pretrained (NeMo's feature networks, KCF's too with kcf.estimator nemo) and the imagenet-<backbone>
    probing sources need, for outputs not made yet."""
    from dst3d.classification import settings as classification_settings
    from dst3d.imagenet3d import BACKBONES
    from dst3d.workflow_config import estimator_settings, kcf_settings

    results = config["results"]
    needed = []  # (backbone, why, fix)
    variants = _variants(config)
    train_outputs = [Path(f"{results}/train/{variant.name}/pose.pt") for variant in variants]
    kcf_backends = {variant.backend for variant in variants if variant.selection == "kcf"}
    kcf_outputs = [Path(f"{results}/kcf/{backend}/kept.csv") for backend in sorted(kcf_backends)]
    kcf_by_resnet = config["kcf"]["estimator"] == "resnet"  # else kcf.train is unused: NeMo's folds read nemo.*
    for key, settings, outputs in (
        ("train", estimator_settings(config), train_outputs),
        ("kcf.train", kcf_settings(config), kcf_outputs if kcf_by_resnet else []),
    ):
        if settings.get("pretrained") and not _all_exist(outputs):
            needed.append((settings["backbone"], f"{key}.pretrained is true", f"set {key}.pretrained: false"))
    nemo = config["nemo"]
    if nemo.get("pretrained"):
        from dst3d import nemo_workflow

        nemo_outputs = [Path(f"{results}/nemo/train/{name}.pt") for name in nemo_workflow.trained_variants(config)]
        if config["kcf"]["estimator"] == "nemo":  # the fold models are NeMo models built with the same settings
            nemo_outputs += kcf_outputs
        if nemo_outputs and not _all_exist(nemo_outputs):
            needed.append((nemo["backbone"], "nemo.pretrained is true", "set nemo.pretrained: false"))
    table = classification_settings(config)
    if table is not None and config["train"].get("pretrained"):
        for backbone in table["backbones"]:
            rows = [Path(f"{results}/classification/{row}/{backbone}/model.pt") for row in table["pretraining"]]
            if not _all_exist(rows):
                why = f"train.pretrained is true for tables.classification.backbones {backbone!r},"
                needed.append((backbone, why, "set train.pretrained: false"))
    probing = config["tables"].get("probing")
    for name in probing["sources"] if probing else []:
        backbone = name.removeprefix("imagenet-")
        done = Path(f"{results}/probing/{name}/metrics.csv").is_file()
        # An unknown backbone is not a missing file: check_tasks names it.
        if name.startswith("imagenet-") and backbone in BACKBONES and not done:
            needed.append((backbone, f"tables.probing.sources has {name!r}", "remove the source"))
    return [problem for args in needed if (problem := _missing_weights(*args)) is not None]


def pseudo_real_root(config: Mapping[str, Any]) -> Path | None:
    """Where the workflow writes the pseudo-real set (None when pseudo_real.enabled is false)."""
    return Path(f"{config['results']}/pseudo_real/PASCAL3D") if config["pseudo_real"]["enabled"] else None


def _real_set_problems(config: Mapping[str, Any]) -> list[str]:
    found = []
    written = pseudo_real_root(config)
    for key in ("evaluate.real_sets", "train.real"):
        block, name = key.split(".")
        for position, entry in enumerate(config[block][name]):
            root = Path(entry["root"])
            if written is not None and root.resolve() == written.resolve():
                continue  # the workflow writes it (pseudo_real.enabled)
            if not root.is_dir():
                hint = ""
                if written is None and root.as_posix().endswith("pseudo_real/PASCAL3D"):
                    hint = " or set pseudo_real.enabled: true to have the workflow write the pseudo-real set"
                found.append(
                    f"{key}[{position}] ({entry['name']!r}).root = {entry['root']!r}: {root.resolve()} is not a "
                    f"folder; point it at the real set as published (config/README.md lists each layout){hint}"
                )
    return found
