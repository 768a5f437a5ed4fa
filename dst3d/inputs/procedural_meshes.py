"""Procedural, clearly asymmetric meshes for the embedded default.

All meshes are built in the project's canonical frame (see :mod:`dst3d.geometry`): z up, front towards -y.
Each category has a large chiral feature (a part on one side only), so that no two viewpoints show the same
image, mirrored views included.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dst3d.inputs.meshes import Mesh

# The 12 triangles of a unit cube over corners indexed by bits (x: bit 0, y: bit 1, z: bit 2), outward normals.
_BOX_TRIANGLES = np.array(
    [
        [0, 2, 3],
        [0, 3, 1],  # z min
        [4, 5, 7],
        [4, 7, 6],  # z max
        [0, 1, 5],
        [0, 5, 4],  # y min
        [2, 6, 7],
        [2, 7, 3],  # y max
        [0, 4, 6],
        [0, 6, 2],  # x min
        [1, 3, 7],
        [1, 7, 5],  # x max
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
        block = vertices[end * segments : (end + 1) * segments]
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
        [
            [0, 1, bottom_tip],
            [4, top_tip, 5],
            [0, top_tip, 4],
            [0, bottom_tip, top_tip],
            [1, 5, top_tip],
            [1, top_tip, bottom_tip],
        ]
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
