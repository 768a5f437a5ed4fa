"""The device setting of every stage that runs torch (training, KCF, diffusion), resolved one way."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def resolve_device(setting: str, key: str) -> torch.device:
    """The torch device of a device setting (``key`` names it in errors): ``auto`` is the first CUDA GPU when
    torch sees one, else the CPU; ``cpu``; ``cuda`` or ``cuda:N``, which without a visible GPU is an error that
    says what to change, never a silent fall-back to hours of CPU work."""
    import torch

    if not isinstance(setting, str) or re.fullmatch(r"auto|cpu|cuda(:\d+)?", setting) is None:
        raise ValueError(f"{key}: unknown device {setting!r}; use auto, cpu, cuda or cuda:N")
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"{key} is {setting} but torch sees no CUDA GPU (torch {torch.__version__}, torch.cuda.is_available() "
            f"is false): run the job on a GPU node with a CUDA build of torch, or set {key}: cpu (or auto)"
        )
    return torch.device(setting)
