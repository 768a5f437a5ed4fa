"""NeMo's render-and-compare inference: the feature reconstruction loss of a pose (P3D-Diffusion, equation 3) and
the pose search that minimises it, a grid of initial poses scored at once, then gradient descent on azimuth,
elevation, theta and distance from the best of them.

Equation 3 with unit features and one variance for object and background is, up to constants, ``sum_fg (1 -
f_i . C_r) + sum_bg (1 - f_i . b)``: a foreground cell (one the neural mesh covers under the pose) is compared
with the rendered vertex feature ``C_r``, a background cell with the background feature ``b``. As in NeMo's
code, ``b`` is per cell the most similar of the background features the model keeps, and a foreground cell
scores the better of the two (an occluder is background seen in front of the object): the loss of a pose is
``1 - mean_i s_i`` with ``s_i = max(f_i . C_r, max_b f_i . b)`` on the silhouette and ``max_b f_i . b`` off it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from dst3d.nemo import raster
from dst3d.nemo.features import STRIDE


def background_scores(feature_maps: torch.Tensor, backgrounds: list[torch.Tensor]) -> torch.Tensor:
    """B x h x w: per cell, the largest similarity to the image's background features (Q x dim each)."""
    pairs = zip(feature_maps, backgrounds, strict=True)
    return torch.stack([torch.einsum("dhw,qd->qhw", f, b).amax(dim=0) for f, b in pairs])


def reconstruction_loss(
    feature_maps: torch.Tensor, rendered: torch.Tensor, silhouette: torch.Tensor, background: torch.Tensor
) -> torch.Tensor:
    """The loss of each of B poses (module docstring): feature maps and rendered features B x dim x h x w,
    silhouettes and background scores B x h x w."""
    foreground = (feature_maps * rendered).sum(dim=1)
    scores = torch.where(silhouette, torch.maximum(foreground, background), background)
    return 1 - scores.mean(dim=(1, 2))


def initial_angles(search: dict) -> np.ndarray:
    """G x 3 (azimuth, elevation, theta): ``azimuths`` equally spaced azimuths from 0 times the listed
    ``elevations`` and ``thetas`` (radians)."""
    azimuths = np.arange(search["azimuths"]) * 2 * np.pi / search["azimuths"]
    grid = np.meshgrid(azimuths, search["elevations"], search["thetas"], indexing="ij")
    return np.stack([axis.ravel() for axis in grid], axis=1)


def fit_distance(vertices: torch.Tensor, angles: torch.Tensor, K: torch.Tensor, side: float) -> torch.Tensor:
    """Per pose (N x 3 angles), the distance at which the mesh's projected box has a longest side of ``side``
    pixels under ``K`` (two fixed-point steps from distance 1 of the exact-at-infinity scaling)."""
    distance = torch.ones(len(angles), dtype=angles.dtype, device=angles.device) * 5.0
    for _ in range(3):
        R, t = raster.extrinsics(torch.cat([angles, distance[:, None]], dim=1))
        pixels, _ = raster.project(vertices.to(angles), R, t, K.expand(len(angles), 3, 3))
        extent = (pixels.amax(dim=1) - pixels.amin(dim=1)).amax(dim=1)
        distance = distance * extent / side
    return distance


def render(vertices, faces, vertex_features, poses, K_feature, shape) -> tuple[torch.Tensor, torch.Tensor]:
    """The rendered vertex features (B x dim x h x w) and silhouettes of B meshes under ``poses`` and feature-map
    cameras ``K_feature`` (3 x 3, or B x 3 x 3), on maps of ``shape``."""
    R, t = raster.extrinsics(poses)
    batch = raster.meshes(vertices, faces)
    fragments = raster.rasterise(batch, R, t, K_feature.expand(len(poses), 3, 3), shape)
    return raster.render_features(batch, vertex_features, fragments)


def pose_losses(feature_maps, vertices, faces, vertex_features, background, poses, K_feature) -> torch.Tensor:
    """The reconstruction loss of each of B poses against its feature map (``background``: its background scores)."""
    rendered, silhouette = render(vertices, faces, vertex_features, poses, K_feature, tuple(feature_maps.shape[-2:]))
    return reconstruction_loss(feature_maps, rendered, silhouette, background)


def search(
    feature_maps: torch.Tensor,
    vertices: list[torch.Tensor],
    faces: list[torch.Tensor],
    vertex_features: list[torch.Tensor],
    backgrounds: list[torch.Tensor],
    K: torch.Tensor,
    object_side: float,
    settings: dict,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The poses (B x 4: azimuth in [0, 2 pi), elevation, theta in (-pi, pi], distance) minimising the loss of
    B feature maps (B x dim x h x w, stride 8) given each image's neural mesh (``vertices``, ``faces``), vertex
    and background features, the crops' camera ``K`` (3 x 3, input pixels) and the object's expected size in
    it (``object_side`` pixels, which sets each initial pose's distance), and those losses (B).
    ``settings``: ``azimuths``, ``elevations``, ``thetas`` (the initial grid), ``steps`` and ``lr`` (Adam)."""
    feature_maps = feature_maps.detach()
    images = len(feature_maps)
    K_feature = raster.scaled_camera(K.to(feature_maps), 1 / STRIDE)
    background = background_scores(feature_maps, backgrounds)
    angles = torch.as_tensor(initial_angles(settings), dtype=feature_maps.dtype)
    count = len(angles)

    # Every initial pose of every image in one batch, each at the distance that gives the expected size.
    with torch.no_grad():
        candidates = []
        for image in range(images):
            distance = fit_distance(vertices[image], angles, K.to(angles), object_side)
            candidates.append(torch.cat([angles, distance[:, None]], dim=1))
        candidates = torch.stack(candidates)  # B x G x 4
        repeat = [index for index in range(images) for _ in range(count)]
        losses = pose_losses(
            feature_maps[repeat],
            [vertices[i] for i in repeat],
            [faces[i] for i in repeat],
            [vertex_features[i] for i in repeat],
            background[repeat],
            candidates.reshape(-1, 4),
            K_feature,
        ).reshape(images, count)
        start = candidates[torch.arange(images), losses.argmin(dim=1)]

    # Gradient descent on (azimuth, elevation, theta, log distance) of every image at once.
    parameters = torch.cat([start[:, :3], start[:, 3:].log()], dim=1).clone().requires_grad_(True)
    optimiser = torch.optim.Adam([parameters], lr=settings["lr"])
    best, best_loss = start.clone(), losses.min(dim=1).values.clone()
    for _ in range(settings["steps"]):
        poses = torch.cat([parameters[:, :3], parameters[:, 3:].exp()], dim=1)
        loss = pose_losses(feature_maps, vertices, faces, vertex_features, background, poses, K_feature)
        with torch.no_grad():
            better = loss < best_loss
            best[better], best_loss[better] = poses[better].detach(), loss[better].detach()
        optimiser.zero_grad()
        loss.sum().backward()
        optimiser.step()
    with torch.no_grad():  # the last step's pose too
        poses = torch.cat([parameters[:, :3], parameters[:, 3:].exp()], dim=1)
        loss = pose_losses(feature_maps, vertices, faces, vertex_features, background, poses, K_feature)
        better = loss < best_loss
        best[better], best_loss[better] = poses[better], loss[better]
    best[:, 0] = torch.remainder(best[:, 0], 2 * math.pi)
    best[:, 2] = torch.remainder(best[:, 2] + math.pi, 2 * math.pi) - math.pi
    return best, best_loss
