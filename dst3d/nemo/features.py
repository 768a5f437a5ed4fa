"""NeMo's feature side: a torchvision ResNet turned into a stride-8 map of unit-length features, the memory bank
of the neural mesh's vertex features (updated with momentum) with a queue of background features, and the
contrastive loss that pulls an image feature towards its vertex's and away from every other vertex's (except
its mesh neighbours) and from the background's.

The loss of a feature ``f`` seen at vertex ``k`` is the cross-entropy of ``k`` among the logits
``f . theta_j / temperature`` over the vertices ``j`` not within ``neighbour_distance`` of ``k`` (``k`` itself
kept) and ``f . beta_b / temperature`` over the background features ``b``; all vectors are unit length.
"""

from __future__ import annotations

import torch

from dst3d.torch_compat import import_torchvision

#: Downsampling of the feature map against the network's input.
STRIDE = 8


class FeatureNet(torch.nn.Module):
    """A torchvision ResNet (``resnet18``/``34``/``50``...; random weights, or loaded by the caller) whose last
    block's output is upsampled to stride 8, joined with the stride-8 block's and projected to ``dim`` unit-length
    features per pixel: images B x 3 x H x W (H, W multiples of 32) -> B x dim x H/8 x W/8. ``weights``: a
    torchvision state dict of the same ResNet (e.g. its ImageNet weights) for the backbone; its ``fc`` is not
    used."""

    def __init__(self, backbone: str = "resnet50", dim: int = 128, weights: dict | None = None):
        super().__init__()
        if not backbone.startswith("resnet"):
            raise ValueError(f"NeMo's feature extractor is a ResNet, got backbone {backbone!r}")
        network = getattr(import_torchvision().models, backbone)(weights=None)
        if weights is not None:
            network.load_state_dict(weights)
        self.stem = torch.nn.Sequential(network.conv1, network.bn1, network.relu, network.maxpool, network.layer1)
        self.layer2, self.layer3, self.layer4 = network.layer2, network.layer3, network.layer4
        channels2 = _out_channels(network.layer2)
        channels4 = _out_channels(network.layer4)
        self.project = torch.nn.Sequential(
            torch.nn.Conv2d(channels2 + channels4, 2 * dim, 3, padding=1),
            torch.nn.BatchNorm2d(2 * dim),
            torch.nn.ReLU(inplace=True),
            torch.nn.Conv2d(2 * dim, dim, 1),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-1] % 32 or images.shape[-2] % 32:
            raise ValueError(f"image height and width must be multiples of 32, got {tuple(images.shape[-2:])}")
        fine = self.layer2(self.stem(images))
        coarse = self.layer4(self.layer3(fine))
        coarse = torch.nn.functional.interpolate(coarse, size=fine.shape[-2:], mode="bilinear", align_corners=False)
        return torch.nn.functional.normalize(self.project(torch.cat([fine, coarse], dim=1)), dim=1)


def _out_channels(layer: torch.nn.Sequential) -> int:
    last = layer[-1]
    return (last.conv3 if hasattr(last, "conv3") else last.conv2).out_channels


class MemoryBank:
    """The ``vertices`` x ``dim`` vertex features and a first-in-first-out queue of ``background`` features, all
    unit length; random unit vectors to start (``seed``)."""

    def __init__(self, vertices: int, dim: int = 128, background: int = 2560, momentum: float = 0.9, seed: int = 0):
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        generator = torch.Generator().manual_seed(seed)
        self.vertex = torch.nn.functional.normalize(torch.randn(vertices, dim, generator=generator), dim=1)
        self.background = torch.nn.functional.normalize(torch.randn(background, dim, generator=generator), dim=1)
        self.momentum = momentum
        self._next = 0  # where the queue's oldest entry is

    @torch.no_grad()
    def update(self, features: torch.Tensor, vertex_ids: torch.Tensor, background: torch.Tensor) -> None:
        """Move each seen vertex's feature towards the mean of its new features (``momentum`` of the old kept,
        then renormalised) and replace the queue's oldest entries by ``background`` (N x dim)."""
        features, background = features.detach().float(), background.detach().float()
        seen, inverse = torch.unique(vertex_ids, return_inverse=True)
        sums = torch.zeros(len(seen), features.shape[1]).index_add_(0, inverse, features)
        means = sums / torch.bincount(inverse, minlength=len(seen)).unsqueeze(1)
        blended = self.momentum * self.vertex[seen] + (1 - self.momentum) * means
        self.vertex[seen] = torch.nn.functional.normalize(blended, dim=1)
        size = len(self.background)
        background = background[-size:]
        slots = (self._next + torch.arange(len(background))) % size
        self.background[slots] = torch.nn.functional.normalize(background, dim=1)
        self._next = int((self._next + len(background)) % size)


def neighbour_mask(vertices: torch.Tensor, distance: float) -> torch.Tensor:
    """V x V, true where two different vertices lie within ``distance`` of each other (excluded as negatives)."""
    close = torch.cdist(vertices, vertices) <= distance
    close.fill_diagonal_(False)
    return close


def contrastive_loss(
    features: torch.Tensor,
    vertex_ids: torch.Tensor,
    bank: MemoryBank,
    neighbours: torch.Tensor,
    temperature: float = 0.07,
) -> torch.Tensor:
    """The mean loss (module docstring) of image ``features`` (N x dim, unit length) seen at ``vertex_ids`` (N)."""
    vertex_logits = features @ bank.vertex.T / temperature
    vertex_logits = vertex_logits.masked_fill(neighbours[vertex_ids], float("-inf"))
    background_logits = features @ bank.background.T / temperature
    logits = torch.cat([vertex_logits, background_logits], dim=1)
    return torch.nn.functional.cross_entropy(logits, vertex_ids)
