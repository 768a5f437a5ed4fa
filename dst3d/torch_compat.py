"""Importing torchvision on a CPU-only torch.

The torchvision wheels on PyPI are linked against CUDA torch; with the CPU build of torch their C extension
(``torchvision._C``) cannot load. torchvision's Python models work without it, but torchvision 0.28 registers
fake kernels for ``torchvision::nms`` and ``torchvision::qnms`` unconditionally at import time, which fails when
the extension did not define those operators. When (and only when) the extension cannot be loaded, we define
the two operator schemas first so that the import succeeds; the detection/ROI ops stay unavailable, which the
pose estimator never uses.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys
from types import ModuleType

import torch

_fragment: torch.library.Library | None = None


def _extension_loads() -> bool:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("torchvision is not installed: pip install torchvision (see pyproject.toml for the pin)")
    for library in pathlib.Path(spec.submodule_search_locations[0]).glob("_C*.so"):
        try:
            torch.ops.load_library(str(library))
            return True
        except OSError:
            return False
    return False


def import_torchvision() -> ModuleType:
    """Import and return torchvision, working around a C extension that cannot load on CPU-only torch."""
    global _fragment
    if "torchvision" in sys.modules:
        return sys.modules["torchvision"]
    if not _extension_loads() and _fragment is None:
        _fragment = torch.library.Library("torchvision", "FRAGMENT")
        _fragment.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _fragment.define("qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor")
    import torchvision

    return torchvision
