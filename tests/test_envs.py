"""The per-rule conda environments (envs/*.yaml, for `--software-deployment-method conda`). Conda is not
installed on the project's machines, so the files are not solved here; these tests check what can be checked
without it: each file parses, every rule names one, their pins agree with pyproject.toml, and each environment
lists (directly or through the dependencies of what it lists, as installed in the project's venv) every package
that its rules' scripts import, following the imports through dst3d/. The NeMo rules run a module of dst3d in an
interpreter of their own (envs/nemo.yaml, torch 2.2.2 + PyTorch3D): its torch pins are its own, the rest agree with
pyproject.toml, and the Makefile installs exactly its pip section."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from functools import cache
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
ENVS = {path.stem: path for path in sorted((REPO / "envs").glob("*.yaml"))}
KINDS = {"blender", "vision", "diffusion", "llm", "torch", "nemo"}
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
# Modules that ship inside another distribution's wheel without saying so in its metadata.
MODULE_DISTRIBUTIONS = {"mathutils": "bpy", "bpy": "bpy", "pytorch3d": "pipablepytorch3d"}
#: envs/nemo.yaml's own pins, where it parts from pyproject.toml: PyTorch3D 0.7.6's wheels need torch 2.2.2.
NEMO_OWN = {"torch": "==2.2.2", "torchvision": "==0.17.2", "pipablepytorch3d": "==0.7.6"}


def pip_requirements(name: str) -> list[Requirement]:
    environment = yaml.safe_load(ENVS[name].read_text())
    (pip,) = [entry["pip"] for entry in environment["dependencies"] if isinstance(entry, dict)]
    return [Requirement(line) for line in pip]


def pyproject_requirements() -> dict[str, Requirement]:
    groups = PYPROJECT["optional-dependencies"].values()
    lines = PYPROJECT["dependencies"] + [line for group in groups for line in group]
    return {canonicalize_name(requirement.name): requirement for requirement in map(Requirement, lines)}


@cache
def rule_blocks() -> dict[str, str]:
    """Rule name -> its text, from rules/*.smk."""
    blocks = {}
    for path in sorted((REPO / "rules").glob("*.smk")):
        for match in re.finditer(r"^rule (\w+):\n((?:[ \t]+.*\n|[ \t]*\n)*)", path.read_text(), re.MULTILINE):
            blocks[match.group(1)] = match.group(2)
    return blocks


def directive(block: str, name: str) -> str | None:
    match = re.search(rf"^    {name}:\n\s+\"([^\"]+)\"", block, re.MULTILINE)
    return match.group(1) if match else None


def entry_point(block: str) -> Path:
    """The file a rule runs: its script, or for a shell rule the dst3d module it runs with ``python -m``."""
    script = directive(block, "script")
    if script:
        return (REPO / "rules" / script).resolve()
    match = re.search(r"-m (dst3d(?:\.\w+)+)", block)
    assert match, "a shell rule must run a dst3d module with python -m"
    return REPO / (match.group(1).replace(".", "/") + ".py")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions (lazy imports are needs too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


@cache
def module_providers() -> dict[str, list[str]]:
    return packages_distributions()


def needed_distributions(script: Path) -> set[str]:
    """Distributions that the script and the dst3d modules it reaches import (and pyarrow where Parquet is used)."""
    providers = module_providers()
    seen, pending, needed = set(), [script], set()
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        if re.search(r"\b(to_parquet|read_parquet)\b", path.read_text()):
            needed.add("pyarrow")  # pandas' Parquet engine, imported by pandas itself
        for module in imported_modules(path):
            top = module.split(".")[0]
            if top in ("dst3d", "_bootstrap"):
                base = REPO / "scripts" / "_bootstrap" if top == "_bootstrap" else REPO / module.replace(".", "/")
                candidates = (base.with_suffix(".py"), base / "__init__.py")
                pending += [candidate for candidate in candidates if candidate.is_file()]
            elif top not in sys.stdlib_module_names and top != "__future__":
                distributions = [MODULE_DISTRIBUTIONS[top]] if top in MODULE_DISTRIBUTIONS else providers.get(top)
                assert distributions, f"{path}: no installed distribution provides `{top}`"
                needed |= {canonicalize_name(distribution) for distribution in distributions}
    return needed


def provided_distributions(requirements: list[Requirement]) -> set[str]:
    """The listed distributions and, recursively, what they require (as installed here, extras left out)."""
    provided, pending = set(), [canonicalize_name(requirement.name) for requirement in requirements]
    while pending:
        name = pending.pop()
        if name in provided:
            continue
        provided.add(name)
        try:
            dependencies = requires(name) or []
        except PackageNotFoundError:
            continue
        for line in dependencies:
            requirement = Requirement(line)
            if not requirement.marker or requirement.marker.evaluate({"extra": ""}):
                pending.append(canonicalize_name(requirement.name))
    return provided


def test_one_environment_per_kind_of_rule_and_each_parses():
    assert set(ENVS) == KINDS
    for name, path in ENVS.items():
        environment = yaml.safe_load(path.read_text())
        assert environment["channels"] == ["conda-forge"], name
        assert "python=3.11" in environment["dependencies"] and "pip" in environment["dependencies"], name
        assert pip_requirements(name), name


def test_every_rule_names_an_existing_environment():
    blocks = rule_blocks()
    listed = subprocess.run(
        [str(Path(sys.executable).with_name("snakemake")), "--list-rules"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert set(blocks) | {"all"} == set(listed.stdout.split())
    used = set()
    for rule, block in blocks.items():
        if rule == "all":
            continue
        environment = directive(block, "conda")
        assert environment, f"rule {rule} names no conda environment"
        assert (REPO / "rules" / environment).resolve().parent == REPO / "envs", rule
        used.add(Path(environment).stem)
        assert Path(environment).stem in ENVS, f"rule {rule}: {environment} does not exist"
    assert used == KINDS, f"environments no rule uses: {KINDS - used}"


@pytest.mark.parametrize("name", sorted(KINDS))
def test_pins_agree_with_pyproject(name):
    assert PYPROJECT["requires-python"] == "==3.11.*"
    pins = pyproject_requirements()
    for requirement in pip_requirements(name):
        key = canonicalize_name(requirement.name)
        if name == "nemo" and key in NEMO_OWN:
            assert str(requirement.specifier) == NEMO_OWN[key], f"envs/nemo.yaml pins {requirement}"
            continue
        assert key in pins, f"envs/{name}.yaml: {requirement.name} is not in pyproject.toml"
        assert requirement.specifier == pins[key].specifier, (
            f"envs/{name}.yaml pins {requirement}, pyproject.toml {pins[key]}"
        )
    # Optional groups of pyproject.toml are whole environments.
    listed = {canonicalize_name(requirement.name) for requirement in pip_requirements(name)}
    for line in PYPROJECT["optional-dependencies"].get(name, []):
        assert canonicalize_name(Requirement(line).name) in listed, f"envs/{name}.yaml lacks {line}"


def test_nemo_setup_installs_the_nemo_environments_pip_section():
    listed = subprocess.run(
        ["make", "--no-print-directory", "-s", "nemo-requirements"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert [Requirement(line) for line in listed.stdout.splitlines()] == pip_requirements("nemo")
    recipe = subprocess.run(
        ["make", "-n", "nemo-setup", "NEMO_VENV=/nonexistent/venv"], capture_output=True, text=True, cwd=REPO
    )
    assert "/nonexistent/venv/bin/python -m pip install --quiet -r /nonexistent/venv/requirements.txt" in recipe.stdout


@pytest.mark.parametrize("rule", sorted(set(rule_blocks()) - {"all"}))
def test_environment_provides_what_the_rule_imports(rule):
    block = rule_blocks()[rule]
    script = entry_point(block)
    assert script.is_file(), f"rule {rule} runs {script}, which does not exist"
    name = Path(directive(block, "conda")).stem
    missing = needed_distributions(script) - provided_distributions(pip_requirements(name))
    assert not missing, f"rule {rule} imports {sorted(missing)}, which envs/{name}.yaml does not provide"
