"""Viewpoint sampling as in 3D-DST (five modes) and P3D-Diffusion, all angles in degrees at the interface
of the config and radians in the returned :class:`Viewpoint`.

3D-DST samples azimuth uniformly and the polar angle ``phi`` (degrees from the +z axis, so elevation is
``90 - phi``) from a truncated normal; a polar angle beyond 180 degrees is folded back (azimuth + 180,
``phi -> 360 - phi``). P3D-Diffusion draws elevation from a Gaussian redrawn inside a range. Truncated
normals are sampled by redrawing, as the published code does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The official 3D-DST renderer places the camera at ``d (sin phi cos t, sin phi sin t, cos phi)`` with its azimuth
#: ``t`` measured from +x; dst3d's azimuth ``a`` puts the camera at ``d (cos e sin a, -cos e cos a, sin e)`` (0 on -y,
#: PASCAL3D+), in the same world (both import a y-up mesh file with Blender's forward -Z, up Y). The two cameras
#: coincide for ``a = t + 90`` degrees and ``e = 90 - phi``; the model table's offsets add to either azimuth alike.
OFFICIAL_AZIMUTH_SHIFT_DEG = 90.0
#: The official front-view window of modes 2 and 4, in the official azimuth ``t`` (degrees).
OFFICIAL_FRONT_WINDOW = (-195.0, 15.0)
FRONT_WINDOW = tuple(bound + OFFICIAL_AZIMUTH_SHIFT_DEG for bound in OFFICIAL_FRONT_WINDOW)  # (-105, 105)

#: 3D-DST sampling modes: (azimuth range in dst3d's azimuth, polar angle model) in degrees. A polar model is
#: ("normal", mean, sd, low, high) or ("uniform", low, high). The front window of modes 2 and 4 is the official
#: [-195, 15] mapped by :data:`OFFICIAL_AZIMUTH_SHIFT_DEG`, so it is centred on the front (azimuth 0); the full
#: circles are left as [0, 360] (the same distribution, and the same draws as before the mapping was applied).
SAMPLING_MODES: dict[int, tuple[tuple[float, float], tuple]] = {
    1: ((0.0, 360.0), ("normal", 90.0, 30.0, 0.0, 180.0)),
    2: (FRONT_WINDOW, ("normal", 90.0, 30.0, 0.0, 180.0)),
    3: ((0.0, 360.0), ("normal", 60.0, 20.0, 0.0, 195.0)),
    4: (FRONT_WINDOW, ("normal", 60.0, 20.0, 0.0, 195.0)),
    5: ((0.0, 360.0), ("uniform", 0.0, 180.0)),
}

_MAX_REDRAWS = 10_000


@dataclass(frozen=True)
class Viewpoint:
    """A canonical viewpoint (PASCAL3D+ conventions, radians; distance in normalised model units)."""

    azimuth: float
    elevation: float
    theta: float
    distance: float


def truncated_normal(rng: np.random.Generator, mean: float, sd: float, low: float, high: float) -> float:
    """One draw of N(mean, sd) redrawn until it falls inside [low, high]."""
    if not low <= high:
        raise ValueError(f"truncated normal needs low <= high, got [{low}, {high}]")
    if sd <= 0:
        return float(np.clip(mean, low, high))
    for _ in range(_MAX_REDRAWS):
        value = rng.normal(mean, sd)
        if low <= value <= high:
            return float(value)
    raise ValueError(f"N({mean}, {sd}) almost never falls inside [{low}, {high}]: widen the range")


def fold_polar(azimuth_deg: float, phi_deg: float) -> tuple[float, float]:
    """Fold a polar angle outside [0, 180] back (3D-DST): azimuth + 180 and phi -> 360 - phi (or -phi)."""
    if phi_deg > 180.0:
        return azimuth_deg + 180.0, 360.0 - phi_deg
    if phi_deg < 0.0:
        return azimuth_deg + 180.0, -phi_deg
    return azimuth_deg, phi_deg


def sample_azimuth_elevation(rng: np.random.Generator, mode: int | str, p3d: dict | None = None) -> tuple[float, float]:
    """(azimuth, elevation) in degrees for a 3D-DST mode 1-5, or ``"p3d"`` (P3D-Diffusion elevation model).

    ``p3d`` holds the P3D-Diffusion elevation parameters: mean, sd, low, high (degrees).
    """
    if mode == "p3d":
        params = p3d or {"mean": 5.0, "sd": 8.0, "low": -15.0, "high": 50.0}
        azimuth = rng.uniform(0.0, 360.0)
        elevation = truncated_normal(rng, params["mean"], params["sd"], params["low"], params["high"])
        return float(azimuth), float(elevation)
    if mode not in SAMPLING_MODES:
        raise ValueError(f"unknown viewpoint sampling mode {mode!r}: use 1, 2, 3, 4, 5 or 'p3d'")
    (az_low, az_high), polar = SAMPLING_MODES[mode]
    azimuth = rng.uniform(az_low, az_high)
    if polar[0] == "uniform":
        phi = rng.uniform(polar[1], polar[2])
    else:
        phi = truncated_normal(rng, *polar[1:])
    azimuth, phi = fold_polar(azimuth, phi)
    return float(azimuth), float(90.0 - phi)


def sample_distance(rng: np.random.Generator, base_distance: float, settings: dict) -> float:
    """Camera distance: ``fixed`` or a truncated normal around the model's table distance (3D-DST).

    settings: {"mode": "fixed"|"truncnorm", "sd": float, "low": float, "high": float}; low/high are offsets
    from ``base_distance`` (3D-DST: sd 0.5, [-0.5, +1.5]).
    """
    if settings["mode"] == "fixed":
        return float(base_distance)
    return truncated_normal(
        rng, base_distance, settings["sd"], base_distance + settings["low"], base_distance + settings["high"]
    )


def sample_viewpoint(rng: np.random.Generator, mode: int | str, base_distance: float, settings: dict) -> Viewpoint:
    """A full canonical viewpoint. ``settings`` is the config's ``render.viewpoint`` block.

    Draw order (fixed, part of the dataset definition): azimuth/elevation, distance, in-plane theta.
    Azimuth is wrapped into [0, 2 pi); theta ~ N(0, theta_sd_deg) wrapped into (-pi, pi].
    """
    azimuth_deg, elevation_deg = sample_azimuth_elevation(rng, mode, settings.get("p3d"))
    distance = sample_distance(rng, base_distance, settings["distance"])
    theta_deg = rng.normal(0.0, settings["theta_sd_deg"]) if settings["theta_sd_deg"] > 0 else 0.0
    theta = float(np.deg2rad(theta_deg))
    theta = float(np.arctan2(np.sin(theta), np.cos(theta)))
    return Viewpoint(
        azimuth=float(np.deg2rad(azimuth_deg) % (2 * np.pi)),
        elevation=float(np.deg2rad(elevation_deg)),
        theta=theta,
        distance=distance,
    )
