"""Linear probing of object-level 3D awareness (ImageNet3D's first task): the frozen features of a backbone, one
linear classifier each for the azimuth, elevation and in-plane rotation bins (the pose estimator's 3 x 41 bins,
so one 123-way linear layer scored by :func:`dst3d.training.pose.pose_loss`), and the geodesic error of the decoded
pose, summarised as Acc@pi/6 as the paper reports.

A feature source is named by a string (``tables.probing.sources``; parsed, without torch, by
:func:`dst3d.imagenet3d.parse_source`):

* ``random-<backbone>``: a torchvision backbone with random weights (the baseline: what the architecture alone gives);
* ``imagenet-<backbone>``: torchvision's ImageNet weights of it, read from the torch cache (never downloaded);
* ``<variant>``: the backbone of the pose estimator the workflow trained for that training variant.

Features are the backbone's globally pooled last layer (the input of its ``fc``), of the same object crops the
estimator sees; they are standardised with the probe-training set's mean and spread, and the probe is fitted on
the full batch with AdamW, deterministically for a given seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dst3d.imagenet3d import FeatureSource, parse_source  # noqa: F401 (the sources are named in config)
from dst3d.training import loop, pose


def feature_extractor(source: FeatureSource, seed: int, checkpoint: str | None = None) -> torch.nn.Module:
    """The frozen backbone of ``source`` with its head removed (outputs the pooled features). A variant's comes from
    its ``checkpoint`` file; ImageNet weights missing from the torch cache raise
    :class:`dst3d.training.loop.PretrainedWeightsMissing`, which says where to put them."""
    if source.kind == "variant":
        if checkpoint is None:
            raise ValueError(f"the feature source {source.name!r} needs its pose estimator's checkpoint")
        model, _ = loop.load_checkpoint(checkpoint)
    else:
        torch.manual_seed(seed)
        model = loop.build_model(source.backbone, pretrained=source.kind == "imagenet", outputs=1)
    loop.set_head(model, torch.nn.Identity())
    return model.eval().requires_grad_(False)


@torch.no_grad()
def extract_features(model: torch.nn.Module, images: torch.Tensor, input_size: int, batch_size: int) -> torch.Tensor:
    """N x D float32 features of the centre ``input_size`` crops of ``images`` (uint8 crops of
    :func:`dst3d.training.cropping.crops`)."""
    return loop.predict_logits(model, images, input_size, batch_size).float()


@dataclass
class Probe:
    """The fitted probe: feature standardisation and one linear layer over the 123 pose bins."""

    mean: torch.Tensor
    scale: torch.Tensor
    linear: torch.nn.Linear

    @torch.no_grad()
    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear((features - self.mean) / self.scale)


def fit_probe(features: torch.Tensor, labels: np.ndarray, settings: dict, seed: int) -> tuple[Probe, list[float]]:
    """Fit the three linear pose classifiers on N x D ``features`` and N x 3 bin ``labels``
    (:func:`dst3d.training.pose.pose_labels`) with full-batch AdamW: ``settings`` has epochs, lr and weight_decay.
    Returns the probe and the loss after every step."""
    if len(features) != len(labels):
        raise ValueError(f"{len(features)} feature rows but {len(labels)} label rows")
    if len(features) < 2:
        raise ValueError("a probe needs at least two training objects")
    generator = torch.Generator().manual_seed(seed)
    mean = features.mean(0, keepdim=True)
    scale = features.std(0, keepdim=True).clamp_min(1e-6)
    inputs = (features - mean) / scale
    linear = torch.nn.Linear(features.shape[1], pose.POSE_OUTPUTS)
    with torch.no_grad():
        bound = 1 / np.sqrt(features.shape[1])
        linear.weight.copy_(torch.rand(linear.weight.shape, generator=generator) * 2 * bound - bound)
        linear.bias.zero_()
    optimizer = torch.optim.AdamW(linear.parameters(), lr=settings["lr"], weight_decay=settings["weight_decay"])
    targets = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    history = []
    for _ in range(settings["epochs"]):
        loss = pose.pose_loss(linear(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(float(loss.detach()))
    return Probe(mean, scale, linear), history


def predict_poses(probe: Probe, features: torch.Tensor) -> np.ndarray:
    """N x 3 predicted (azimuth, elevation, theta) in radians, the centres of the arg-max bins."""
    return pose.decode(probe.logits(features))
