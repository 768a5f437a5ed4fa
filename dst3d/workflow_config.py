"""The workflow's configuration as its rules use it: which keys of a block decide what a job writes (they go into
the rule's params, so changing them reruns the job) and which only say where and how the job runs (threads and
devices: resources, read by the job from the config, never rerun triggers).

A GPU and a CPU, or 1 and 8 threads, can round floating point differently, so outputs made with other runtime
settings may differ in the last bits; the workflow does not redo finished jobs for that (delete an output to
redo it). Used by the Snakefile's rules (rules/common.smk), the rule scripts and bench/.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Keys of the ``train`` block that configure the workflow, not a network: which variants and tasks to train, the
#: real training sources and the fine-tuning overrides.
WORKFLOW_TRAIN_KEYS = ("variants", "tasks", "real", "finetune")

#: Per config block, the keys that are resources, not settings.
RUNTIME_KEYS: dict[str, tuple[str, ...]] = {
    "render": ("threads", "device"),
    "edges": ("threads",),
    "train": ("threads", "device"),
    "generate": ("device", "cpu_offload", "local_files_only"),
    "nemo": ("device",),
}
#: Keys of the ``nemo`` block that configure the workflow (which models exist, which interpreter runs them), not
#: a NeMo job: left out of the jobs' settings (``nemo.cc3d.variants`` too, see :func:`nemo_settings`).
WORKFLOW_NEMO_KEYS = ("variants", "python")
#: Keys of ``prompts.openai`` that say how requests are sent, not what is asked (the answer cache ignores them).
PROMPT_RUNTIME_KEYS = ("timeout_s", "max_retries")


def estimator_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The training settings of the final networks: the ``train`` block without the workflow's own keys
    (``variants``, ``tasks``) and without ``threads``; ``device`` included."""
    return {key: value for key, value in config["train"].items() if key not in (*WORKFLOW_TRAIN_KEYS, "threads")}


def kcf_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The KCF fold models' training settings: the estimator settings with ``kcf.train`` laid over them."""
    return {**estimator_settings(config), **config["kcf"]["train"]}


def finetune_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of the fine-tuning stage of ``<synthetic>_then_<real>`` variants: the estimator settings with
    ``train.finetune`` laid over them."""
    return {**estimator_settings(config), **config["train"]["finetune"]}


def nemo_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of the NeMo jobs (their job JSON's ``settings``): the ``nemo`` block without
    :data:`WORKFLOW_NEMO_KEYS` and ``cc3d.variants``; ``device`` included (``output_settings(..., "nemo")`` drops
    it for the rules' params)."""
    settings = {key: value for key, value in config["nemo"].items() if key not in WORKFLOW_NEMO_KEYS}
    settings["cc3d"] = {key: value for key, value in settings["cc3d"].items() if key != "variants"}
    return settings


def output_settings(settings: Mapping[str, Any], block: str) -> dict[str, Any]:
    """``settings`` without the runtime keys of ``block``: what a rule passes as params."""
    if block == "prompts":
        raise ValueError(
            "the prompts block's params come from dst3d.generate.prompts.job_settings (they depend on its backend)"
        )
    return {key: value for key, value in settings.items() if key not in RUNTIME_KEYS[block]}


def runtime_settings(settings: Mapping[str, Any], block: str) -> dict[str, Any]:
    """Only the runtime keys of ``block`` that ``settings`` holds: what a job adds back from the config."""
    if block == "prompts":
        given = settings.get("openai") or {}
        return {"openai": {key: value for key, value in given.items() if key in PROMPT_RUNTIME_KEYS}}
    return {key: value for key, value in settings.items() if key in RUNTIME_KEYS[block]}


def with_runtime(settings: Mapping[str, Any], config_block: Mapping[str, Any], block: str) -> dict[str, Any]:
    """A job's full settings: its params ``settings`` with the runtime keys of ``config_block`` added back."""
    runtime = runtime_settings(config_block, block)
    if block == "prompts":
        return {**settings, "openai": {**(settings.get("openai") or {}), **runtime["openai"]}}
    return {**settings, **runtime}
