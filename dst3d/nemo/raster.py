"""The neural mesh seen through the project's camera with PyTorch3D: differentiable extrinsics of a pose, the
cameras of object crops, rasterisation, rendered vertex features, and the visible vertices of an annotated pose
with the feature-map positions they land at.

Cameras follow :mod:`dst3d.geometry`: a pose is (azimuth, elevation, theta, distance) in the PASCAL3D+
convention, ``K, R, t`` the OpenCV camera with the pixel-corner origin (``K @ (R X + t)`` gives pixels whose
top-left pixel spans [0, 1]). PyTorch3D's OpenCV conversion (``cameras_from_opencv_projection``) puts the NDC
centre at ``(width / 2, height / 2)`` of that convention, so the two agree without a half-pixel shift.

A feature map of stride 8 is a camera of its own: its cell ``(row, column)`` covers image pixels ``[8 column, 8
column + 8)``, so its intrinsics are ``diag(1/8, 1/8, 1) @ K`` in the same convention (:func:`scaled_camera`).

Only this module and those that import it need PyTorch3D (the NeMo interpreter, README "NeMo").
"""

from __future__ import annotations

import math

import numpy as np
import torch
from pytorch3d.renderer import MeshRasterizer, RasterizationSettings
from pytorch3d.structures import Meshes
from pytorch3d.utils import cameras_from_opencv_projection

_GL_TO_CV = (1.0, -1.0, -1.0)


def _rot_x(angle: torch.Tensor) -> torch.Tensor:
    c, s, one, zero = torch.cos(angle), torch.sin(angle), torch.ones_like(angle), torch.zeros_like(angle)
    return torch.stack([one, zero, zero, zero, c, -s, zero, s, c], dim=-1).reshape(*angle.shape, 3, 3)


def _rot_z(angle: torch.Tensor) -> torch.Tensor:
    c, s, one, zero = torch.cos(angle), torch.sin(angle), torch.ones_like(angle), torch.zeros_like(angle)
    return torch.stack([c, -s, zero, s, c, zero, zero, zero, one], dim=-1).reshape(*angle.shape, 3, 3)


def extrinsics(poses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Object-to-camera ``R`` (B x 3 x 3) and ``t`` (B x 3), OpenCV axes, of B poses (azimuth, elevation, theta
    in radians, distance): :func:`dst3d.geometry.extrinsics_cv` for a batch, differentiable in the pose."""
    azimuth, elevation, theta, distance = poses.unbind(dim=-1)
    rotation_gl = _rot_z(theta) @ _rot_x(elevation - math.pi / 2) @ _rot_z(-azimuth)
    rotation = rotation_gl * torch.tensor(_GL_TO_CV, dtype=poses.dtype, device=poses.device).view(3, 1)
    centre = distance.unsqueeze(-1) * torch.stack(
        [torch.cos(elevation) * torch.sin(azimuth), -torch.cos(elevation) * torch.cos(azimuth), torch.sin(elevation)],
        dim=-1,
    )
    return rotation, -(rotation @ centre.unsqueeze(-1)).squeeze(-1)


def project(vertices: torch.Tensor, R: torch.Tensor, t: torch.Tensor, K: torch.Tensor):
    """Pixels (B x V x 2) and depths (B x V) of vertices (V x 3, or B x V x 3) under B cameras."""
    camera = vertices @ R.transpose(-1, -2) + t.unsqueeze(-2)
    homogeneous = camera @ K.transpose(-1, -2)
    return homogeneous[..., :2] / homogeneous[..., 2:3], camera[..., 2]


def scaled_camera(K: torch.Tensor, factor: float) -> torch.Tensor:
    """The intrinsics of the same camera on an image scaled by ``factor`` (pixel-corner origin kept)."""
    scale = torch.tensor([factor, factor, 1.0], dtype=K.dtype, device=K.device)
    return K * scale.view(3, 1)


def crop_camera(K: np.ndarray, crop: tuple[float, float, float, float], size: int) -> np.ndarray:
    """The intrinsics of a square crop ``(x0, y0, x1, y1)`` (pixels of the image ``K`` belongs to) resized to
    ``size`` x ``size``."""
    x0, y0, x1, _ = crop
    factor = size / (x1 - x0)
    shift = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])
    return np.diag([factor, factor, 1.0]) @ shift @ np.asarray(K, float).reshape(3, 3)


def centred_camera(size: int, focal: float) -> np.ndarray:
    """The camera assumed for a crop whose camera is unknown (real images, and every image at inference): the
    principal point at the crop's centre, ``focal`` pixels; the pose search fits the distance."""
    return np.array([[focal, 0.0, size / 2], [0.0, focal, size / 2], [0.0, 0.0, 1.0]])


def meshes(vertices: list[torch.Tensor], faces: list[torch.Tensor]) -> Meshes:
    """A PyTorch3D batch of one mesh per image (the image's category's neural mesh)."""
    return Meshes(verts=[v.float() for v in vertices], faces=[f.long() for f in faces])


def rasterise(batch: Meshes, R: torch.Tensor, t: torch.Tensor, K: torch.Tensor, shape: tuple[int, int]):
    """PyTorch3D fragments (``pix_to_face`` B x H x W x 1 into the packed faces, ``bary_coords`` B x H x W x 1 x
    3, ``zbuf``) of one mesh per camera on an image of ``shape`` (rows, columns); hard edges, one face per pixel,
    differentiable in the vertices' screen positions through the barycentric coordinates."""
    size = torch.tensor([shape], dtype=torch.float32, device=R.device).expand(len(R), 2)
    cameras = cameras_from_opencv_projection(R.float(), t.float(), K.float(), size)
    settings = RasterizationSettings(image_size=tuple(shape), blur_radius=0.0, faces_per_pixel=1, bin_size=0)
    return MeshRasterizer(cameras=cameras, raster_settings=settings)(batch)


def render_features(batch: Meshes, vertex_features: list[torch.Tensor], fragments) -> tuple[torch.Tensor, torch.Tensor]:
    """The unit vertex features interpolated over each rendered face (B x dim x H x W, renormalised, zero off
    the mesh) and the mesh's silhouette (B x H x W, bool)."""
    index = fragments.pix_to_face[..., 0]
    silhouette = index >= 0
    corners = batch.faces_packed()[index.clamp(min=0)]  # B x H x W x 3 packed vertex indices
    features = torch.cat(vertex_features)[corners]  # B x H x W x 3 x dim: only the pixels' own faces
    rendered = (fragments.bary_coords[..., 0, :, None] * features).sum(dim=-2)
    rendered = torch.nn.functional.normalize(rendered, dim=-1) * silhouette.unsqueeze(-1)
    return rendered.permute(0, 3, 1, 2), silhouette


def visible_points(
    batch: Meshes,
    R: torch.Tensor,
    t: torch.Tensor,
    K: torch.Tensor,
    shape: tuple[int, int],
    tolerance: float = 0.02,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per image, the vertices the rasterised mesh shows under its camera and where they land: (vertex indices,
    N x 2 pixel positions (x, y) in the image of ``shape``).

    A vertex is visible when it projects inside the image in front of the camera and lies on the surface the
    rasteriser shows at its pixel: within ``tolerance`` times the mesh's largest side of the plane of the face
    there (a hidden vertex lies behind that face). A vertex whose pixel is off the silhouette (on its edge) is
    judged by the first covered pixel among the 8 around. Plane distances, not depths, so that a face seen at a
    grazing angle (whose depth changes fast across a pixel) keeps its vertices."""
    fragments = rasterise(batch, R, t, K, shape)
    shown = fragments.pix_to_face[..., 0]  # B x H x W, packed face index, -1 off the mesh
    face_vertices = batch.verts_packed()[batch.faces_packed()]  # F x 3 x 3, object frame
    normals = torch.nn.functional.normalize(
        torch.cross(face_vertices[:, 1] - face_vertices[:, 0], face_vertices[:, 2] - face_vertices[:, 0], dim=1),
        dim=1,
    )
    rows, columns = shape
    found = []
    for image, vertices in enumerate(batch.verts_list()):
        pixels, depth = project(vertices.to(R), R[image], t[image], K[image])
        column, row = torch.floor(pixels[:, 0]).long(), torch.floor(pixels[:, 1]).long()
        inside = (column >= 0) & (column < columns) & (row >= 0) & (row < rows) & (depth > 0)
        padded = torch.nn.functional.pad(shown[image], (1, 1, 1, 1), value=-1)
        face = torch.full((len(vertices),), -1, dtype=torch.long, device=shown.device)
        for d_row, d_column in [(1, 1)] + [(r, c) for r in range(3) for c in range(3) if (r, c) != (1, 1)]:
            here = padded[(row + d_row).clamp(0, rows + 1), (column + d_column).clamp(0, columns + 1)]
            face = torch.where(face < 0, here, face)
        covered = face >= 0
        index = face.clamp(min=0)
        offset = ((vertices.to(normals) - face_vertices[index, 0]) * normals[index]).sum(dim=1).abs()
        extent = float((vertices.amax(dim=0) - vertices.amin(dim=0)).max())
        keep = inside & covered & (offset <= tolerance * extent)
        found.append((torch.nonzero(keep).flatten(), pixels[keep]))
    return found


def sample(feature_map: torch.Tensor, points: torch.Tensor, stride: int) -> torch.Tensor:
    """The features (N x dim, bilinear, renormalised) of a dim x h x w map at image pixel positions ``points``
    (N x 2, x and y of the image the map has ``stride`` pixels per cell of)."""
    rows, columns = feature_map.shape[-2:]
    # grid_sample with align_corners=False: -1 and 1 are the map's outer edges, cell centres at (i + 0.5) / n.
    normalised = torch.stack([points[:, 0] / (stride * columns), points[:, 1] / (stride * rows)], dim=1) * 2 - 1
    grid = normalised.view(1, 1, -1, 2).to(feature_map)
    values = torch.nn.functional.grid_sample(feature_map[None], grid, mode="bilinear", align_corners=False)
    return torch.nn.functional.normalize(values[0, :, 0].T, dim=1)
