"""Training variants: which data a network is trained on, named by one string.

=====================================  ========================================================================
variant                                training data
=====================================  ========================================================================
``<backend>-<all|kcf>``                the generated images of a generate backend, all of them or those KCF kept
``real-<source>``                      the whole split of a real training source (a ``train.real`` entry)
``real-<source>-<N>shot``              N annotated objects per category of it (:func:`few_shot`)
``<synthetic>_then_<real>``            fine-tuned on ``<real>`` from the ``<synthetic>`` variant's checkpoint
                                       (its file hash recorded in the new checkpoint), with ``train.finetune``
``<synthetic>_plus_<real>``            trained from scratch on both sets together
=====================================  ========================================================================

``<synthetic>`` is a synthetic variant and ``<real>`` a real one, e.g. ``composite-kcf_then_real-pascal3d-7shot``
(3D-DST's protocol: pre-train on the generated data, fine-tune on the real training split) or
``real-pascal3d-20shot`` (P3D-Diffusion's few-shot baseline).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import pandas as pd

SYNTHETIC = re.compile(r"^(?P<backend>composite|controlnet|controlnet-sdxl)-(?P<selection>all|kcf)$")
REAL = re.compile(r"^real-(?P<source>[A-Za-z0-9][A-Za-z0-9.-]*?)(?:-(?P<shots>[0-9]+)shot)?$")
#: How a synthetic and a real part are combined in one variant name.
COMBINATIONS = {"_then_": "finetune", "_plus_": "mixed"}
#: A real training source's name (train.real[].name): no underscore, so that the variant names stay parseable.
SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*$")


@dataclass(frozen=True)
class Variant:
    """A parsed variant name; ``kind`` is ``synthetic``, ``real``, ``finetune`` or ``mixed``."""

    name: str
    kind: str
    synthetic: str | None = None
    source: str | None = None
    shots: int | None = None

    @property
    def backend(self) -> str | None:
        return SYNTHETIC.match(self.synthetic)["backend"] if self.synthetic else None

    @property
    def selection(self) -> str | None:
        return SYNTHETIC.match(self.synthetic)["selection"] if self.synthetic else None

    @property
    def subset(self) -> str | None:
        """The real subset's name: ``all`` or ``<N>shot`` (None without real data)."""
        if self.source is None:
            return None
        return "all" if self.shots is None else f"{self.shots}shot"

    @property
    def real(self) -> str | None:
        """The real part as a variant name of its own (``real-<source>[-<N>shot]``)."""
        if self.source is None:
            return None
        return f"real-{self.source}" + ("" if self.shots is None else f"-{self.shots}shot")


def real_variant(source: str, shots: int | None = None) -> str:
    return f"real-{source}" + ("" if shots is None else f"-{shots}shot")


def parse_variant(name: str, sources: list[str] | tuple[str, ...] = ()) -> Variant:
    """The parts of a variant name; ValueError (naming ``train.variants`` and the grammar) for a name that is
    none of the forms of the module docstring, or whose real source is not one of ``sources``."""
    name = str(name)
    synthetic, real, kind = None, None, None
    for separator, combination in COMBINATIONS.items():
        if separator in name:
            synthetic, real = name.split(separator, 1)
            kind = combination
            break
    else:
        if SYNTHETIC.match(name):
            return Variant(name, "synthetic", synthetic=name)
        real, kind = name, "real"
    grammar = (
        "<backend>-<all|kcf> (backend composite, controlnet or controlnet-sdxl), real-<source>, "
        "real-<source>-<N>shot, <synthetic>_then_<real> or <synthetic>_plus_<real>"
    )
    if synthetic is not None and not SYNTHETIC.match(synthetic):
        raise ValueError(f"training variant {name!r}: {synthetic!r} is not a synthetic variant; variants are {grammar}")
    match = REAL.match(real)
    if match is None:
        raise ValueError(f"training variant {name!r}: {real!r} is not a real variant; variants are {grammar}")
    source, shots = match["source"], None if match["shots"] is None else int(match["shots"])
    if shots is not None and shots < 1:
        raise ValueError(f"training variant {name!r}: the number of shots must be at least 1")
    if source not in sources:
        known = ", ".join(sources) or "none is configured"
        raise ValueError(
            f"training variant {name!r} trains on the real source {source!r}, which is not a train.real entry "
            f"(train.real names: {known}); add an entry with that name or fix the variant"
        )
    return Variant(name, kind, synthetic=synthetic, source=source, shots=shots)


def _rank(seed: int, source: str, image_id: str) -> str:
    return hashlib.sha256(f"{seed}/{source}/{image_id}".encode()).hexdigest()


def few_shot(frame: pd.DataFrame, shots: int | None, seed: int, source: str) -> pd.DataFrame:
    """The objects of a real training table that an ``<N>shot`` subset keeps (all of them for ``shots=None``).

    The rule: within each category, objects are ordered by ``sha256("<seed>/<source>/<image_id>")`` and the first
    N are kept. The order does not depend on N, so the 7-shot subset is contained in the 20-shot one and that in
    the 50-shot one; it depends only on the global seed, the source's name and the objects' ids (not on the
    table's row order). A category with fewer than N objects is an error that names it.
    """
    if shots is None:
        return frame.sort_values("image_id").reset_index(drop=True)
    ranked = frame.assign(_rank=[_rank(seed, source, image_id) for image_id in frame["image_id"]])
    kept = []
    for category, group in ranked.groupby("category", sort=True):
        if len(group) < shots:
            raise ValueError(
                f"real source {source!r}: category {category!r} has {len(group)} objects, fewer than the {shots} "
                "a few-shot variant asks for; use fewer shots or a larger split"
            )
        kept.append(group.sort_values("_rank").head(shots))
    return pd.concat(kept).drop(columns="_rank").sort_values("image_id").reset_index(drop=True)
