"""NeMo's cost: seconds per training epoch (correspondences once, then the contrastive epochs) and per image of
render-and-compare inference, on the CPU or a CUDA GPU, for a given backbone, input size and mesh size.

The crops are random images of a cuboid category seen from random poses with their exact cameras: the figures
are compute, not accuracy (the workflow's tables measure accuracy). Run it with the NeMo interpreter:
``.venv-nemo/bin/python bench/nemo.py [--images 256] [--backbone resnet18] [--input-size 64] [--vertices 1000]
[--epochs 2] [--batch-size 16] [--device cpu] [--threads 2]``. It prints one line per figure.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dst3d.nemo import raster, search, training  # noqa: E402
from dst3d.nemo.mesh import cuboid_mesh  # noqa: E402


def settings(arguments) -> dict:
    return {
        "backbone": arguments.backbone,
        "pretrained": False,
        "input_size": arguments.input_size,
        "context": 1.2,
        "feature_dim": 128,
        "epochs": arguments.epochs,
        "batch_size": arguments.batch_size,
        "lr": 0.001,
        "weight_decay": 0.0001,
        "bank_momentum": 0.9,
        "background_features": 2560,
        "background_per_image": 20,
        "temperature": 0.07,
        "neighbour_distance": 0.1,
        "device": arguments.device,
        "search": {
            "azimuths": 12,
            "elevations": [-0.2, 0.2, 0.6],
            "thetas": [0.0],
            "steps": arguments.steps,
            "lr": 0.05,
        },
    }


def crops(count: int, size: int, mesh, seed: int) -> training.Crops:
    rng = np.random.default_rng(seed)
    camera = torch.tensor(raster.centred_camera(size, training.CENTRED_FOCAL * size), dtype=torch.float32)
    angles = torch.tensor(
        np.stack([rng.uniform(0, 2 * np.pi, count), rng.uniform(-0.3, 0.9, count), np.zeros(count)], 1),
        dtype=torch.float32,
    )
    distance = search.fit_distance(torch.from_numpy(mesh.vertices), angles, camera, size / 1.2)
    images = torch.from_numpy(rng.integers(0, 256, (count, 3, size, size), dtype=np.uint8))
    return training.Crops(
        images, ["car"] * count, camera.expand(count, 3, 3).clone(), torch.cat([angles, distance[:, None]], 1)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--vertices", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    arguments = parser.parse_args()
    mesh = cuboid_mesh(np.array([-0.27, -0.5, -0.25]), np.array([0.27, 0.5, 0.25]), arguments.vertices)
    config = settings(arguments)
    model = training.build({"car": mesh}, config, seed=0)
    data = crops(arguments.images, arguments.input_size, mesh, seed=0)
    print(
        f"NeMo bench: {arguments.images} crops of {arguments.input_size} px, {arguments.backbone}, "
        f"{len(mesh.vertices)} vertices ({len(mesh.faces)} faces), device {arguments.device}, "
        f"{arguments.threads} threads, torch {torch.__version__}"
    )
    started = time.perf_counter()
    training.correspondences(model, data, arguments.threads)
    print(
        f"correspondences: {time.perf_counter() - started:.2f} s ({(time.perf_counter() - started) / len(data) * 1000:.1f} ms per image)"
    )
    started = time.perf_counter()
    history = training.train(model, data, arguments.epochs, 0.001, 0, arguments.threads)
    total = time.perf_counter() - started
    epochs = [entry["seconds"] for entry in history]
    print(
        f"training: {np.median(epochs):.2f} s per epoch (median of {len(epochs)}; {total:.1f} s in all, correspondences included)"
    )
    sample = data.subset(range(min(64, len(data))))
    started = time.perf_counter()
    training.predict(model, sample, arguments.batch_size, arguments.threads)
    seconds = time.perf_counter() - started
    print(f"inference: {seconds / len(sample) * 1000:.0f} ms per image ({len(sample)} images, {arguments.steps} steps)")


if __name__ == "__main__":
    main()
