"""The training loop shared by every network the workflow trains (the pose estimator, the category
classifier, the KCF fold models): a torchvision ResNet with a task's head, trained on in-memory crops with
resume after a kill, on the CPU or a CUDA GPU, and saved as a self-describing checkpoint.

A :class:`Task` says what the network learns: its head size and its loss (:data:`dst3d.training.pose.POSE`,
:func:`dst3d.training.classify.task`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dst3d import geometry
from dst3d.config_schema import block_settings, schema_enum
from dst3d.devices import resolve_device
from dst3d.io import atomic_write
from dst3d.logs import eta_text
from dst3d.torch_compat import import_torchvision
from dst3d.training.cropping import augment, centre_crop, normalise, rotate

_log = logging.getLogger(__name__)
# The allowed values of every train key (optimizer, lr_schedule, device, precision, ...) and their defaults are
# config/schema.yaml's, checked by training_settings; config/README.md says what each does.
BACKBONES = tuple(schema_enum("train", "backbone"))


def training_settings(settings: dict) -> dict:
    """A ``train`` block (or the KCF fold models' version of it) checked against config/schema.yaml and completed
    with its defaults; the workflow's own keys (variants, tasks, threads) are not part of it."""
    return block_settings("train", settings, ignore=("variants", "tasks", "threads", "real", "finetune"))


def memory_layout(precision: str, device: torch.device) -> torch.memory_format:
    """The layout the network and its inputs train in: channels-last for bfloat16 on CUDA (where the tensor
    cores want it), the usual contiguous layout otherwise."""
    return torch.channels_last if precision == "bfloat16" and device.type == "cuda" else torch.contiguous_format


class PretrainedWeightsMissing(RuntimeError):
    """ImageNet weights were requested but are not in the torch cache."""


def pretrained_weights_path(backbone: str) -> tuple[Path, str]:
    """Where torchvision's ImageNet (IMAGENET1K_V1) weights of ``backbone`` lie in the torch cache, and their URL."""
    if backbone not in BACKBONES:
        raise ValueError(f"train.backbone: unknown backbone {backbone!r}; use one of {BACKBONES}")
    weights = import_torchvision().models.get_model_weights(backbone).IMAGENET1K_V1
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url), weights.url


def _head_slot(model: torch.nn.Module) -> tuple[torch.nn.Module, str]:
    """Where a torchvision classifier keeps its last linear layer: ResNet ``fc``, Swin ``head``, ConvNeXt
    ``classifier[2]``."""
    if hasattr(model, "fc"):
        return model, "fc"
    if hasattr(model, "head"):
        return model, "head"
    return model.classifier, "2"


def head_layer(model: torch.nn.Module) -> torch.nn.Module:
    """The network's last layer (its task head)."""
    parent, name = _head_slot(model)
    return getattr(parent, name) if name != "2" else parent[2]


def set_head(model: torch.nn.Module, layer: torch.nn.Module) -> None:
    """Replace the network's last layer with ``layer`` (a new head, or an identity for features)."""
    parent, name = _head_slot(model)
    if name == "2":
        parent[2] = layer
    else:
        setattr(parent, name, layer)


def build_model(backbone: str, pretrained: bool, outputs: int, zero_init_residual: bool = False) -> torch.nn.Module:
    """A torchvision ResNet, Swin-T or ConvNeXt-T with an ``outputs``-way linear head (3 x 41 pose bins by
    default). ImageNet weights only from the local torch cache: a missing file stops with a message saying where
    to put it. ``zero_init_residual`` starts every residual block as the identity (ResNets, for training from
    scratch; the other families have no such switch and ignore it)."""
    if backbone not in BACKBONES:
        raise ValueError(f"train.backbone: unknown backbone {backbone!r}; use one of {BACKBONES}")
    models = import_torchvision().models
    options = {"zero_init_residual": zero_init_residual} if backbone.startswith("resnet") else {}
    model = getattr(models, backbone)(weights=None, **options)
    if pretrained:
        cached, url = pretrained_weights_path(backbone)
        if not cached.is_file():
            raise PretrainedWeightsMissing(
                f"train.pretrained is true but the ImageNet weights of {backbone} are not at {cached}. "
                f"Download {url} to that path (or set TORCH_HOME to a folder holding hub/checkpoints/"
                f"{cached.name}), or set train.pretrained: false"
            )
        model.load_state_dict(torch.load(cached, map_location="cpu", weights_only=True))
    set_head(model, torch.nn.Linear(head_layer(model).in_features, outputs))
    return model


@dataclass(frozen=True)
class Task:
    """What a network learns: ``outputs`` logits per image, scored against its labels by
    ``loss(logits, labels, reduction)``."""

    name: str
    outputs: int
    loss: Callable[..., torch.Tensor]
    #: The label column holding the in-plane rotation bin (pose and joint tasks), which ``train.rotate_deg``
    #: turns with the image; None for a task whose label an in-plane turn leaves alone.
    theta_column: int | None = None


@dataclass
class TrainResult:
    model: torch.nn.Module
    history: list[dict]


def _fingerprint(settings: dict, labels: np.ndarray, ids: list[str], task: Task, init: str | None) -> str:
    payload = json.dumps(
        {
            "settings": settings,
            "ids": ids,
            "labels": labels.tolist(),
            "task": task.name,
            "outputs": task.outputs,
            "init": init,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class _Data:
    """What the epochs draw their batches from: the uint8 crops (on the CPU), their labels (on the training
    device) and the in-plane rotation augmentation."""

    images: torch.Tensor
    labels: torch.Tensor
    #: The standard deviation of the in-plane turns (radians); 0 when there are none.
    rotate_sd: float
    #: The label column re-binned after a turn (``Task.theta_column``), None when the labels stay as they are.
    theta_column: int | None
    #: The images' in-plane angles (radians, float64, on the CPU) when ``theta_column`` is set.
    thetas: torch.Tensor | None


@dataclass
class _Run:
    """A training run: the network, where it trains, and what it carries from epoch to epoch (saved after each
    one for a resume)."""

    device: torch.device
    #: The memory layout of the network and its inputs (:func:`memory_layout`).
    layout: torch.memory_format
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    #: The CPU generator of the shuffles and augmentations.
    generator: torch.Generator
    #: Of the data, settings, task and starting weights: a resume state with another one is not used.
    fingerprint: str
    history: list[dict] = field(default_factory=list)
    #: Epochs done (by this job or, after a resume, by an earlier one).
    epoch: int = 0


def train(
    images: torch.Tensor,
    labels: np.ndarray,
    ids: list[str],
    settings: dict,
    seed: int,
    threads: int,
    resume_path: Path | None = None,
    log: logging.Logger = _log,
    *,
    task: Task,
    init: tuple[dict, str] | None = None,
    thetas: np.ndarray | None = None,
) -> TrainResult:
    """Train a network for ``task`` (:data:`dst3d.training.pose.POSE`, or a classifier's). ``settings`` is the
    config's ``train`` block (or the KCF fold models' version of it), checked and completed with the defaults of
    config/schema.yaml by :func:`training_settings`; ``images`` are the padded uint8 crops of
    :func:`dst3d.training.cropping.crops`, kept on the CPU (each batch is moved to the training device). The
    returned model stays on the training device.

    Deterministic on the CPU for a given seed and thread count (on CUDA up to cuDNN's non-deterministic kernels;
    the batches and augmentations are the same). With ``resume_path``, the state after every epoch is
    saved there (atomically) and a restarted job continues from it when data, settings and task are unchanged.

    ``init`` = (state dict, its checkpoint's SHA-256) starts from those weights instead (fine-tuning; the head
    must have ``task.outputs`` outputs); ``settings["pretrained"]`` is then not used.

    ``settings["rotate_deg"]`` > 0 (with ``augment``) turns every training crop by an angle drawn from
    N(0, rotate_deg) about its centre, and, for a task with an in-plane label (``task.theta_column``), that label
    with it (P3D-Diffusion's ``--rotate``): ``thetas`` are then the images' in-plane angles (radians), re-binned
    after the turn.
    """
    settings = _seed_and_settings(settings, seed, threads)
    device = resolve_device(settings["device"], "train.device")
    layout = memory_layout(settings["precision"], device)
    model = _initial_model(settings, task, init).to(device, memory_format=layout)
    optimizer = make_optimizer(model, settings)
    scheduler = make_scheduler(optimizer, settings)
    data = _training_data(images, labels, thetas, settings, task, device)
    run = _Run(
        device=device,
        layout=layout,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        generator=torch.Generator().manual_seed(seed),
        fingerprint=_fingerprint(settings, labels, ids, task, None if init is None else init[1]),
    )
    if resume_path is not None and Path(resume_path).is_file():
        _resume(run, resume_path, log)
    while run.epoch < settings["epochs"]:
        epoch_started = time.perf_counter()
        loss_sum, count = _train_epoch(run, data, settings, task)
        _end_epoch(run, loss_sum, count)
        _log_epoch(log, run.history[-1], settings["epochs"], count, time.perf_counter() - epoch_started)
        if resume_path is not None:
            _save_resume_state(run, resume_path)
    return TrainResult(model=run.model, history=run.history)


def _seed_and_settings(settings: dict, seed: int, threads: int) -> dict:
    """Set torch's thread count and global seed (which the new network's initial weights draw on); the settings
    checked and completed (:func:`training_settings`)."""
    torch.set_num_threads(max(1, threads))
    torch.manual_seed(seed)
    return training_settings(settings)


def _initial_model(settings: dict, task: Task, init: tuple[dict, str] | None) -> torch.nn.Module:
    """The network before training, on the CPU: ``task``'s head on the configured backbone, with ImageNet weights
    when ``pretrained`` and no ``init``, or with ``init``'s weights."""
    model = build_model(
        settings["backbone"],
        settings["pretrained"] and init is None,
        task.outputs,
        zero_init_residual=settings["zero_init_residual"],
    )
    if init is not None:
        model.load_state_dict(init[0])
    return model


def _training_data(
    images: torch.Tensor,
    labels: np.ndarray,
    thetas: np.ndarray | None,
    settings: dict,
    task: Task,
    device: torch.device,
) -> _Data:
    """The crops with their labels on ``device`` and the rotation augmentation (none without ``augment``); an
    error when the turns would change ``task``'s in-plane label and ``thetas`` are missing."""
    label_tensor = torch.from_numpy(labels).to(device)
    rotate_sd = math.radians(settings["rotate_deg"]) if settings["augment"] else 0.0
    relabel = rotate_sd > 0 and task.theta_column is not None  # a classifier's label is the same after a turn
    if relabel and thetas is None:
        raise ValueError(f"train.rotate_deg turns the {task.name} task's in-plane label: pass the images' thetas")
    return _Data(
        images=images,
        labels=label_tensor,
        rotate_sd=rotate_sd,
        theta_column=task.theta_column if relabel else None,
        thetas=torch.from_numpy(np.asarray(thetas, dtype=np.float64)) if relabel else None,
    )


def _resume(run: _Run, resume_path: Path, log: logging.Logger) -> None:
    """Continue from the state saved at ``resume_path`` when it was made for the same fingerprint (otherwise it
    is ignored, and overwritten after the first epoch)."""
    state = torch.load(resume_path, map_location="cpu", weights_only=False)
    if state["fingerprint"] != run.fingerprint:
        log.info("ignoring %s: it was made for other data or settings", resume_path)
        return
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.generator.set_state(state["generator"])
    run.history, run.epoch = state["history"], state["epoch"]
    log.info("resuming from %s after epoch %d", resume_path, run.epoch)


def _train_epoch(run: _Run, data: _Data, settings: dict, task: Task) -> tuple[torch.Tensor, int]:
    """One pass over the crops in a fresh shuffle, one optimiser step per batch (a last batch of one is left
    out: batch norm needs two samples); the sum of the batches' losses times their sizes (a float64 tensor on the
    training device) and the number of images trained on."""
    run.model.train()
    order = torch.randperm(len(data.images), generator=run.generator)
    # The epoch's loss is summed on the training device (float64, as Python floats would be): reading each
    # batch's loss with .item() would make the CPU wait for the GPU at every step.
    total, count = torch.zeros((), dtype=torch.float64, device=run.device), 0
    for start in range(0, len(order), settings["batch_size"]):
        batch = order[start : start + settings["batch_size"]]
        if len(batch) < 2:  # batch norm needs two samples
            continue
        inputs, targets = _batch(run, data, batch, settings)
        loss = _step(run, inputs, targets, settings["precision"], task)
        total += loss.detach().double() * len(batch)
        count += len(batch)
    return total, count


def _batch(run: _Run, data: _Data, batch: torch.Tensor, settings: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The network's inputs (augmented, or centre crops) and the labels of the crops ``batch`` indexes, on the
    training device; turned in-plane (and their in-plane label with them) when the rotation augmentation is on.
    The augmentations draw on the run's generator."""
    device = run.device
    pixels = data.images[batch].to(device, non_blocking=True)
    inputs = (
        augment(pixels, run.generator, settings) if settings["augment"] else centre_crop(pixels, settings["input_size"])
    )
    targets = data.labels[batch.to(device)]
    if data.rotate_sd > 0:  # drawn on the CPU generator, so the turns do not depend on the device
        angles = torch.randn(len(batch), generator=run.generator, dtype=torch.float64) * data.rotate_sd
        inputs = rotate(inputs.float(), angles)
        if data.theta_column is not None:
            turned = torch.remainder(data.thetas[batch] + angles + math.pi, 2 * math.pi) - math.pi
            targets = targets.clone()
            bins = geometry.signed_angle_to_bin(turned.numpy())
            targets[:, data.theta_column] = torch.from_numpy(np.asarray(bins, dtype=np.int64)).to(device)
    return inputs, targets


def _step(run: _Run, inputs: torch.Tensor, targets: torch.Tensor, precision: str, task: Task) -> torch.Tensor:
    """One optimiser step on a batch (the forward pass under bfloat16 autocast when ``precision`` says so, the
    loss in float32); the batch's loss."""
    with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16"):
        logits = run.model(normalise(inputs).contiguous(memory_format=run.layout))
    loss = task.loss(logits.float(), targets)
    run.optimizer.zero_grad()
    loss.backward()
    run.optimizer.step()
    return loss


def _end_epoch(run: _Run, loss_sum: torch.Tensor, count: int) -> None:
    """Step the learning-rate schedule and add the epoch's mean loss and new learning rate to the history."""
    run.scheduler.step()
    run.epoch += 1
    run.history.append(
        {"epoch": run.epoch, "loss": loss_sum.item() / max(count, 1), "lr": run.scheduler.get_last_lr()[0]}
    )


def _log_epoch(log: logging.Logger, entry: dict, epochs: int, count: int, seconds: float) -> None:
    """The epoch's progress line: its history ``entry``, its time and speed (logged only, so that the history
    stays deterministic) and the time left."""
    log.info(
        "epoch %d/%d loss %.4f lr %.3g, %.1f s, %.0f images/s, %s",
        entry["epoch"],
        epochs,
        entry["loss"],
        entry["lr"],
        seconds,
        count / seconds if seconds > 0 else float("inf"),
        eta_text(seconds * (epochs - entry["epoch"]), entry["epoch"], epochs),
    )


def _save_resume_state(run: _Run, resume_path: Path) -> None:
    """Save the run after its latest epoch (atomically), for :func:`_resume`."""
    state = {
        "fingerprint": run.fingerprint,
        "epoch": run.epoch,
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "generator": run.generator.get_state(),
        "history": run.history,
    }
    with atomic_write(resume_path) as temporary:
        torch.save(state, temporary)


def make_optimizer(model: torch.nn.Module, settings: dict) -> torch.optim.Optimizer:
    """The optimiser named by ``train.optimizer`` with the block's lr and weight decay (``settings`` complete, as
    :func:`training_settings` returns them)."""
    name = settings["optimizer"]
    if name == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=settings["lr"], momentum=settings["momentum"], weight_decay=settings["weight_decay"]
        )
    if name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=settings["lr"], weight_decay=settings["weight_decay"])
    raise AssertionError(name)  # the schema allows only the two


def make_scheduler(optimizer: torch.optim.Optimizer, settings: dict) -> torch.optim.lr_scheduler.LRScheduler:
    """The per-epoch learning-rate schedule named by ``train.lr_schedule`` (``settings`` complete)."""
    name = settings["lr_schedule"]
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=settings["lr_step_epochs"], gamma=settings["lr_gamma"]
        )
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings["epochs"])
    raise AssertionError(name)  # the schema allows only the two


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module, images: torch.Tensor, input_size: int, batch_size: int = 64, flip: bool = False
) -> torch.Tensor:
    """Logits (N x outputs, on the CPU) of the centre ``input_size`` crops, computed on the model's device. With
    ``flip`` (pose and joint heads), averaged with the mirrored image, whose azimuth and theta bins are reversed
    (valid for left-right symmetric categories only; a joint head's category logits are averaged as they are)."""
    model.eval()
    device = next(iter(model.parameters()), torch.empty(0)).device  # the CPU for a model without weights
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = normalise(centre_crop(images[start : start + batch_size], input_size).to(device))
        logits = model(batch)
        if flip:
            mirrored = model(torch.flip(batch, dims=[3]))
            bins = geometry.NUM_BINS
            azimuth, elevation = mirrored[:, :bins], mirrored[:, bins : 2 * bins]
            theta, rest = mirrored[:, 2 * bins : 3 * bins], mirrored[:, 3 * bins :]  # rest: a joint model's classes
            mirrored = torch.cat([torch.flip(azimuth, [1]), elevation, torch.flip(theta, [1]), rest], 1)
            logits = (logits + mirrored) / 2
        outputs.append(logits.cpu())
    return torch.cat(outputs) if outputs else torch.empty((0, head_layer(model).out_features))


def save_checkpoint(path: Path, model: torch.nn.Module, settings: dict, extra: dict) -> None:
    """Save weights, the head size, the settings and provenance (config, data manifest hash, history, ...)
    atomically."""
    weights = {key: value.detach().cpu() for key, value in model.state_dict().items()}  # loadable anywhere
    with atomic_write(path) as temporary:
        # Through a file handle: given a path, torch.save names the archive's inner folder after the temporary
        # file, so identical weights would give different bytes (and checkpoint hashes) in every run.
        with open(temporary, "wb") as handle:
            torch.save(
                {"model": weights, "outputs": head_layer(model).out_features, "settings": settings, **extra}, handle
            )


def load_checkpoint(path: Path) -> tuple[torch.nn.Module, dict]:
    """A model and its checkpoint dictionary (weights built without any download)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    model = build_model(checkpoint["settings"]["backbone"], pretrained=False, outputs=checkpoint["outputs"])
    model.load_state_dict(checkpoint["model"])
    return model, checkpoint
