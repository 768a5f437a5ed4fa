"""Image identity and per-image random streams.

Every image is identified by (split, category, index), where ``index`` counts the images of one category in
one split from 0. Everything random about an image (model choice aside, which is round-robin) is drawn from
a generator seeded by the global seed, that identity and a ``purpose`` string, so a draw never depends on the
shard size, the job order or the machine.
"""

from __future__ import annotations

import hashlib

import numpy as np


def image_id(split: str, category: str, index: int) -> str:
    """The stable, file-name-safe id of an image, e.g. ``train-car-000042``."""
    return f"{split}-{category}-{index:06d}"


def derive_seed(global_seed: int, *parts: object) -> int:
    """A 63-bit seed from the global seed and any identity parts (hashed as text, so stable across runs)."""
    text = "\x1f".join([str(int(global_seed)), *(str(part) for part in parts)])
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def image_seed(global_seed: int, split: str, category: str, index: int, purpose: str) -> int:
    """The seed of one image for one purpose (``"render"``, ``"generate"``, ``"prompt"`` ...)."""
    return derive_seed(global_seed, purpose, split, category, index)


def image_rng(global_seed: int, split: str, category: str, index: int, purpose: str) -> np.random.Generator:
    """A numpy generator private to one image and one purpose."""
    return np.random.default_rng(image_seed(global_seed, split, category, index, purpose))


def shard_indices(shard_index: int, shard_size: int, total: int) -> range:
    """Image indices held by shard ``shard_index`` when ``total`` images are cut into shards of ``shard_size``."""
    if shard_size <= 0:
        raise ValueError(f"shard_size must be positive, got {shard_size}")
    start = shard_index * shard_size
    if start >= total or shard_index < 0:
        raise ValueError(f"shard {shard_index} is out of range for {total} images in shards of {shard_size}")
    return range(start, min(start + shard_size, total))


def shard_count(shard_size: int, total: int) -> int:
    """How many shards ``total`` images need at ``shard_size`` per shard."""
    return -(-total // shard_size)


def shard_names(split_settings: dict) -> list[str]:
    """The shard names ("000", "001", ...) of a split block (``images_per_category``, ``shard_size``)."""
    count = shard_count(split_settings["shard_size"], split_settings["images_per_category"])
    return [f"{index:03d}" for index in range(count)]
