"""Stand-in asset trees in the published layouts, with tiny real files, so that a preset can be planned (and its
first jobs run) without the downloads:

* ``3d-dst``: a ``3d-dst-models.csv`` (positional columns, its own header names) whose models are split between a
  ShapeNetCore tree (``<synset>/<id>/models/model_normalized.obj``, v2) and an Objaverse cache
  (``glbs/000-000/<uid>.glb``), plus a DTD tree and background photos;
* ``pascal3d-cad``: a PASCAL3D+ ``CAD/<category>/<nn>.off`` folder, plus the same DTD tree and backgrounds.

``python -m dst3d.testing.stand_in <layout> <root> <category> [<category> ...]`` writes one under ``root`` and
prints the ``assets`` keys to point a config at it; ``python -m dst3d.testing.stand_in preset <preset.yaml> <root>``
writes everything a preset reads at its own paths below ``root`` (:func:`write_preset_tree`). The meshes are boxes
of a few triangles; the images 16-32 px.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import numpy as np

from dst3d.inputs.meshes import write_obj, write_off
from dst3d.io import write_image

_BOX_CORNERS = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.25, 0.25) for z in (-0.2, 0.2)], float)
_BOX_FACES = np.array(
    [[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1], [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4],
     [1, 5, 7], [1, 7, 3]],
    int,
)  # fmt: skip


def write_glb(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """A minimal binary glTF 2.0 file: one mesh, positions and triangle indices."""
    positions = np.asarray(vertices, "<f4").tobytes()
    indices = np.asarray(faces, "<u4").reshape(-1).tobytes()
    binary = positions + indices
    binary += b"\0" * (-len(binary) % 4)
    document = {
        "asset": {"version": "2.0"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1}]}],
        "buffers": [{"byteLength": len(binary)}],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": len(positions), "target": 34962},
            {"buffer": 0, "byteOffset": len(positions), "byteLength": len(indices), "target": 34963},
        ],
        "accessors": [
            {
                "bufferView": 0,
                "componentType": 5126,
                "count": len(vertices),
                "type": "VEC3",
                "min": np.asarray(vertices).min(0).tolist(),
                "max": np.asarray(vertices).max(0).tolist(),
            },
            {"bufferView": 1, "componentType": 5125, "count": int(np.asarray(faces).size), "type": "SCALAR"},
        ],
    }
    text = json.dumps(document).encode()
    text += b" " * (-len(text) % 4)
    chunks = struct.pack("<I4s", len(text), b"JSON") + text + struct.pack("<I4s", len(binary), b"BIN\0") + binary
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<4sII", b"glTF", 2, 12 + len(chunks)) + chunks)


def _images(root: Path, count: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for number in range(count):
        write_image(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), root / f"image_{number:03d}.jpg")


def write_textures_and_backgrounds(root: Path) -> dict[str, str]:
    """A DTD tree (``images/<class>/*.jpg``, no split files) and a folder of background photos."""
    for texture_class in ("banded", "dotted"):
        (root / "dtd" / "images" / texture_class).mkdir(parents=True, exist_ok=True)
        _images(root / "dtd" / "images" / texture_class, 5, len(texture_class))
    (root / "backgrounds").mkdir(parents=True, exist_ok=True)
    _images(root / "backgrounds", 10, 7)
    return {"textures_dir": str(root / "dtd"), "backgrounds_dir": str(root / "backgrounds")}


def write_3d_dst(root: Path, categories: list[str], models_per_category: int = 2) -> dict[str, str]:
    """The released layout: the model table, ShapeNetCore v2 and an Objaverse cache (models alternate)."""
    rows = ["synset,model,dist,azim,elev,strength,pose_sampling"]  # names the official code never reads
    for category in categories:
        for number in range(models_per_category):
            model_id = f"{category[-4:]}{number:028x}"
            if number % 2 == 0:
                folder = root / "ShapeNetCore.v2" / "02958343" / model_id / "models"
                folder.mkdir(parents=True, exist_ok=True)
                write_obj(folder / "model_normalized.obj", _BOX_CORNERS, _BOX_FACES)
            else:
                write_glb(root / "objaverse" / "glbs" / "000-000" / f"{model_id}.glb", _BOX_CORNERS, _BOX_FACES)
            rows.append(f"{category},{model_id},2.0,{15 * number},0,1,3")
    (root / "3d-dst-models.csv").write_text("\n".join(rows) + "\n")
    (root / "objaverse").mkdir(parents=True, exist_ok=True)
    (root / "ShapeNetCore.v2").mkdir(parents=True, exist_ok=True)
    return {
        "models_format": "3d-dst",
        "models_csv": str(root / "3d-dst-models.csv"),
        "shapenet_dir": str(root / "ShapeNetCore.v2"),
        "objaverse_dir": str(root / "objaverse"),
        **write_textures_and_backgrounds(root),
    }


def write_pascal3d_cad(root: Path, categories: list[str], models_per_category: int = 2) -> dict[str, str]:
    """A PASCAL3D+ ``CAD/<category>/<nn>.off`` folder."""
    for category in categories:
        for number in range(1, models_per_category + 1):
            path = root / "CAD" / category / f"{number:02d}.off"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_off(path, _BOX_CORNERS * (1 + 0.1 * number), _BOX_FACES)
    return {"models_format": "pascal3d-cad", "cad_dir": str(root / "CAD"), **write_textures_and_backgrounds(root)}


LAYOUTS = {"3d-dst": write_3d_dst, "pascal3d-cad": write_pascal3d_cad}


def _imagefolder(root: Path, classes: list[str]) -> None:
    for number, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        write_image(np.full((16, 16, 3), number % 255, np.uint8), root / name / f"{name}_0.JPEG")


def write_preset_tree(preset: Path, root: Path) -> None:
    """Everything a preset (config/p3d_diffusion.yaml, config/dst3d_imagenet.yaml) reads under ``data/``, written
    at those paths below ``root`` in the published layouts (tiny files), so that ``snakemake -n`` with the preset
    in ``root`` plans the whole run."""
    import yaml

    config = yaml.safe_load(Path(preset).read_text())
    categories, folders = config["categories"], config["assets"]["folders"]
    root = Path(root)
    if folders["models_format"] == "pascal3d-cad":
        written = write_pascal3d_cad(root / Path(folders["cad_dir"]).parent, categories)
    else:
        written = write_3d_dst(root / "stand-in", categories)
        for key in ("models_csv", "shapenet_dir", "objaverse_dir"):
            target = root / folders[key]
            target.parent.mkdir(parents=True, exist_ok=True)
            Path(written[key]).rename(target)  # the table names no paths: its ids resolve in the moved folders
    for key in ("textures_dir", "backgrounds_dir"):
        target = root / folders[key]
        target.parent.mkdir(parents=True, exist_ok=True)
        Path(written[key]).rename(target)
    class_names = config.get("prompts", {}).get("class_names")
    if isinstance(class_names, str):
        (root / class_names).parent.mkdir(parents=True, exist_ok=True)
        (root / class_names).write_text("".join(f"{name} stand-in class {name}\n" for name in categories))
    for entry in config.get("evaluate", {}).get("real_sets", []):
        (root / entry["root"]).mkdir(parents=True, exist_ok=True)
    table = config.get("tables", {}).get("classification")
    if table:
        for key in ("train", "val"):
            _imagefolder(root / table[key], categories)
        for ood in table.get("ood", {}).values():
            _imagefolder(root / ood, categories[: max(1, len(categories) // 2)])


def main(argv: list[str]) -> None:
    if len(argv) == 3 and argv[0] == "preset":
        write_preset_tree(Path(argv[1]), Path(argv[2]))
        return
    if len(argv) < 3 or argv[0] not in LAYOUTS:
        raise SystemExit(
            f"usage: python -m dst3d.testing.stand_in {{{','.join(LAYOUTS)}}} <root> <category> ... | "
            "preset <config/preset.yaml> <root>"
        )
    folders = LAYOUTS[argv[0]](Path(argv[1]), argv[2:])
    print(json.dumps({"assets": {"source": "folders", "folders": folders}}, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
