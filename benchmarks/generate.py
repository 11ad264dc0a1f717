"""Writing generated images: EDM-style PNG folders, an .npz of uint8 images, sample grids.

`generate_images` is the engine of `onestep generate` (a drop-in for EDM's generate.py):
per-seed latents and labels from onestep.benchmarks.sampling, so image i depends only on
seed i (never on the batch size), quantized exactly as EDM. Files:
- PNG: `{seed:06d}.png` in the output folder, or `{seed - seed % 1000:06d}/{seed:06d}.png`
  with `subdirs` (EDM's layout); 1-channel images are grayscale ('L'), 3-channel 'RGB'.
- NPZ: `images` uint8 (N, H, W, C), `seeds` int64 (N,), and `labels` int64 (N,) for
  conditional generators (the class index each image was generated with).
"""
from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from onestep.methods.core.atomic import atomic_write, atomic_write_bytes

from .progress import Progress
from .sampling import iter_generated, seeded_inputs

FORMATS = ("png", "npz")


def _to_numpy_uint8(images) -> np.ndarray:
    arr = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if arr.dtype != np.uint8:
        raise TypeError(f"expected uint8 images (quantize them first with sampling.quantize), got {arr.dtype}")
    if arr.ndim != 4 or arr.shape[1] not in (1, 3):
        raise ValueError(f"expected images shaped (N, C, H, W) with C = 1 or 3, got {arr.shape}")
    return arr


def png_bytes(image_chw: np.ndarray) -> bytes:
    """One uint8 (C, H, W) image as PNG bytes ('L' for 1 channel, 'RGB' for 3), as EDM saves."""
    import PIL.Image

    hwc = np.ascontiguousarray(image_chw.transpose(1, 2, 0))
    img = PIL.Image.fromarray(hwc[:, :, 0], "L") if hwc.shape[2] == 1 else PIL.Image.fromarray(hwc, "RGB")
    buf = io.BytesIO()
    img.save(buf, format="png")
    return buf.getvalue()


def _write_image_file(path: Path, data: bytes) -> None:
    """Write-then-rename (never a truncated PNG under the final name) without atomic_write's
    fsync: 50,000 fsyncs would dominate a generation run on a shared filesystem."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def image_path(outdir: str | os.PathLike, seed: int, subdirs: bool = False) -> Path:
    """EDM's naming: {seed:06d}.png, grouped by thousands with subdirs."""
    outdir = Path(outdir)
    return (outdir / f"{seed - seed % 1000:06d}" if subdirs else outdir) / f"{seed:06d}.png"


def generated_images(generator, seeds: Sequence[int], device: torch.device | str = "cpu", class_idx: int | None = None,
                     batch_size: int = 64) -> np.ndarray:
    """uint8 (N, C, H, W) images of a Generator for `seeds` (per-seed, as everywhere)."""
    batches = [imgs.cpu().numpy() for _, imgs in iter_generated(generator, list(seeds), batch_size, device, class_idx)]
    return np.concatenate(batches)


def save_image_grid(images_uint8, path: str | os.PathLike, nrow: int | None = None, padding: int = 0) -> Path:
    """Tile uint8 (N, C, H, W) images (tensor or array) into one PNG, row-major, `nrow` images
    per row (default: ceil(sqrt(N))); unfilled cells and `padding` pixels between cells are
    black. For a generator: save_image_grid(generated_images(G, seeds), path)."""
    arr = _to_numpy_uint8(images_uint8)
    n, c, h, w = arr.shape
    if n == 0:
        raise ValueError("save_image_grid: no images to tile")
    nrow = int(nrow or math.ceil(math.sqrt(n)))
    if nrow < 1:
        raise ValueError(f"save_image_grid: nrow must be >= 1, got {nrow}")
    ncol_rows = math.ceil(n / nrow)
    grid = np.zeros((c, ncol_rows * (h + padding) - padding, nrow * (w + padding) - padding), dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, nrow)
        y, x = r * (h + padding), q * (w + padding)
        grid[:, y : y + h, x : x + w] = arr[i]
    return atomic_write_bytes(path, png_bytes(grid))


def enlarge_for_view(images_uint8, min_size: int = 64):
    """Nearest-neighbour upscaling of small images (8x8 digits) by a whole factor so a grid is
    legible in a viewer (the teacher's sample grid does the same); larger images unchanged."""
    arr = _to_numpy_uint8(images_uint8)
    scale = max(1, min_size // arr.shape[-1])
    return arr if scale == 1 else arr.repeat(scale, axis=-1).repeat(scale, axis=-2)


def save_npz(path: str | os.PathLike, images_nchw: np.ndarray, seeds: Sequence[int], labels: np.ndarray | None) -> Path:
    """Write the NPZ layout described in the module docstring (atomically)."""
    arrays = {"images": np.ascontiguousarray(images_nchw.transpose(0, 2, 3, 1)), "seeds": np.asarray(seeds, np.int64)}
    if labels is not None:
        arrays["labels"] = np.asarray(labels, np.int64)
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read an .npz written by `save_npz`, checking its layout."""
    with np.load(path, allow_pickle=False) as data:
        out = {k: data[k] for k in data.files}
    images = out.get("images")
    if images is None or images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] not in (1, 3):
        raise ValueError(f"'{path}' is not an onestep image archive: expected 'images' uint8 (N, H, W, C) with C = 1 or 3")
    if "seeds" in out and len(out["seeds"]) != len(images):
        raise ValueError(f"'{path}': {len(out['seeds'])} seeds for {len(images)} images")
    return out


def load_png_images(outdir: str | os.PathLike, seeds: Sequence[int], subdirs: bool = False) -> np.ndarray:
    """Read back the PNGs `generate_images` wrote for `seeds` as uint8 (N, C, H, W)."""
    import PIL.Image

    out = []
    for seed in seeds:
        path = image_path(outdir, seed, subdirs)
        if not path.is_file():
            raise FileNotFoundError(f"image for seed {seed} not found at '{path}'")
        arr = np.asarray(PIL.Image.open(path))
        out.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
    shapes = {a.shape for a in out}
    if len(shapes) > 1:
        raise ValueError(f"images in '{outdir}' have different shapes {sorted(shapes)}: the folder mixes runs")
    return np.stack(out)


def _labels_for(seeds: Sequence[int], generator, device, class_idx) -> np.ndarray | None:
    """The class index each seed is generated with (seeded_inputs draws latent then label)."""
    label_dim = int(getattr(generator, "label_dim", 0) or 0)
    if not label_dim:
        return None
    shape = (generator.img_channels, generator.img_resolution, generator.img_resolution)
    _, onehot, _ = seeded_inputs(seeds, shape, label_dim, device, class_idx)
    return onehot.argmax(dim=1).cpu().numpy()


def generate_images(
    generator: torch.nn.Module,
    seeds: Sequence[int],
    outdir: str | os.PathLike | None = None,
    *,
    fmt: str = "png",
    npz_path: str | os.PathLike | None = None,
    subdirs: bool = False,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    class_idx: int | None = None,
    grid: str | os.PathLike | None = None,
    grid_nrow: int | None = None,
    progress: bool = True,
    rank: int = 0,
    world_size: int = 1,
) -> dict:
    """Generate one image per seed and write them; returns a summary (JSON-able).

    fmt 'png' writes EDM's folder layout under `outdir`; fmt 'npz' writes one archive at
    `npz_path` (default `outdir/images.npz`). `grid` also writes a sample grid of the first
    images (at most 256). With world_size > 1 each rank writes its own batches (PNG only).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {FORMATS}")
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("no seeds given: pass e.g. --seeds 0-49999")
    if len(set(seeds)) != len(seeds):
        raise ValueError("the seed list repeats seeds; each seed names one image")
    if fmt == "npz":
        if world_size > 1:
            raise ValueError("npz output is written by a single process; use png with several processes")
        if npz_path is None:
            if outdir is None:
                raise ValueError("npz output needs an output path (--outdir DIR or FILE.npz)")
            npz_path = Path(outdir) / "images.npz"
    elif outdir is None:
        raise ValueError("png output needs an output folder (--outdir DIR)")
    if grid is not None and world_size > 1:
        raise ValueError("a grid needs every rank's images: write it after all ranks finish "
                         "(save_image_grid(load_png_images(outdir, seeds[:n]), path)), as `onestep generate` does")

    was_training = isinstance(generator, torch.nn.Module) and generator.training
    if isinstance(generator, torch.nn.Module):
        generator = generator.to(device).eval()
    try:
        return _generate(generator, seeds, outdir, fmt, npz_path, subdirs, batch_size, device, class_idx, grid,
                         grid_nrow, progress, rank, world_size)
    finally:
        if was_training:
            generator.train()


def _generate(generator, seeds, outdir, fmt, npz_path, subdirs, batch_size, device, class_idx, grid, grid_nrow,
              progress, rank, world_size) -> dict:
    grid_cap = 256
    kept: list[np.ndarray] = []  # all images for npz; the first few for the grid
    kept_seeds: list[int] = []
    labels: list[np.ndarray] = []
    # iter_generated gives this rank every world_size-th batch of batch_size seeds
    my_batches = range(rank * batch_size, len(seeds), world_size * batch_size)
    bar = Progress("generating", sum(len(seeds[i : i + batch_size]) for i in my_batches), progress and rank == 0)
    written = 0
    for batch_seeds, images in iter_generated(generator, seeds, batch_size, device, class_idx, rank, world_size):
        arr = images.cpu().numpy()
        if fmt == "png":
            for seed, img in zip(batch_seeds, arr):
                _write_image_file(image_path(outdir, seed, subdirs), png_bytes(img))
        if fmt == "npz" or (grid is not None and len(kept_seeds) < grid_cap):
            kept.append(arr)
            kept_seeds.extend(batch_seeds)
        if fmt == "npz":
            batch_labels = _labels_for(batch_seeds, generator, device, class_idx)
            if batch_labels is not None:
                labels.append(batch_labels)
        written += len(batch_seeds)
        bar.update(len(batch_seeds))
    bar.close()
    images_all = np.concatenate(kept) if kept else None
    summary: dict = {"num_images": written, "format": fmt, "img_resolution": int(generator.img_resolution),
                     "img_channels": int(generator.img_channels), "label_dim": int(getattr(generator, "label_dim", 0) or 0),
                     "nfe": getattr(generator, "nfe", None), "class": class_idx}
    if fmt == "npz":
        summary["npz"] = str(save_npz(npz_path, images_all, kept_seeds, np.concatenate(labels) if labels else None))
    else:
        summary["outdir"] = str(outdir)
    if grid is not None and images_all is not None:
        summary["grid"] = str(save_image_grid(enlarge_for_view(images_all[:grid_cap]), grid, grid_nrow))
    return summary
