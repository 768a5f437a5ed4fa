"""Overhead of the generate stage's ControlNet backend over a bare loop of pipeline calls, on a tiny model.

Usage: ``python bench/generate.py [--images 12] [--batch-size 4] [--steps 20] [--size 64] [--repeats 3]
[--shape tiny|sd15] [--models-dir DIR] [--device cpu|cuda] [--dtype auto|float16|bfloat16|float32]``

Both sides run the same tiny random-weight SD + ControlNet (dst3d/testing/tiny_diffusion.py) from the same folders with
the same settings (DDIM, eta 1.0, guidance 9.0, per-image CPU generators) on the same inputs, and write one PNG
per image:

- stage: ``dst3d.generate.diffusion.generate_images`` (settings validation, model check, ``from_pretrained``, attention
  and VAE-slicing setup, padded batches, paste-free ``generated`` mode, atomic writes, the record frame);
- bare: ``from_pretrained`` of the pipeline and ControlNet, then a loop over batches of
  ``pipeline(...)`` and ``image.save``.

The two alternate, ``--repeats`` times each, and the medians are compared: ``overhead = stage / bare - 1``, in
wall-clock time and in the process's CPU time (which other processes on a shared machine disturb far less).
The tiny model makes a denoising step cost milliseconds, so fixed costs weigh far more here than with SD 1.5
on a GPU; the figure is an upper bound for the real stage. Torch runs on ``--threads`` threads (1 by default: on
a shared 2-core machine two threads per process stall each other and swamp the comparison with noise).

On a GPU (``--device cuda``, ``--dtype auto`` = float16 there), ``--shape sd15`` times random weights in the
published SD 1.5 + canny ControlNet shapes (``build_sd15_shaped_pipeline``; about 4.6 GB written once to a
temporary folder, or once to ``--models-dir`` and reused from there; use ``--size 512``): the real models' cost without their weights. The bare loop then moves
the pipeline to the GPU in the same dtype; it decodes each batch with one VAE call (diffusers' default), where
the stage decodes one image at a time, so the comparison includes that choice. The peak GPU memory of each side
is printed.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from dst3d.devices import resolve_device
from dst3d.generate.diffusion import ControlNetBackend, import_diffusers, resolve_dtype
from dst3d.testing.tiny_diffusion import TinyModels, build_sd15_shaped_pipeline, build_tiny_pipeline

NEGATIVE_PROMPT = (
    "longbody, lowres, bad anatomy, bad hands, missing fingers, extra digit, fewer digits, cropped, worst quality, "
    "low quality"
)


def write_inputs(root: Path, count: int, size: int) -> pd.DataFrame:
    """``count`` images' edge maps (random sparse edges), masks and backgrounds under ``root``, as stage records."""
    rng = np.random.default_rng(0)
    rows = []
    for index in range(count):
        edges = np.repeat((rng.random((size, size, 1)) > 0.9).astype(np.uint8) * 255, 3, axis=2)
        Image.fromarray(edges).save(root / f"edges-{index}.png")
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / f"background-{index}.png")
        Image.fromarray(np.full((size, size), 255, np.uint8)).save(root / f"mask-{index}.png")
        rows.append(
            {
                "image_id": f"train-car-{index:06d}",
                "generate_seed": 1000 + index,
                "prompt": "An image of a car, best quality, extremely detailed",
                "edge_path": str(root / f"edges-{index}.png"),
                "render_path": "",
                "mask_path": str(root / f"mask-{index}.png"),
                "background_path": str(root / f"background-{index}.png"),
            }
        )
    return pd.DataFrame(rows)


class Clock:
    """Wall-clock and CPU seconds since construction."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def elapsed(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def _synchronise(settings: dict) -> None:
    if resolve_device(settings["device"], "--device").type == "cuda":
        torch.cuda.synchronize()


def run_stage(records: pd.DataFrame, out_dir: Path, settings: dict) -> dict[str, tuple[float, float]]:
    """(wall, CPU) seconds of the stage's loading and generating, split as a job spends them."""
    clock = Clock()
    backend = ControlNetBackend("controlnet", settings)
    _synchronise(settings)
    load = clock.elapsed()
    clock = Clock()
    backend.generate(records, out_dir, NEGATIVE_PROMPT)
    _synchronise(settings)
    return {"load": load, "generate": clock.elapsed()}


def run_bare(records: pd.DataFrame, out_dir: Path, settings: dict) -> dict[str, tuple[float, float]]:
    """(wall, CPU) seconds of loading and generating in the plainest script doing the same work with diffusers."""
    from diffusers import ControlNetModel, DDIMScheduler, StableDiffusionControlNetPipeline

    device = resolve_device(settings["device"], "--device")
    dtype = resolve_dtype(settings["dtype"], device)
    clock = Clock()
    pipeline = StableDiffusionControlNetPipeline.from_pretrained(
        settings["base_model"],
        controlnet=ControlNetModel.from_pretrained(settings["controlnet_model"], dtype=dtype),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
        dtype=dtype,
    ).to(device)
    pipeline.scheduler = DDIMScheduler.from_config(pipeline.scheduler.config)
    pipeline.set_progress_bar_config(disable=True)
    load = clock.elapsed()
    clock = Clock()
    out_dir.mkdir(parents=True, exist_ok=True)
    batch_size = settings["batch_size"]
    for batch_start in range(0, len(records), batch_size):
        batch = records.iloc[batch_start : batch_start + batch_size]
        images = pipeline(
            prompt=batch["prompt"].tolist(),
            negative_prompt=[NEGATIVE_PROMPT] * len(batch),
            image=[Image.open(path).convert("RGB") for path in batch["edge_path"]],
            height=settings["size"],
            width=settings["size"],
            num_inference_steps=settings["steps"],
            guidance_scale=9.0,
            eta=1.0,
            generator=[torch.Generator("cpu").manual_seed(int(seed)) for seed in batch["generate_seed"]],
        ).images
        for image_id, image in zip(batch["image_id"], images, strict=True):
            image.save(out_dir / f"{image_id}.png")
    _synchronise(settings)
    return {"load": load, "generate": clock.elapsed()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--shape",
        choices=("tiny", "sd15"),
        default="tiny",
        help="tiny random model (default) or random weights in SD 1.5's shapes (GPU timing)",
    )
    parser.add_argument(
        "--models-dir",
        type=Path,
        help="build the models here once and reuse them on later runs (default: a temporary folder)",
    )
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--dtype", default="auto", help="auto (float16 on CUDA, float32 on the CPU), float16, ...")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import_diffusers()

    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        started = time.perf_counter()
        models_dir = args.models_dir or root / "models"
        build = build_sd15_shaped_pipeline if args.shape == "sd15" else build_tiny_pipeline
        if (models_dir / "base" / "model_index.json").is_file():
            models = TinyModels(models_dir / "base", models_dir / "controlnet", models_dir / "vae")
            print(f"reusing the models in {models_dir}", flush=True)
        else:
            models = build(models_dir)
            print(f"built the {args.shape} models in {time.perf_counter() - started:.0f} s", flush=True)
        (root / "inputs").mkdir()
        records = write_inputs(root / "inputs", args.images, args.size)
        settings = {
            "base_model": str(models.base_model),
            "controlnet_model": str(models.controlnet_model),
            "size": args.size,
            "steps": args.steps,
            "batch_size": args.batch_size,
            "device": args.device,
            "dtype": args.dtype,
        }
        cuda = resolve_device(args.device, "--device").type == "cuda"
        runs: dict[str, list[dict[str, tuple[float, float]]]] = {"stage": [], "bare": []}
        peak: dict[str, float] = {}
        run_stage(records, root / "warm-up", settings)
        for repeat in range(args.repeats):
            # Alternate which side goes first, so that drifts in machine load hit both alike.
            for name in ("stage", "bare") if repeat % 2 == 0 else ("bare", "stage"):
                runner = run_stage if name == "stage" else run_bare
                if cuda:
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats()
                runs[name].append(runner(records, root / f"{name}-{repeat}", settings))
                if cuda:
                    peak[name] = max(peak.get(name, 0.0), torch.cuda.max_memory_allocated() / 2**30)

    print(
        f"{args.images} images, {args.shape} model, {args.size} px, batch {args.batch_size}, DDIM {args.steps} steps, "
        f"on {torch.cuda.get_device_name() if cuda else 'the CPU'} as {resolve_dtype(args.dtype, resolve_device(args.device, '--device'))}, "
        f"{args.threads} torch thread(s), median of {args.repeats} runs"
    )
    for name, gigabytes in peak.items():
        print(f"peak GPU memory allocated, {name}: {gigabytes:.2f} GiB")
    totals = {}
    for clock_index, clock_name in enumerate(("wall", "CPU")):
        for name, side_runs in runs.items():
            load = statistics.median(run["load"][clock_index] for run in side_runs)
            generate = statistics.median(run["generate"][clock_index] for run in side_runs)
            totals[name, clock_name] = statistics.median(
                run["load"][clock_index] + run["generate"][clock_index] for run in side_runs
            )
            print(
                f"{clock_name:>4} {name:>5}: total {totals[name, clock_name]:7.3f} s = load {load:6.3f} s + generate "
                f"{generate:7.3f} s ({generate / args.images * 1000:6.1f} ms per image)"
            )
        overhead = totals["stage", clock_name] / totals["bare", clock_name] - 1
        print(f"{clock_name:>4} overhead of the stage: {overhead:+.1%}")


if __name__ == "__main__":
    main()
