"""Rotation conventions, projection, bins and the geodesic error against hand-computed values."""

import numpy as np
import pytest

from dst3d import geometry as g

PI = np.pi


def test_rotation_at_front_view_is_hand_computed():
    # az = el = theta = 0: camera on -y looking at +y, z up: x_cam = x, y_cam = z, z_cam = -y (OpenGL).
    expected = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], float)
    np.testing.assert_allclose(g.rotation_gl(0, 0, 0), expected, atol=1e-12)


def test_camera_center_follows_pascal3d():
    np.testing.assert_allclose(g.camera_center(0, 0, 2), [0, -2, 0], atol=1e-12)
    np.testing.assert_allclose(g.camera_center(PI / 2, 0, 2), [2, 0, 0], atol=1e-12)
    np.testing.assert_allclose(g.camera_center(0, PI / 2, 2), [0, 0, 2], atol=1e-12)


def _project(points, azimuth, elevation, theta, distance=2.0, focal=100.0, size=64):
    R, t = g.extrinsics_cv(azimuth, elevation, theta, distance)
    return g.project(np.array(points, float), g.intrinsics(focal, size, size), R, t)


def test_projection_of_front_view_by_hand():
    uv, depth = _project([[0, 0, 0], [0.5, 0, 0], [0, 0, 0.5]], 0, 0, 0)
    # u = 32 + 100 * 0.5 / 2 = 57 for +x (right); v = 32 - 25 = 7 for +z (up); depth = distance.
    np.testing.assert_allclose(uv, [[32, 32], [57, 32], [32, 7]], atol=1e-9)
    np.testing.assert_allclose(depth, [2, 2, 2], atol=1e-12)


def test_side_view_sees_the_front_on_the_left():
    # Camera at +x looking at -x with z up: the image's right is +y, so the front (-y) is on the left.
    uv, _ = _project([[0, -0.5, 0]], PI / 2, 0, 0)
    np.testing.assert_allclose(uv, [[7, 32]], atol=1e-9)


def test_positive_theta_turns_content_counter_clockwise():
    uv, _ = _project([[0.5, 0, 0]], 0, 0, PI / 2)
    np.testing.assert_allclose(uv, [[32, 7]], atol=1e-9)


def test_top_view_looks_down():
    uv, depth = _project([[0, 0, 0.5], [0, 0.5, 0]], 0, PI / 2, 0)
    np.testing.assert_allclose(depth, [1.5, 2.0], atol=1e-9)
    # From above with azimuth 0, +y (the back) is at the top of the image.
    np.testing.assert_allclose(uv[1], [32, 32 - 100 * 0.5 / 2], atol=1e-9)


@pytest.mark.parametrize("pose", [(0.3, 0.2, 0.1), (4.0, -0.5, -2.0), (1.2, 1.3, 3.0), (6.0, -1.2, 0.0)])
def test_angles_round_trip(pose):
    azimuth, elevation, theta = g.angles_from_rotation_gl(g.rotation_gl(*pose))
    assert azimuth == pytest.approx(pose[0] % (2 * PI))
    assert elevation == pytest.approx(pose[1])
    assert theta == pytest.approx(pose[2])


def test_extrinsics_put_the_camera_at_its_centre():
    R, t = g.extrinsics_cv(1.0, 0.4, 0.2, 3.0)
    np.testing.assert_allclose(-R.T @ t, g.camera_center(1.0, 0.4, 3.0), atol=1e-12)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)


def test_geodesic_error_of_single_angle_changes():
    # R1^T R2 reduces to Rz(a1 - a2) for an azimuth change, Rz(t2 - t1) for theta, Rx for elevation.
    assert g.pose_error((0.5, 0.7, 0.1), (0.8, 0.7, 0.1)) == pytest.approx(0.3)
    assert g.pose_error((0.5, -0.4, 0.1), (0.5, -0.4, -0.5)) == pytest.approx(0.6)
    assert g.pose_error((2.0, 0.1, 0.0), (2.0, 0.5, 0.0)) == pytest.approx(0.4)
    assert g.pose_error((0.1, 0.0, 0.0), (0.1 + PI, 0.0, 0.0)) == pytest.approx(PI)
    assert g.pose_error((0.1, 0.2, 0.3), (0.1, 0.2, 0.3)) == pytest.approx(0.0, abs=1e-7)


def test_geodesic_error_equals_logm_norm():
    # ||logm(R)||_F / sqrt(2) is the rotation angle: build R from axis-angle and compare.
    axis = np.array([1.0, 2.0, -0.5]) / np.linalg.norm([1.0, 2.0, -0.5])
    angle = 1.1
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rotation = np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K
    log = angle * K  # logm of a rotation by `angle` about `axis`
    assert g.geodesic_error(np.eye(3), rotation) == pytest.approx(np.linalg.norm(log) / np.sqrt(2))


def test_bins_by_hand():
    assert g.azimuth_to_bin(0.0) == 0
    assert g.azimuth_to_bin(2 * PI - 1e-9) == 40
    assert g.azimuth_to_bin(-0.01) == 40  # wrapped into [0, 2 pi)
    assert g.signed_angle_to_bin(0.0) == 20  # ceil(19.5)
    assert g.signed_angle_to_bin(-PI / 2) == 10  # ceil(-10.25 + 19.5)
    assert g.signed_angle_to_bin(PI) == 40
    assert g.signed_angle_to_bin(3.5) == g.IGNORE_INDEX
    assert g.bin_to_azimuth(0) == pytest.approx(0.5 * PI / 20.5)
    assert g.bin_to_signed_angle(20) == pytest.approx(0.0)


def test_bins_round_trip_within_half_a_bin():
    rng = np.random.default_rng(0)
    half_bin = PI / 41
    azimuths = rng.uniform(0, 2 * PI, 1000)
    decoded = g.bin_to_azimuth(g.azimuth_to_bin(azimuths))
    assert np.abs(decoded - azimuths).max() <= half_bin + 1e-12
    signed = rng.uniform(-PI + 1e-6, PI, 1000)
    decoded = g.bin_to_signed_angle(g.signed_angle_to_bin(signed))
    assert np.abs(decoded - signed).max() <= half_bin + 1e-12
    bins = np.arange(41)
    np.testing.assert_array_equal(g.azimuth_to_bin(g.bin_to_azimuth(bins)), bins)
    np.testing.assert_array_equal(g.signed_angle_to_bin(g.bin_to_signed_angle(bins)), bins)


def test_cuboid_visibility_from_the_front():
    low, high = np.array([-0.5, -0.3, -0.2]), np.array([0.5, 0.3, 0.2])
    visible = g.cuboid_corner_visibility(low, high, np.array([0.0, -5.0, 0.0]))
    # Only the y-min face (corners without bit 1) faces a camera straight in front.
    np.testing.assert_array_equal(visible, [True, True, False, False, True, True, False, False])
    corners = g.cuboid_corners(low, high)
    np.testing.assert_allclose(corners[0], low)
    np.testing.assert_allclose(corners[7], high)
