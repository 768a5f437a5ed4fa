"""Per-image identity seeds and viewpoint sampling."""

import numpy as np
import pytest

from dst3d import identity
from dst3d.render import viewpoints


def test_seed_is_stable_and_identity_specific():
    seed = identity.image_seed(0, "train", "car", 7, "render")
    assert seed == identity.image_seed(0, "train", "car", 7, "render")
    others = {
        identity.image_seed(1, "train", "car", 7, "render"),
        identity.image_seed(0, "test", "car", 7, "render"),
        identity.image_seed(0, "train", "boat", 7, "render"),
        identity.image_seed(0, "train", "car", 8, "render"),
        identity.image_seed(0, "train", "car", 7, "generate"),
    }
    assert seed not in others and len(others) == 5
    # A fixed value: the hash must not change between Python processes or versions.
    assert identity.derive_seed(0, "x") == identity.derive_seed(0, "x") == 9056860805095488837


def test_shards_cover_every_index_once():
    total, size = 23, 5
    covered = [
        i for shard in range(identity.shard_count(size, total)) for i in identity.shard_indices(shard, size, total)
    ]
    assert covered == list(range(total))
    with pytest.raises(ValueError, match="out of range"):
        identity.shard_indices(5, size, total)


@pytest.mark.parametrize("mode", [1, 2, 3, 4, 5, "p3d"])
def test_sampling_modes_stay_in_range(mode):
    rng = np.random.default_rng(0)
    settings = {"distance": {"mode": "truncnorm", "sd": 0.5, "low": -0.5, "high": 1.5}, "theta_sd_deg": 5.0}
    views = [viewpoints.sample_viewpoint(rng, mode, 3.0, settings) for _ in range(500)]
    azimuths = np.array([v.azimuth for v in views])
    elevations = np.degrees([v.elevation for v in views])
    distances = np.array([v.distance for v in views])
    assert ((azimuths >= 0) & (azimuths < 2 * np.pi)).all()
    assert ((elevations >= -90) & (elevations <= 90)).all()
    assert ((distances >= 2.5) & (distances <= 4.5)).all()
    if mode == "p3d":
        assert ((elevations >= -15) & (elevations <= 50)).all()
    if mode in (3, 4):
        assert 20 < np.median(elevations) < 40  # polar angle ~ N(60, 20): elevation around 30


# Each mode's published model (3D-DST's sampling modes; P3D-Diffusion's elevation), as distributions of
# (azimuth in degrees, elevation in degrees) computed here from the model, not from the implementation:
# elevation = 90 - phi with phi ~ N(mean, sd) truncated to [low, high], or uniform.
def _elevation_model(mode):
    from scipy import stats

    if mode == "p3d":
        return stats.truncnorm((-15 - 5) / 8, (50 - 5) / 8, loc=5, scale=8)
    if mode == 5:
        return stats.uniform(-90, 180)
    mean, sd, low, high = {1: (90, 30, 0, 180), 2: (90, 30, 0, 180), 3: (60, 20, 0, 195), 4: (60, 20, 0, 195)}[mode]
    # elevation = 90 - phi; phi > 180 (modes 3-4, 6 sd away) is never drawn in practice.
    return stats.truncnorm(
        (90 - min(high, 180) - (90 - mean)) / sd, (90 - low - (90 - mean)) / sd, loc=90 - mean, scale=sd
    )


@pytest.mark.parametrize("mode", [1, 2, 3, 4, 5, "p3d"])
def test_each_mode_draws_its_published_distribution(mode):
    rng = np.random.default_rng(7)
    draws = np.array([viewpoints.sample_azimuth_elevation(rng, mode) for _ in range(4000)])
    azimuth, elevation = draws[:, 0], draws[:, 1]
    model = _elevation_model(mode)
    # Quartiles of the elevation within 2.5 degrees of the model's (standard error about 0.6 degrees).
    np.testing.assert_allclose(np.percentile(elevation, [25, 50, 75]), model.ppf([0.25, 0.5, 0.75]), atol=2.5)
    assert abs(elevation.std() - model.std()) < 1.5
    if mode in (2, 4):
        # The official front-view window [-195, 15] of its azimuth is [-105, 105] in dst3d's (centred on the
        # front, azimuth 0), uniform over its 210 degrees; a folded polar angle adds 180 (mode 4 only, rarely).
        folded = azimuth > 105
        assert azimuth.min() >= -105 and np.all(azimuth[folded] - 180 <= 105) and folded.mean() < 0.01
        np.testing.assert_allclose(np.percentile(azimuth[~folded], [25, 50, 75]), [-52.5, 0, 52.5], atol=4)
    else:
        # Uniform over the circle.
        np.testing.assert_allclose(np.percentile(np.mod(azimuth, 360), [25, 50, 75]), [90, 180, 270], atol=6)


def test_polar_angle_beyond_180_is_folded():
    assert viewpoints.fold_polar(10.0, 190.0) == (190.0, 170.0)
    assert viewpoints.fold_polar(10.0, 90.0) == (10.0, 90.0)


def test_unknown_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown viewpoint sampling mode 7"):
        viewpoints.sample_azimuth_elevation(np.random.default_rng(0), 7)


def _official_camera(theta_deg, phi_deg, distance, azimuth_offset_deg, elevation_offset_deg):
    """The camera centre of the official 3D-DST renderer (scripts/blender_render.py), written out from its
    formula: offsets added to theta and subtracted from phi, phi folded past the pole, then
    (d sin phi cos theta, d sin phi sin theta, d cos phi)."""
    theta = np.radians(theta_deg + azimuth_offset_deg)
    phi = np.radians(phi_deg - elevation_offset_deg) % (2 * np.pi)
    if phi > np.pi:
        theta, phi = theta + np.pi, 2 * np.pi - phi
    return distance * np.array([np.sin(phi) * np.cos(theta), np.sin(phi) * np.sin(theta), np.cos(phi)])


@pytest.mark.parametrize(
    "theta, phi, azimuth_offset, elevation_offset",
    [
        (-90.0, 60.0, 0.0, 0.0),  # the official default pose: a front view from 30 degrees up
        (-195.0, 90.0, 0.0, 0.0),  # the front window's ends
        (15.0, 120.0, 0.0, 0.0),
        (37.0, 75.0, 90.0, 0.0),  # a model table azimuth offset
        (-10.0, 80.0, -30.0, 12.0),  # both offsets
        (200.0, 40.0, 0.0, -60.0),  # an elevation offset that carries the camera over the pole (fold)
    ],
)
def test_dst3d_camera_equals_the_official_one_for_the_mapped_draw(theta, phi, azimuth_offset, elevation_offset):
    from dst3d import geometry
    from dst3d.render.annotations import render_angles

    distance = 2.5
    azimuth = np.radians(theta + viewpoints.OFFICIAL_AZIMUTH_SHIFT_DEG)
    elevation = np.radians(90.0 - phi)
    render_azimuth, render_elevation = render_angles(
        azimuth, elevation, np.radians(azimuth_offset), np.radians(elevation_offset)
    )
    R, t = geometry.extrinsics_cv(render_azimuth, render_elevation, 0.0, distance)
    centre = -R.T @ t
    np.testing.assert_allclose(
        centre, _official_camera(theta, phi, distance, azimuth_offset, elevation_offset), atol=1e-9
    )


def test_the_front_window_faces_the_front():
    from dst3d import geometry

    low, high = viewpoints.FRONT_WINDOW
    assert (low, high) == (-105.0, 105.0) and (low + high) / 2 == 0.0  # azimuth 0: the camera on -y, the front
    R, t = geometry.extrinsics_cv(0.0, 0.0, 0.0, 1.0)
    np.testing.assert_allclose(-R.T @ t, [0.0, -1.0, 0.0], atol=1e-12)
    # The official window's centre, theta = -90, is the official renderer's camera on -y too.
    np.testing.assert_allclose(_official_camera(-90.0, 90.0, 1.0, 0.0, 0.0), [0.0, -1.0, 0.0], atol=1e-12)
