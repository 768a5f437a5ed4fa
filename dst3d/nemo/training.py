"""NeMo end to end: object crops and their cameras, the contrastive training of the feature network with the
vertex memory bank, render-and-compare prediction, and CC3D's adaptation to unlabelled real images.

One network serves every category; each category has its own neural mesh and memory bank (vertex features
and background queue), as NeMo's per-category models share nothing but the feature extractor here.

* **Crops and cameras.** An object's crop is the square window of :func:`dst3d.training.cropping.load_crop`
  (the box's longest side times ``context``) at ``input_size`` pixels. A generated image keeps its exact
  camera: the record's ``K`` scaled to the image, moved and scaled to the crop window. A real image has no
  camera: it gets :func:`dst3d.nemo.raster.centred_camera` (principal point at the crop's centre, focal
  ``CENTRED_FOCAL`` crop sides) and the distance at which the mesh fills the object's box at the annotated
  angles. Inference uses the centred camera for every image (test images' cameras are not used).
* **Training** (P3D-Diffusion eq. 5 without the real term): per visible vertex of the annotated pose
  (:func:`dst3d.nemo.raster.visible_points`) the feature at its projected position enters the contrastive loss
  against the category's bank; background features come from cells the mesh does not cover. The bank then
  moves towards the batch's features (the moving-average estimate of the vertex features that minimises the
  reconstruction loss, eq. 3, on the training set).
* **CC3D**: the trained model predicts poses of unlabelled real crops, scores each by the self-consistency
  confidence (eq. 6: the mean of ``f_i . C_r`` over the silhouette's cells at the predicted pose), keeps the
  ``keep`` most confident per category as pseudo-labels and fine-tunes with the contrastive loss on the
  labelled data plus ``alpha`` times the domain-consistency loss (eq. 4, per correspondence:
  ``||f_r - C_r||^2``) on the pseudo-labelled crops.
"""

from __future__ import annotations

import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from dst3d.devices import resolve_device
from dst3d.identity import derive_seed
from dst3d.nemo import raster, search
from dst3d.nemo.features import STRIDE, FeatureNet, MemoryBank, contrastive_loss, neighbour_mask
from dst3d.nemo.mesh import NeuralMesh
from dst3d.training import cropping

_log = logging.getLogger(__name__)
#: Focal length of the centred camera, in crop sides (about that of the embedded renders' crops).
CENTRED_FOCAL = 2.0


@dataclass
class Crops:
    """Object crops and what NeMo needs of them: ``images`` N x 3 x S x S uint8, ``categories`` (N names),
    ``cameras`` N x 3 x 3 (crop pixels), ``poses`` N x 4 (azimuth, elevation, theta, distance; None for
    unlabelled crops)."""

    images: torch.Tensor
    categories: list[str]
    cameras: torch.Tensor
    poses: torch.Tensor | None

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, rows) -> Crops:
        rows = list(rows)
        return Crops(
            self.images[rows],
            [self.categories[row] for row in rows],
            self.cameras[rows],
            None if self.poses is None else self.poses[rows],
        )


@dataclass
class Model:
    """The feature network, per category the neural mesh and memory bank, and the settings they were made with."""

    net: FeatureNet
    meshes: dict[str, NeuralMesh]
    banks: dict[str, MemoryBank]
    settings: dict

    def mesh_tensors(self, category: str) -> tuple[torch.Tensor, torch.Tensor]:
        mesh = self.meshes[category]
        return torch.from_numpy(mesh.vertices), torch.from_numpy(mesh.faces)


def crop_windows(frame: pd.DataFrame, context: float) -> np.ndarray:
    """N x 4 (left, top, side, scale): the whole-pixel window each crop is cut from (as ``load_crop`` cuts it)
    and the image-per-render scale of generated images (1 for real ones)."""
    boxes = cropping.object_boxes(frame)
    windows = []
    for box in boxes:
        if np.isnan(box).any():
            windows.append((np.nan, np.nan, np.nan))
            continue
        x0, y0, x1, y1 = cropping.crop_box(box, context)
        left, top = math.floor(x0), math.floor(y0)
        windows.append((left, top, max(1, math.ceil(max(x1 - left, y1 - top)))))
    windows = np.asarray(windows, dtype=float)
    if "width" in frame and "K" in frame:
        scale = frame["image_width"].to_numpy(dtype=float) / frame["width"].to_numpy(dtype=float)
    else:
        scale = np.ones(len(frame))
    return np.concatenate([windows, scale[:, None]], axis=1)


def load_crops(frame: pd.DataFrame, meshes: dict[str, NeuralMesh], settings: dict, threads: int, labelled=True):
    """The :class:`Crops` of an image table (module docstring): generated images with their exact camera, real
    ones with the centred camera; the annotated poses when ``labelled``."""
    size, context = settings["input_size"], settings["context"]
    images = cropping.load_images(
        frame["image_path"].tolist(), cropping.object_boxes(frame), size, context, max(1, threads)
    )
    windows = crop_windows(frame, context)
    centred = raster.centred_camera(size, CENTRED_FOCAL * size)
    exact = "K" in frame and "width" in frame
    cameras, poses = [], []
    for record, window in zip(frame.itertuples(index=False), windows, strict=True):
        real = not exact or (isinstance(record.width, float) and math.isnan(record.width)) or np.isnan(window[0])
        if real:
            camera = centred
        else:
            K = np.asarray(record.K, float).reshape(3, 3) * np.array([[window[3]], [window[3]], [1.0]])
            left, top, side = window[:3]
            camera = raster.crop_camera(K, (left, top, left + side, top + side), size)
        cameras.append(camera)
        if labelled:
            angles = [record.azimuth, record.elevation, record.theta]
            if real:  # the distance at which the mesh fills the box under this camera
                vertices = torch.from_numpy(meshes[record.category].vertices).double()
                angles_tensor = torch.tensor([angles], dtype=torch.float64)
                distance = float(
                    search.fit_distance(vertices, angles_tensor, torch.from_numpy(camera), size / context)[0]
                )
            else:
                distance = float(record.distance)
            poses.append([*angles, distance])
    return Crops(
        images,
        frame["category"].tolist(),
        torch.tensor(np.stack(cameras), dtype=torch.float32),
        torch.tensor(poses, dtype=torch.float32) if labelled else None,
    )


def build(meshes: dict[str, NeuralMesh], settings: dict, seed: int) -> Model:
    """A new model: the feature network (ImageNet weights from the torch cache when ``pretrained``) and a
    random-unit memory bank per category."""
    torch.manual_seed(seed)
    weights = None
    if settings.get("pretrained"):
        from dst3d.training.loop import PretrainedWeightsMissing, pretrained_weights_path

        cached, url = pretrained_weights_path(settings["backbone"])
        if not cached.is_file():
            raise PretrainedWeightsMissing(
                f"nemo.pretrained is true but the ImageNet weights of {settings['backbone']} are not at {cached}. "
                f"Download {url} to that path (or set TORCH_HOME), or set nemo.pretrained: false"
            )
        weights = torch.load(cached, map_location="cpu", weights_only=True)
    net = FeatureNet(settings["backbone"], settings["feature_dim"], weights)
    banks = {
        category: MemoryBank(
            len(mesh.vertices),
            settings["feature_dim"],
            settings["background_features"],
            settings["bank_momentum"],
            seed=derive_seed(seed, "nemo-bank", category) % 2**63,
        )
        for category, mesh in sorted(meshes.items())
    }
    return Model(net, dict(meshes), banks, dict(settings))


@dataclass
class _Targets:
    """Per crop, the visible vertices of its pose and their pixels, and the feature cells off its silhouette."""

    vertices: list[torch.Tensor]
    points: list[torch.Tensor]
    background: list[torch.Tensor]


def correspondences(model: Model, crops: Crops, threads: int) -> _Targets:
    """The :class:`_Targets` of labelled crops (computed once: poses do not change during training)."""
    size = crops.images.shape[-1]
    feature_shape = (size // STRIDE, size // STRIDE)

    def one(row: int):
        vertices, faces = model.mesh_tensors(crops.categories[row])
        batch = raster.meshes([vertices], [faces])
        R, t = raster.extrinsics(crops.poses[row : row + 1])
        K = crops.cameras[row : row + 1]
        # Visibility at half the crop's resolution, silhouette at the feature map's.
        ids, points = raster.visible_points(batch, R, t, raster.scaled_camera(K, 0.5), (size // 2, size // 2))[0]
        fragments = raster.rasterise(batch, R, t, raster.scaled_camera(K, 1 / STRIDE), feature_shape)
        free = torch.nonzero(fragments.pix_to_face[0, ..., 0] < 0)
        return ids, points * 2, free

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        found = list(pool.map(one, range(len(crops))))
    return _Targets([f[0] for f in found], [f[1] for f in found], [f[2] for f in found])


def _features_at(feature_maps: torch.Tensor, targets: _Targets, rows: list[int], generator: torch.Generator, count):
    """Per image of a batch: (features at its visible vertices, their ids, up to ``count`` background features)."""
    found = []
    for index, row in enumerate(rows):
        vertex_features = raster.sample(feature_maps[index], targets.points[row].to(feature_maps), STRIDE)
        free = targets.background[row]
        if len(free) and count:
            pick = free[torch.randperm(len(free), generator=generator)[:count]]
            background = feature_maps[index][:, pick[:, 0], pick[:, 1]].T
        else:
            background = feature_maps.new_zeros((0, feature_maps.shape[1]))
        found.append((vertex_features, targets.vertices[row].to(feature_maps.device), background))
    return found


def _contrastive(model: Model, categories: list[str], found, neighbours: dict) -> tuple[torch.Tensor, dict]:
    """The mean over the batch's categories of the contrastive loss, and per category what updates its bank."""
    losses, updates = [], {}
    for category in sorted(set(categories)):
        parts = [found[i] for i, name in enumerate(categories) if name == category]
        features = torch.cat([part[0] for part in parts])
        ids = torch.cat([part[1] for part in parts])
        background = torch.cat([part[2] for part in parts])
        if len(ids) == 0:
            continue
        bank = model.banks[category]
        device = features.device
        losses.append(contrastive_loss(features, ids, _on(bank, device), neighbours[category].to(device)))
        updates[category] = (features.detach().cpu(), ids.cpu(), background.detach().cpu())
    if not losses:
        return torch.zeros((), requires_grad=True), updates
    return torch.stack(losses).mean(), updates


class _DeviceBank:
    def __init__(self, bank: MemoryBank, device):
        self.vertex, self.background = bank.vertex.to(device), bank.background.to(device)


def _on(bank: MemoryBank, device) -> MemoryBank | _DeviceBank:
    return bank if device.type == "cpu" else _DeviceBank(bank, device)


def _neighbours(model: Model) -> dict[str, torch.Tensor]:
    distance = model.settings["neighbour_distance"]
    return {c: neighbour_mask(torch.from_numpy(m.vertices), distance) for c, m in model.meshes.items()}


def train(
    model: Model,
    crops: Crops,
    epochs: int,
    lr: float,
    seed: int,
    threads: int,
    log: logging.Logger = _log,
    pseudo: Crops | None = None,
    alpha: float = 0.0,
) -> list[dict]:
    """Train ``model`` in place on labelled ``crops`` (and, for CC3D, the pseudo-labelled real crops ``pseudo``
    with weight ``alpha``) for ``epochs`` epochs of Adam at ``lr``; the per-epoch history."""
    settings = model.settings
    torch.set_num_threads(max(1, threads))
    device = resolve_device(settings["device"], "nemo.device")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    targets = correspondences(model, crops, threads)
    pseudo_targets = correspondences(model, pseudo, threads) if pseudo is not None and len(pseudo) else None
    neighbours = _neighbours(model)
    net = model.net.to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=settings["weight_decay"])
    batch_size = settings["batch_size"]
    history = []
    for epoch in range(epochs):
        net.train()
        started, totals, batches = time.time(), {"loss": 0.0, "contrastive": 0.0, "domain": 0.0}, 0
        order = torch.randperm(len(crops), generator=generator).tolist()
        pseudo_order = torch.randperm(len(pseudo), generator=generator).tolist() if pseudo_targets is not None else []
        for index, rows in enumerate(_batches(order, batch_size)):
            real_rows = []
            if pseudo_targets is not None:  # the pseudo-labelled share of the batch, cycling through them
                count = max(1, len(pseudo) * len(rows) // len(crops))
                real_rows = [pseudo_order[(index * count + i) % len(pseudo)] for i in range(count)]
            # One forward pass for both parts (batch-norm statistics over both domains, and never a batch of one).
            images = torch.cat([crops.images[rows], pseudo.images[real_rows]]) if real_rows else crops.images[rows]
            maps = net(cropping.normalise(images).to(device))
            found = _features_at(maps[: len(rows)], targets, rows, generator, settings["background_per_image"])
            loss, updates = _contrastive(model, [crops.categories[r] for r in rows], found, neighbours)
            domain = torch.zeros((), device=device)
            if real_rows:
                real_found = _features_at(maps[len(rows) :], pseudo_targets, real_rows, generator, 0)
                domain = _domain(model, [pseudo.categories[r] for r in real_rows], real_found)
            total = loss + alpha * domain
            optimiser.zero_grad()
            total.backward()
            optimiser.step()
            for category, (features, ids, background) in updates.items():
                model.banks[category].update(features, ids, background)
            totals["loss"] += float(total)
            totals["contrastive"] += float(loss)
            totals["domain"] += float(domain)
            batches += 1
        entry = {"epoch": epoch + 1, **{key: value / max(1, batches) for key, value in totals.items()}}
        entry["seconds"] = time.time() - started
        history.append(entry)
        log.info(
            "epoch %d/%d: loss %.4f (contrastive %.4f, domain %.4f), %.1f s",
            epoch + 1,
            epochs,
            entry["loss"],
            entry["contrastive"],
            entry["domain"],
            entry["seconds"],
        )
    net.cpu()
    return history


def _batches(order: list[int], size: int) -> list[list[int]]:
    """``order`` in batches of ``size``, a last batch of one joined to the one before (batch norm needs two)."""
    batches = [order[start : start + size] for start in range(0, len(order), size)]
    if len(batches) > 1 and len(batches[-1]) == 1:
        last = batches.pop()
        batches[-1] = batches[-1] + last
    return batches


def _domain(model: Model, categories: list[str], found) -> torch.Tensor:
    """Equation 4 per correspondence: the mean of ``||f_r - C_r||^2`` over the pseudo-labelled crops' visible
    vertices."""
    terms = []
    for (features, ids, _), category in zip(found, categories, strict=True):
        if len(ids):
            vertex = model.banks[category].vertex.to(features.device)[ids]
            terms.append(((features - vertex) ** 2).sum(dim=1))
    if not terms:
        return torch.zeros(())
    return torch.cat(terms).mean()


@torch.no_grad()
def feature_maps(model: Model, crops: Crops, batch_size: int, threads: int) -> torch.Tensor:
    """The feature maps (N x dim x S/8 x S/8) of every crop, in eval mode."""
    torch.set_num_threads(max(1, threads))
    device = resolve_device(model.settings["device"], "nemo.device")
    net = model.net.to(device).eval()
    maps = [
        net(cropping.normalise(crops.images[start : start + batch_size]).to(device)).cpu()
        for start in range(0, len(crops), batch_size)
    ]
    net.cpu()
    if not maps:
        size = crops.images.shape[-1] // STRIDE
        return torch.empty((0, model.settings["feature_dim"], size, size))
    return torch.cat(maps)


def _chunks(count: int, size: int):
    for start in range(0, count, size):
        yield list(range(start, min(start + size, count)))


def _chunk_model(model: Model, categories: list[str]):
    """Per image of a chunk, its category's mesh (vertices, faces) and bank (vertex and background features)."""
    meshes = [model.mesh_tensors(category) for category in categories]
    return (
        [mesh[0] for mesh in meshes],
        [mesh[1] for mesh in meshes],
        [model.banks[category].vertex for category in categories],
        [model.banks[category].background for category in categories],
    )


def predict(model: Model, crops: Crops, batch_size: int, threads: int, half_turned: bool = False) -> pd.DataFrame:
    """Render-and-compare poses of every crop under the centred camera, with their reconstruction loss and
    self-consistency confidence (eq. 6): columns pred_azimuth, pred_elevation, pred_theta, pred_distance, loss,
    confidence, in crop order; with ``half_turned`` also ``half_turn_confidence``, eq. 6 at the pose turned half
    way round (:func:`half_turn`), a diagnostic of the cuboid's front/back ambiguity."""
    settings = model.settings
    size = crops.images.shape[-1]
    camera = torch.tensor(raster.centred_camera(size, CENTRED_FOCAL * size), dtype=torch.float32)
    maps = feature_maps(model, crops, batch_size, threads)
    rows = []
    for chunk in _chunks(len(crops), batch_size):
        vertices, faces, vertex_features, backgrounds = _chunk_model(model, [crops.categories[row] for row in chunk])
        poses, losses = search.search(
            maps[chunk],
            vertices,
            faces,
            vertex_features,
            backgrounds,
            camera,
            size / settings["context"],
            settings["search"],
        )
        scores = [confidence(maps[chunk], vertices, faces, vertex_features, poses, camera)]
        if half_turned:
            scores.append(confidence(maps[chunk], vertices, faces, vertex_features, half_turn(poses), camera))
        rows += torch.cat([poses, losses[:, None], *(score[:, None] for score in scores)], dim=1).tolist()
    columns = ["pred_azimuth", "pred_elevation", "pred_theta", "pred_distance", "loss", "confidence"]
    return pd.DataFrame(rows, columns=columns + ["half_turn_confidence"] * half_turned)


def half_turn(poses: torch.Tensor) -> torch.Tensor:
    """The poses (N x 4) with the object turned half way round its up axis (azimuth + pi): the cuboid covers the
    same cells under them, so only the learned vertex features tell the two apart."""
    turned = poses.clone()
    turned[:, 0] = torch.remainder(turned[:, 0] + math.pi, 2 * math.pi)
    return turned


@torch.no_grad()
def confidence(feature_maps, vertices, faces, vertex_features, poses, camera) -> torch.Tensor:
    """Equation 6 per image: the mean over the cells the mesh covers under ``poses`` of ``f_i . C_r`` (the
    rendered vertex feature there); 0 where the mesh covers no cell."""
    K = raster.scaled_camera(camera, 1 / STRIDE)
    rendered, silhouette = search.render(vertices, faces, vertex_features, poses, K, tuple(feature_maps.shape[-2:]))
    similarity = (feature_maps * rendered).sum(dim=1)
    cells = silhouette.sum(dim=(1, 2))
    return torch.where(cells > 0, (similarity * silhouette).sum(dim=(1, 2)) / cells.clamp(min=1), 0.0)


@torch.no_grad()
def annotation_losses(model: Model, crops: Crops, batch_size: int, threads: int) -> np.ndarray:
    """The reconstruction loss (eq. 3) of each labelled crop at its annotated pose and camera: how well the
    image agrees with its label under the model, NeMo's counterpart of the classifier's loss that KCF scores
    images by (higher: more suspect)."""
    maps = feature_maps(model, crops, batch_size, threads)
    losses = []
    for chunk in _chunks(len(crops), batch_size):
        vertices, faces, vertex_features, backgrounds = _chunk_model(model, [crops.categories[row] for row in chunk])
        background = search.background_scores(maps[chunk], backgrounds)
        K = raster.scaled_camera(crops.cameras[chunk], 1 / STRIDE)
        losses.append(
            search.pose_losses(maps[chunk], vertices, faces, vertex_features, background, crops.poses[chunk], K)
        )
    return torch.cat(losses).numpy() if losses else np.zeros(0)


def pseudo_labels(
    model: Model, unlabelled: pd.DataFrame, crops: Crops, keep: int, batch_size: int, threads: int
) -> tuple[pd.DataFrame, Crops]:
    """CC3D's pseudo-labels: the predicted poses of the unlabelled crops, the ``keep`` most confident per
    category by eq. 6 (the table: image_id, category, predicted pose, loss, confidence and, for diagnosis,
    half_turn_confidence) and their crops labelled with the predicted poses."""
    from dst3d.nemo.correspondence import most_confident

    predicted = predict(model, crops, batch_size, threads, half_turned=True)
    table = pd.concat([unlabelled[["image_id", "category"]].reset_index(drop=True), predicted], axis=1)
    chosen = most_confident(table, keep)
    rows = chosen.index.tolist()
    labelled = crops.subset(rows)
    labelled.poses = torch.tensor(
        chosen[["pred_azimuth", "pred_elevation", "pred_theta", "pred_distance"]].to_numpy(), dtype=torch.float32
    )
    return chosen.reset_index(drop=True), labelled


def save(path, model: Model, extra: dict) -> None:
    """A self-describing checkpoint: network weights, meshes, banks, settings and ``extra`` provenance."""
    from dst3d.io import atomic_write

    state = {
        "estimator": "nemo",
        "settings": model.settings,
        "model": model.net.state_dict(),
        "meshes": {c: {"vertices": m.vertices, "faces": m.faces} for c, m in model.meshes.items()},
        "banks": {c: {"vertex": b.vertex, "background": b.background, "next": b._next} for c, b in model.banks.items()},
        **extra,
    }
    with atomic_write(path) as temporary:
        torch.save(state, temporary)


def load(path) -> tuple[Model, dict]:
    """The model of a :func:`save` checkpoint, and the checkpoint."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if checkpoint.get("estimator") != "nemo":
        raise ValueError(f"{path} is not a NeMo checkpoint (its estimator is {checkpoint.get('estimator')!r})")
    settings = checkpoint["settings"]
    net = FeatureNet(settings["backbone"], settings["feature_dim"])
    net.load_state_dict(checkpoint["model"])
    meshes = {c: NeuralMesh(m["vertices"], m["faces"]) for c, m in checkpoint["meshes"].items()}
    banks = {}
    for category, stored in checkpoint["banks"].items():
        bank = MemoryBank(
            len(stored["vertex"]), settings["feature_dim"], len(stored["background"]), settings["bank_momentum"]
        )
        bank.vertex, bank.background, bank._next = stored["vertex"], stored["background"], stored["next"]
        banks[category] = bank
    return Model(net, meshes, banks, settings), checkpoint
