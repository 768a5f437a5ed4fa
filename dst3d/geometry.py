"""Rotation, camera and projection conventions (PASCAL3D+), pose bins and the geodesic error.

Conventions used throughout the project:

* Object (model) frame: z up, the object's front faces -y, units are those of the normalised model (largest
  bounding-box side 1, centred at the origin).
* Viewpoint: azimuth ``a``, elevation ``e``, in-plane rotation ``theta`` (radians) and distance ``d``, as in
  PASCAL3D+. The camera centre is ``C = d * (cos e sin a, -cos e cos a, sin e)``: azimuth 0 looks at the
  front (from -y), azimuth pi/2 at the +x side, elevation pi/2 from straight above.
* ``rotation_gl(a, e, theta) = Rz(theta) @ Rx(e - pi/2) @ Rz(-a)`` maps object to camera coordinates in the
  OpenGL/Blender camera convention (x right, y up, looking down -z); this is the R of PASCAL3D+ and of the
  pose metrics. Positive theta turns the image content counter-clockwise.
* The stored extrinsics ``R, t`` use the OpenCV convention (x right, y down, looking down +z), so that
  ``K @ (R @ X + t)`` gives pixel coordinates with the origin at the top-left corner of the top-left pixel.
"""

from __future__ import annotations

import numpy as np

#: Number of bins per angle of the pose classifier, and the ignore index of its cross-entropy.
NUM_BINS = 41
IGNORE_INDEX = 41
_BIN_SCALE = 20.5  # bins per pi radians

#: OpenGL camera axes to OpenCV camera axes (flip y and z).
GL_TO_CV = np.diag([1.0, -1.0, -1.0])


def rot_x(angle_rad: float) -> np.ndarray:
    """Right-handed rotation about the x axis by ``angle_rad``."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_z(angle_rad: float) -> np.ndarray:
    """Right-handed rotation about the z axis by ``angle_rad``."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def camera_center(azimuth_rad: float, elevation_rad: float, distance: float) -> np.ndarray:
    """Camera centre in the object frame (PASCAL3D+): ``d * (cos e sin a, -cos e cos a, sin e)``."""
    return distance * np.array(
        [
            np.cos(elevation_rad) * np.sin(azimuth_rad),
            -np.cos(elevation_rad) * np.cos(azimuth_rad),
            np.sin(elevation_rad),
        ]
    )


def rotation_gl(azimuth_rad: float, elevation_rad: float, theta_rad: float) -> np.ndarray:
    """Object-to-camera rotation, OpenGL camera axes: ``Rz(theta) @ Rx(e - pi/2) @ Rz(-a)``."""
    return rot_z(theta_rad) @ rot_x(elevation_rad - np.pi / 2) @ rot_z(-azimuth_rad)


def angles_from_rotation_gl(rotation: np.ndarray) -> tuple[float, float, float]:
    """Inverse of :func:`rotation_gl`: (azimuth in [0, 2 pi), elevation in [-pi/2, pi/2], theta in (-pi, pi]).

    The third row of the rotation is the unit vector towards the camera, ``(cos e sin a, -cos e cos a, sin e)``;
    the third column is ``(-sin theta cos e, cos theta cos e, sin e)``. At elevation +-pi/2 azimuth and theta
    are not separable; azimuth 0 is returned there.
    """
    rotation = np.asarray(rotation, dtype=float)
    elevation = float(np.arcsin(np.clip(rotation[2, 2], -1.0, 1.0)))
    if np.hypot(rotation[2, 0], rotation[2, 1]) < 1e-9:
        # Looking straight down or up: R = Rz(theta) @ Rx(+-0 or -pi) ... fold everything into theta.
        theta = float(np.arctan2(rotation[1, 0], rotation[0, 0]))
        return 0.0, elevation, theta
    azimuth = float(np.arctan2(rotation[2, 0], -rotation[2, 1])) % (2 * np.pi)
    theta = float(np.arctan2(-rotation[0, 2], rotation[1, 2]))
    return azimuth, elevation, theta


def extrinsics_cv(
    azimuth_rad: float, elevation_rad: float, theta_rad: float, distance: float
) -> tuple[np.ndarray, np.ndarray]:
    """Object-to-camera ``R`` (3x3) and ``t`` (3), OpenCV camera axes: ``X_cam = R @ X + t``."""
    rotation = GL_TO_CV @ rotation_gl(azimuth_rad, elevation_rad, theta_rad)
    center = camera_center(azimuth_rad, elevation_rad, distance)
    return rotation, -rotation @ center


def focal_px(lens_mm: float, sensor_width_mm: float, width_px: int) -> float:
    """Focal length in pixels for a horizontal sensor fit (Blender's default for landscape/square images)."""
    return lens_mm / sensor_width_mm * width_px


def intrinsics(focal_length_px: float, width_px: int, height_px: int) -> np.ndarray:
    """Pinhole K with square pixels and the principal point at the image centre (pixel-corner origin)."""
    return np.array([[focal_length_px, 0.0, width_px / 2.0], [0.0, focal_length_px, height_px / 2.0], [0.0, 0.0, 1.0]])


def project(points: np.ndarray, K: np.ndarray, R: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project Nx3 object points with OpenCV-convention ``K, R, t``: (Nx2 pixel coordinates, N depths)."""
    camera_points = np.asarray(points, dtype=float) @ np.asarray(R).T + np.asarray(t)
    depth = camera_points[:, 2]
    homogeneous = camera_points @ np.asarray(K).T
    return homogeneous[:, :2] / homogeneous[:, 2:3], depth


def cuboid_corners(bbox_min: np.ndarray, bbox_max: np.ndarray) -> np.ndarray:
    """The 8 corners of an axis-aligned box, corner ``i`` taking max along axis ``k`` where bit ``k`` of i is set."""
    bbox_min, bbox_max = np.asarray(bbox_min, float), np.asarray(bbox_max, float)
    return np.array([[(bbox_max if (i >> k) & 1 else bbox_min)[k] for k in range(3)] for i in range(8)])


def cuboid_corner_visibility(bbox_min: np.ndarray, bbox_max: np.ndarray, camera_center_obj: np.ndarray) -> np.ndarray:
    """Whether each cuboid corner lies on a box face that faces the camera (not hidden by the box itself)."""
    bbox_min, bbox_max = np.asarray(bbox_min, float), np.asarray(bbox_max, float)
    camera_center_obj = np.asarray(camera_center_obj, float)
    visible = np.zeros(8, dtype=bool)
    for i, _corner in enumerate(cuboid_corners(bbox_min, bbox_max)):
        for axis in range(3):
            on_max_side = (i >> axis) & 1
            facing = (
                camera_center_obj[axis] > bbox_max[axis] if on_max_side else camera_center_obj[axis] < bbox_min[axis]
            )
            visible[i] |= bool(facing)
    return visible


def geodesic_error(rotation_a: np.ndarray, rotation_b: np.ndarray) -> float:
    """Rotation angle between two rotations in radians, ``||logm(Ra^T Rb)||_F / sqrt(2)``."""
    cosine = (np.trace(np.asarray(rotation_a).T @ np.asarray(rotation_b)) - 1.0) / 2.0
    return float(np.arccos(np.clip(cosine, -1.0, 1.0)))


def pose_error(pred: tuple[float, float, float], truth: tuple[float, float, float]) -> float:
    """Geodesic error between two (azimuth, elevation, theta) poses in radians (PASCAL3D+ metric)."""
    return geodesic_error(rotation_gl(*pred), rotation_gl(*truth))


def wrap_to_pi(angle_rad: np.ndarray | float) -> np.ndarray | float:
    """Wrap angles into (-pi, pi]."""
    wrapped = -((-np.asarray(angle_rad, dtype=float) + np.pi) % (2 * np.pi) - np.pi)
    return float(wrapped) if np.ndim(wrapped) == 0 else wrapped


def azimuth_to_bin(azimuth_rad: np.ndarray | float) -> np.ndarray:
    """Azimuth bin ``floor(a / pi * 20.5)`` with ``a`` wrapped into [0, 2 pi): 41 bins of pi/20.5."""
    wrapped = np.mod(np.asarray(azimuth_rad, dtype=float), 2 * np.pi)
    return np.minimum(np.floor(wrapped / np.pi * _BIN_SCALE), NUM_BINS - 1).astype(np.int64)


def signed_angle_to_bin(angle_rad: np.ndarray | float) -> np.ndarray:
    """Elevation/theta bin ``ceil(x / pi * 20.5 + 19.5)`` for x in (-pi, pi]; outside gives IGNORE_INDEX."""
    angle = np.asarray(angle_rad, dtype=float)
    bins = np.ceil(angle / np.pi * _BIN_SCALE + 19.5).astype(np.int64)
    return np.where((bins >= 0) & (bins < NUM_BINS), bins, IGNORE_INDEX)


def bin_to_azimuth(bins: np.ndarray | int) -> np.ndarray:
    """Centre of an azimuth bin: ``(k + 0.5) * pi / 20.5``."""
    return (np.asarray(bins, dtype=float) + 0.5) * np.pi / _BIN_SCALE


def bin_to_signed_angle(bins: np.ndarray | int) -> np.ndarray:
    """Centre of an elevation/theta bin: ``(k - 20) * pi / 20.5``.

    The published decoder uses ``(k - 20.5) * pi / 20.5``, the lower edge of the bin that ``ceil(x/pi*20.5 +
    19.5)`` encodes, which biases every decoded angle by half a bin (4.4 degrees); we decode to the centre.
    """
    return (np.asarray(bins, dtype=float) - 20.0) * np.pi / _BIN_SCALE
