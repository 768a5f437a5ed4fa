"""Procedural, clearly asymmetric meshes for the embedded default, minimal OBJ and OFF readers/writers, and
the axis conventions of mesh files.

All meshes are built in the project's canonical frame (see :mod:`dst3d.geometry`): z up, front towards -y.
Each category has a large chiral feature (a part on one side only), so that no two viewpoints show the same
image, mirrored views included.

A mesh file's axes are named as Blender's importers name them: ``forward`` is the file axis that becomes +y
of the canonical frame and ``up`` the one that becomes +z (so the file's ``-forward`` side is the front).
ShapeNetCore v2 ``model_normalized.obj`` files and glTF files are y up (``forward NEGATIVE_Z, up Y``, the
default of Blender's OBJ importer, which 3D-DST used); PASCAL3D+ CAD ``.off`` files and ``.blend`` files are
already in the canonical frame (``forward Y, up Z``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

Mesh = tuple[np.ndarray, np.ndarray]  # (V x 3 float vertices, F x 3 int triangle indices)

# The 12 triangles of a unit cube over corners indexed by bits (x: bit 0, y: bit 1, z: bit 2), outward normals.
_BOX_TRIANGLES = np.array(
    [
        [0, 2, 3], [0, 3, 1],  # z min
        [4, 5, 7], [4, 7, 6],  # z max
        [0, 1, 5], [0, 5, 4],  # y min
        [2, 6, 7], [2, 7, 3],  # y max
        [0, 4, 6], [0, 6, 2],  # x min
        [1, 3, 7], [1, 7, 5],  # x max
    ]
)


def box(center: tuple[float, float, float], size: tuple[float, float, float]) -> Mesh:
    """An axis-aligned box with the given centre and side lengths."""
    center, half = np.asarray(center, float), np.asarray(size, float) / 2
    corners = np.array([[(1 if (i >> k) & 1 else -1) for k in range(3)] for i in range(8)], float)
    return center + corners * half, _BOX_TRIANGLES.copy()


def cylinder(center: tuple[float, float, float], radius: float, length: float, axis: int, segments: int = 12) -> Mesh:
    """A closed cylinder along coordinate ``axis`` (0 = x, 1 = y, 2 = z)."""
    angles = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    ring = np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)
    others = [a for a in range(3) if a != axis]
    vertices = np.zeros((2 * segments + 2, 3))
    for end, offset in enumerate((-length / 2, length / 2)):
        block = vertices[end * segments:(end + 1) * segments]
        block[:, others[0]], block[:, others[1]] = ring[:, 0], ring[:, 1]
        block[:, axis] = offset
    vertices[2 * segments, axis] = -length / 2
    vertices[2 * segments + 1, axis] = length / 2
    faces = []
    for i in range(segments):
        j = (i + 1) % segments
        faces += [[i, j, segments + j], [i, segments + j, segments + i]]
        faces += [[2 * segments, j, i], [2 * segments + 1, segments + i, segments + j]]
    return vertices + np.asarray(center, float), np.array(faces)


def merge(parts: list[Mesh]) -> Mesh:
    """Concatenate meshes into one vertex and face list."""
    vertices, faces, offset = [], [], 0
    for part_vertices, part_faces in parts:
        vertices.append(part_vertices)
        faces.append(part_faces + offset)
        offset += len(part_vertices)
    return np.concatenate(vertices), np.concatenate(faces)


def _jitter(rng: np.random.Generator, value: float, spread: float = 0.15) -> float:
    return float(value * rng.uniform(1 - spread, 1 + spread))


def car(rng: np.random.Generator) -> Mesh:
    """Body, cabin set back, four wheels, a roof box over the left (-x) half and a spare wheel at the back right."""
    length, width, height = _jitter(rng, 1.0, 0.05), _jitter(rng, 0.45), _jitter(rng, 0.18)
    wheel_radius = _jitter(rng, 0.09)
    ground = wheel_radius
    cabin_length = _jitter(rng, 0.45)
    parts = [
        box((0, 0, ground + height / 2), (width, length, height)),
        box((0, 0.12, ground + height + 0.08), (width * 0.9, cabin_length, 0.16)),
        box((-width * 0.22, 0.12, ground + height + 0.2), (width * 0.4, cabin_length * 0.8, 0.08)),
        cylinder((width * 0.25, length / 2 + 0.04, ground + height * 0.6), 0.07, 0.06, axis=1),
    ]
    for x in (-width / 2, width / 2):
        for y in (-length * 0.32, length * 0.32):
            parts.append(cylinder((x, y, wheel_radius), wheel_radius, 0.06, axis=0))
    return merge(parts)


def chair(rng: np.random.Generator) -> Mesh:
    """Seat, backrest at the back (+y), four legs and one armrest block on the right (+x) only."""
    seat, seat_height = _jitter(rng, 0.5), _jitter(rng, 0.45)
    back_height = _jitter(rng, 0.5)
    leg = 0.05
    parts = [
        box((0, 0, seat_height), (seat, seat, 0.06)),
        box((0, seat / 2 - 0.03, seat_height + back_height / 2), (seat, 0.06, back_height)),
        box((seat / 2 + 0.04, 0.02, seat_height + 0.14), (0.08, seat * 0.8, 0.22)),
    ]
    for x in (-seat / 2 + leg / 2, seat / 2 - leg / 2):
        for y in (-seat / 2 + leg / 2, seat / 2 - leg / 2):
            parts.append(box((x, y, seat_height / 2), (leg, leg, seat_height)))
    return merge(parts)


def airplane(rng: np.random.Generator) -> Mesh:
    """Fuselage along y (nose at -y), wings, tail fin at the back and one engine pod under the right wing."""
    length, span = _jitter(rng, 1.0, 0.05), _jitter(rng, 0.9, 0.1)
    radius = _jitter(rng, 0.07)
    parts = [
        cylinder((0, 0, 0), radius, length, axis=1),
        box((0, -length / 2 - 0.04, 0), (radius * 1.2, 0.08, radius * 1.2)),
        box((0, -0.02, 0), (span, _jitter(rng, 0.18), 0.03)),
        box((0, length / 2 - 0.08, radius + 0.1), (0.03, 0.14, 0.2)),
        box((0, length / 2 - 0.06, 0.02), (span * 0.35, 0.1, 0.02)),
        cylinder((span * 0.28, -0.06, -radius - 0.02), 0.05, 0.22, axis=1),
    ]
    return merge(parts)


def boat(rng: np.random.Generator) -> Mesh:
    """Hull with a pointed bow at -y, a cabin at the back left (-x) and a mast at the front right (+x)."""
    length, width = _jitter(rng, 1.0, 0.05), _jitter(rng, 0.35)
    hull_height = _jitter(rng, 0.15)
    bow = np.array([[0, -length / 2 - 0.15, hull_height], [0, -length / 2 - 0.15, 0.0]])
    hull_vertices, hull_faces = box((0, 0.0, hull_height / 2), (width, length, hull_height))
    # A wedge bow: two triangles per side from the front corners of the hull to the bow tip.
    vertices = np.concatenate([hull_vertices, bow])
    top_tip, bottom_tip = len(hull_vertices), len(hull_vertices) + 1
    bow_faces = np.array(
        [[0, 1, bottom_tip], [4, top_tip, 5], [0, top_tip, 4], [0, bottom_tip, top_tip],
         [1, 5, top_tip], [1, top_tip, bottom_tip]]
    )
    parts = [
        (vertices, np.concatenate([hull_faces, bow_faces])),
        box((-width * 0.2, length * 0.22, hull_height + 0.1), (width * 0.55, length * 0.35, 0.2)),
        cylinder((width * 0.25, -length * 0.2, hull_height + 0.25), 0.02, 0.5, axis=2),
    ]
    return merge(parts)


#: The embedded categories and their builders.
BUILDERS: dict[str, Callable[[np.random.Generator], Mesh]] = {
    "car": car,
    "chair": chair,
    "airplane": airplane,
    "boat": boat,
}

#: CAD keywords of the embedded categories, used by the prompt templates as ShapeNet tags are.
KEYWORDS: dict[str, list[str]] = {
    "car": ["car", "auto", "automobile", "sedan"],
    "chair": ["chair", "armchair", "seat"],
    "airplane": ["airplane", "aeroplane", "plane", "jet"],
    "boat": ["boat", "ship", "vessel"],
}


AXES = ("X", "Y", "Z", "NEGATIVE_X", "NEGATIVE_Y", "NEGATIVE_Z")

#: File axes (forward, up) of ShapeNetCore v2 / glTF (y up) and of files already in the canonical frame (z up).
Y_UP = ("NEGATIVE_Z", "Y")
Z_UP = ("Y", "Z")


def _axis_vector(name: str) -> np.ndarray:
    if name not in AXES:
        raise ValueError(f"unknown axis {name!r}; use one of {list(AXES)}")
    vector = np.zeros(3)
    vector["XYZ".index(name[-1])] = -1.0 if name.startswith("NEGATIVE_") else 1.0
    return vector


def axis_matrix(forward: str, up: str) -> np.ndarray:
    """The rotation taking file coordinates to the canonical frame: file ``forward`` -> +y, ``up`` -> +z.

    Equals Blender's ``bpy_extras.io_utils.axis_conversion(from_forward=forward, from_up=up)``; e.g.
    ``axis_matrix("NEGATIVE_Z", "Y")`` maps a y-up file point (x, y, z) to (x, -z, y).
    """
    forward_vector, up_vector = _axis_vector(forward), _axis_vector(up)
    if abs(forward_vector @ up_vector) > 0:
        raise ValueError(f"forward axis {forward} and up axis {up} must be different axes")
    return np.stack([np.cross(forward_vector, up_vector), forward_vector, up_vector])


def write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Write a triangle mesh as Wavefront OBJ (1-based indices), coordinates as given."""
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    Path(path).write_text("\n".join(lines) + "\n")


def read_obj(path: Path) -> Mesh:
    """Vertices and triangulated faces of an OBJ file (fan triangulation of polygons; texture/normal indices dropped)."""
    vertices, faces = [], []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            try:
                if fields[0] == "v":
                    vertices.append([float(value) for value in fields[1:4]])
                elif fields[0] == "f":
                    corners = [int(field.split("/")[0]) for field in fields[1:]]
                    corners = [c - 1 if c > 0 else len(vertices) + c for c in corners]
                    faces += [[corners[0], corners[k], corners[k + 1]] for k in range(1, len(corners) - 1)]
            except (ValueError, IndexError) as error:
                raise ValueError(f"{path}: line {number} is not valid OBJ: {line.strip()!r}") from error
    if not vertices or not faces:
        raise ValueError(f"{path}: no vertices or faces: is this an OBJ mesh?")
    return np.array(vertices, float), np.array(faces, int)


def write_off(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Write a triangle mesh as OFF (the format of the PASCAL3D+ CAD models), coordinates as given."""
    lines = ["OFF", f"{len(vertices)} {len(faces)} 0"]
    lines += [f"{x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    lines += [f"{len(face)} " + " ".join(str(int(index)) for index in face) for face in faces]
    Path(path).write_text("\n".join(lines) + "\n")


def read_off(path: Path) -> Mesh:
    """Vertices and triangulated faces (fan) of an OFF file.

    Accepts the ``OFF`` header on its own line or run into the counts (``OFF8 6 0``, as in ModelNet), ``#``
    comments, blank lines and per-face colours after the indices. Raises ValueError naming the file and what
    is wrong (missing header, short file, an index out of range).
    """
    with open(path, encoding="utf-8", errors="replace") as handle:
        tokens_by_line = [line.split("#", 1)[0].split() for line in handle]
    lines = [tokens for tokens in tokens_by_line if tokens]
    if not lines or not lines[0][0].startswith("OFF"):
        raise ValueError(f"{path}: no OFF header: is this an OFF mesh?")
    header = lines[0]
    counts_fields = ([header[0][3:]] if header[0][3:] else []) + header[1:]
    body = lines[1:]
    if not counts_fields:
        if not body:
            raise ValueError(f"{path}: OFF file ends after its header")
        counts_fields, body = body[0], body[1:]
    try:
        vertex_count, face_count = int(counts_fields[0]), int(counts_fields[1])
        if len(body) < vertex_count + face_count or not face_count:
            raise ValueError(f"the header announces {vertex_count} vertices and {face_count} faces, "
                             "the file holds fewer or none")
        vertices = np.array([fields[:3] for fields in body[:vertex_count]], dtype=float).reshape(vertex_count, 3)
        face_rows = body[vertex_count:vertex_count + face_count]
        if all(fields[0] == "3" and len(fields) == 4 for fields in face_rows):  # all triangles: the fast path
            faces = np.array([fields[1:] for fields in face_rows], dtype=int)
        else:
            faces = []
            for fields in face_rows:
                corners = [int(value) for value in fields[1:1 + int(fields[0])]]
                if len(corners) < 3:
                    raise ValueError(f"face {fields} has fewer than 3 corners")
                faces += [[corners[0], corners[k], corners[k + 1]] for k in range(1, len(corners) - 1)]
            faces = np.array(faces, dtype=int)
    except (ValueError, IndexError) as error:
        raise ValueError(f"{path}: not a valid OFF mesh: {error}") from error
    if faces.min() < 0 or faces.max() >= vertex_count:
        raise ValueError(f"{path}: a face index lies outside 0..{vertex_count - 1}")
    return vertices, faces


def normalisation(vertices: np.ndarray) -> tuple[np.ndarray, float]:
    """(centre, scale) that map a mesh to the 3D-DST normal form: ``(v - centre) * scale`` has its bounding
    box centred at the origin with its largest side 1."""
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    largest_side = float((high - low).max())
    if largest_side <= 0:
        raise ValueError("mesh has a zero-size bounding box")
    return (low + high) / 2, 1.0 / largest_side
