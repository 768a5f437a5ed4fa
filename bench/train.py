"""Training throughput of the train stage (dst3d.training.loop.train) against plain torchvision loops over the same
images, model and optimiser.

The images are the embedded default's generated training images (built with the workflow in ``--workdir``, a
temporary folder unless given; an existing one is reused); the model, input size, batch size and optimiser are
the configuration's ``train`` block (ResNet-18 at 64 px, batch 32, SGD). Each method trains ``--epochs``
epochs from the same initial weights on ``--threads`` torch threads:

* stage: ``dst3d.training.cropping.crops`` decodes every crop once (timed separately), then ``dst3d.training.loop.train`` (in-memory
  uint8 crops, batched random crop and colour jitter);
* torchvision, in memory: the same decoded crops in a ``Dataset`` with per-sample ``transforms.v2``
  (RandomCrop, ColorJitter, ToDtype, Normalize) and a ``DataLoader`` (batch 32, shuffled, ``--workers``
  workers);
* torchvision, from files: a ``Dataset`` that opens each image with PIL, crops the object's box and resizes it
  every epoch, then the same transforms (the usual ImageFolder-style recipe), ``DataLoader`` with
  ``--workers`` workers.

Methods alternate, ``--repeats`` times each; the best run of each counts (the machine is shared). Prints images
per second of wall-clock time and of the process's CPU time (which other processes on a shared machine disturb
far less), and the stage's speed relative to each loop (above 1: the stage is faster).

``--set KEY=VALUE`` overrides a train setting for all methods (``--set device=cuda --set backbone=resnet50
--set input_size=224``): on a GPU every method trains there, the loops' ``DataLoader`` pinning its batches;
``--prebuilt`` reuses the images of a ``--workdir`` built earlier without running the workflow (a GPU node with
no Blender; see bench/workflow_data.py).

Usage: ``python bench/train.py [--workdir DIR] [--prebuilt] [--epochs 2] [--repeats 2] [--threads 2]
[--workers 0] [--set KEY=VALUE ...]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from workflow_data import add_data_arguments, apply_overrides, data_config, train_images

from dst3d.devices import resolve_device
from dst3d.torch_compat import import_torchvision
from dst3d.training import cropping, loop, pose
from dst3d.workflow_config import estimator_settings


def torchvision_transforms(settings: dict):
    import_torchvision()
    from torchvision.transforms import v2

    jitter = settings["colour_jitter"]
    return v2.Compose(
        [
            v2.RandomCrop(settings["input_size"]),
            v2.ColorJitter(brightness=jitter, contrast=jitter),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        ]
    )


class InMemoryCrops(torch.utils.data.Dataset):
    def __init__(self, images: torch.Tensor, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images, torch.from_numpy(labels), transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return self.transform(self.images[index]), self.labels[index]


class FileCrops(torch.utils.data.Dataset):
    """Decodes, crops and resizes every image at every access (PIL), as an ImageFolder-style loader does."""

    def __init__(self, paths, boxes, labels, settings, transform):
        self.paths, self.boxes, self.labels, self.transform = paths, boxes, torch.from_numpy(labels), transform
        self.size = cropping.padded_size(settings)
        self.context = settings["context"] * self.size / settings["input_size"]

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        crop = Image.open(self.paths[index]).convert("RGB").crop(cropping.crop_box(self.boxes[index], self.context))
        crop = crop.resize((self.size, self.size), Image.BILINEAR)
        return self.transform(torch.from_numpy(np.array(crop)).permute(2, 0, 1)), self.labels[index]


def torchvision_loop(dataset, settings: dict, epochs: int, seed: int, workers: int) -> None:
    """The plain loop: DataLoader, forward, pose loss, backward, optimiser step; scheduler step per epoch (the
    optimiser, schedule and precision the settings name, SGD + StepLR in float32 by default)."""
    torch.manual_seed(seed)
    device = resolve_device(settings["device"], "train.device")
    bfloat16 = settings["precision"] == "bfloat16"
    layout = loop.memory_layout(settings["precision"], device)
    model = loop.build_model(settings["backbone"], settings["pretrained"], outputs=pose.POSE_OUTPUTS).to(
        device, memory_format=layout
    )
    optimizer = loop.make_optimizer(model, settings)
    scheduler = loop.make_scheduler(optimizer, settings)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=settings["batch_size"],
        shuffle=True,
        num_workers=workers,
        drop_last=False,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
    )
    model.train()
    for _ in range(epochs):
        for inputs, labels in loader:
            inputs, labels = inputs.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bfloat16):
                logits = model(inputs.contiguous(memory_format=layout))
            loss = pose.pose_loss(logits.float(), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        scheduler.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser, "a train setting")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the torchvision loops")
    args = parser.parse_args()

    config = data_config(parser, args)
    settings = apply_overrides(parser, {**estimator_settings(config), "epochs": args.epochs}, args.overrides)
    cuda = resolve_device(settings["device"], "train.device").type == "cuda"
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="dst3d-bench-train-") as temporary:
        frame = train_images(args, config, (args.workdir or Path(temporary)).resolve())
        labels, ids = pose.pose_labels(frame), frame["image_id"].tolist()
        started = time.perf_counter()
        images = cropping.crops(frame, settings, args.threads)
        decode_seconds = time.perf_counter() - started
        transform = torchvision_transforms(settings)
        methods = {
            "dst3d.training.loop.train (stage)": lambda: loop.train(
                images, labels, ids, settings, seed=0, threads=args.threads, task=pose.POSE
            ),
            "torchvision loop, in-memory crops": lambda: torchvision_loop(
                InMemoryCrops(images, labels, transform), settings, args.epochs, 0, args.workers
            ),
            f"torchvision loop, files ({args.workers} workers)": lambda: torchvision_loop(
                FileCrops(frame["image_path"].tolist(), cropping.object_boxes(frame), labels, settings, transform),
                settings,
                args.epochs,
                0,
                args.workers,
            ),
        }
        wall, cpu = dict.fromkeys(methods, float("inf")), dict.fromkeys(methods, float("inf"))
        for repeat in range(args.repeats):
            for name in list(methods) if repeat % 2 == 0 else list(methods)[::-1]:
                started, started_cpu = time.perf_counter(), time.process_time()
                methods[name]()
                if cuda:
                    torch.cuda.synchronize()
                wall[name] = min(wall[name], time.perf_counter() - started)
                cpu[name] = min(cpu[name], time.process_time() - started_cpu)

    count = len(frame) * args.epochs
    stage = "dst3d.training.loop.train (stage)"
    print(
        f"{len(frame)} images x {args.epochs} epochs, {settings['backbone']} at {settings['input_size']} px, batch "
        f"{settings['batch_size']}, {settings['optimizer']}, {settings['precision']}, on {'cuda: ' + torch.cuda.get_device_name() if cuda else 'the CPU'}, "
        f"{args.threads} torch threads, {args.workers} DataLoader workers, best of {args.repeats}"
    )
    print(
        f"stage's one-time crop decoding: {decode_seconds:.1f} s ({len(frame) / decode_seconds:.0f} images/s); "
        f"with it, the stage trains {count / (wall[stage] + decode_seconds):.1f} images/s"
    )
    print(f"{'method':<42} {'images/s':>9} {'stage/this':>11} {'images/CPU-s':>13} {'stage/this':>11}")
    for name in methods:
        print(
            f"{name:<42} {count / wall[name]:>9.1f} {wall[name] / wall[stage]:>10.2f}x "
            f"{count / cpu[name]:>13.1f} {cpu[name] / cpu[stage]:>10.2f}x"
        )


if __name__ == "__main__":
    main()
