"""Triangle meshes as (vertices, faces) arrays, minimal OBJ and OFF readers and writers, the normalisation of a
model (largest bounding-box side 1, centred) and the axis conventions of mesh files.

A mesh file's axes are named as Blender's importers name them: ``forward`` is the file axis that becomes +y
of the canonical frame and ``up`` the one that becomes +z (so the file's ``-forward`` side is the front).
ShapeNetCore v2 ``model_normalized.obj`` files and glTF files are y up (``forward NEGATIVE_Z, up Y``, the
default of Blender's OBJ importer, which 3D-DST used); PASCAL3D+ CAD ``.off`` files and ``.blend`` files are
already in the canonical frame (``forward Y, up Z``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

Mesh = tuple[np.ndarray, np.ndarray]  # (V x 3 float vertices, F x 3 int triangle indices)


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
            raise ValueError(
                f"the header announces {vertex_count} vertices and {face_count} faces, the file holds fewer or none"
            )
        vertices = np.array([fields[:3] for fields in body[:vertex_count]], dtype=float).reshape(vertex_count, 3)
        face_rows = body[vertex_count : vertex_count + face_count]
        if all(fields[0] == "3" and len(fields) == 4 for fields in face_rows):  # all triangles: the fast path
            faces = np.array([fields[1:] for fields in face_rows], dtype=int)
        else:
            faces = []
            for fields in face_rows:
                corners = [int(value) for value in fields[1 : 1 + int(fields[0])]]
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


def model_axes(model, settings: dict) -> tuple[str, str]:
    """A model's file axes (forward, up): its table columns where set, else ``render.axes`` of its format
    (``settings``: the render block, or any mapping with its ``axes``)."""
    forward, up = model.get("forward_axis"), model.get("up_axis")
    if isinstance(forward, str) and forward and isinstance(up, str) and up:
        return forward, up
    default = settings["axes"][model["format"]]
    return default["forward"], default["up"]


#: The mesh formats dst3d reads itself (the others only Blender reads, when rendering).
READERS = {"obj": read_obj, "off": read_off}


def canonical_mesh(model, axes: dict) -> Mesh:
    """A model file's mesh as the renders place it before any stretch: the file's axes turned into the canonical
    frame (``axes``: the ``render.axes`` block; the model's forward_axis/up_axis columns win) and normalised
    (largest bounding-box side 1, centred). ``model`` is a model table row with ``path`` and ``format``, which
    must be one of :data:`READERS` (KeyError otherwise: callers say which of their features needs it)."""
    vertices, faces = READERS[model["format"]](model["path"])
    vertices = vertices @ axis_matrix(*model_axes(model, {"axes": axes})).T
    centre, scale = normalisation(vertices)
    return (vertices - centre) * scale, faces
