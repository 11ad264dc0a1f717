"""Per-seed sampling, as EDM's generate.py does it.

Image i depends only on seed i: each seed gets its own torch.Generator, which draws the
latent first and then the class label. Batch size and process count therefore never change
an image. Generated images are quantized exactly as EDM does before anything is measured.
"""
from __future__ import annotations

import re
from typing import Iterator, Sequence

import torch


MAX_SEEDS = 10_000_000  # 20x the largest protocol (SiDA: 10 x 50k); a typo'd range fails fast


def parse_seeds(spec: str | int | Sequence[int]) -> list[int]:
    """'0-49999', '0,5,7-9' or a list -> list of ints (EDM's parse_int_list)."""
    if isinstance(spec, int):
        return [spec]
    if not isinstance(spec, str):
        return [int(s) for s in spec]
    seeds: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)-(\d+)", part)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                raise ValueError(f"seed range '{part}' is empty: write it as low-high")
            if len(seeds) + hi - lo + 1 > MAX_SEEDS:  # refused before a list of that size is built
                raise ValueError(f"seed list '{spec}' holds {len(seeds) + hi - lo + 1:,} seeds; at most {MAX_SEEDS:,} "
                                 f"are allowed (one image per seed; the papers' protocols use up to 500,000)")
            seeds.extend(range(lo, hi + 1))
        elif re.fullmatch(r"\d+", part):
            seeds.append(int(part))
        else:
            raise ValueError(f"cannot parse seed list '{spec}': use forms like '0-49999' or '0,5,7-9'")
    return seeds


class StackedRandomGenerator:
    """One generator per seed; draws are stacked along the batch dimension."""

    def __init__(self, device: torch.device | str, seeds: Sequence[int]):
        self.device = torch.device(device)
        self.generators = [torch.Generator(self.device).manual_seed(int(s) % (1 << 32)) for s in seeds]

    def randn(self, size: Sequence[int], **kwargs) -> torch.Tensor:
        assert size[0] == len(self.generators)
        return torch.stack([torch.randn(list(size[1:]), generator=g, device=self.device, **kwargs) for g in self.generators])

    def randn_like(self, x: torch.Tensor) -> torch.Tensor:
        return self.randn(x.shape, dtype=x.dtype)

    def randint(self, high: int, size: Sequence[int], **kwargs) -> torch.Tensor:
        assert size[0] == len(self.generators)
        return torch.stack(
            [torch.randint(high, size=list(size[1:]), generator=g, device=self.device, **kwargs) for g in self.generators]
        )


def seeded_inputs(
    seeds: Sequence[int],
    shape: Sequence[int],
    label_dim: int,
    device: torch.device | str = "cpu",
    class_idx: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, StackedRandomGenerator]:
    """Latents z ~ N(0, I) of `shape` (C, H, W) per seed, then one-hot labels per seed.

    Returns the generator too, so samplers with stochastic steps (S_churn) keep drawing per seed.
    """
    rnd = StackedRandomGenerator(device, seeds)
    z = rnd.randn([len(seeds), *shape])
    labels = None
    if label_dim:
        labels = torch.eye(label_dim, device=rnd.device)[rnd.randint(label_dim, [len(seeds)])]
        if class_idx is not None:
            if not 0 <= class_idx < label_dim:
                raise ValueError(f"class {class_idx} is out of range for a generator with {label_dim} classes")
            labels.zero_()
            labels[:, class_idx] = 1
    elif class_idx is not None:
        raise ValueError("--class was given but the generator is unconditional (label_dim 0)")
    return z, labels, rnd


def quantize(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float images -> uint8 exactly as EDM: (x * 127.5 + 128).clip(0, 255)."""
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).flatten(1).any(1).sum())
        raise FloatingPointError(f"{bad} of {x.shape[0]} generated images contain NaN or Inf values")
    return (x * 127.5 + 128).clip(0, 255).to(torch.uint8)


def iter_generated(
    generator: torch.nn.Module,
    seeds: Sequence[int],
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    class_idx: int | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> Iterator[tuple[list[int], torch.Tensor]]:
    """Yield (seeds, uint8 images NCHW) batches from G(z, labels) without touching disk.

    `generator` has img_channels, img_resolution, label_dim attributes and maps N(0, I) latents
    (and one-hot labels) to images in [-1, 1]. With world_size > 1 each rank takes every
    world_size-th batch, as EDM does.
    """
    seeds = list(seeds)
    shape = (generator.img_channels, generator.img_resolution, generator.img_resolution)
    label_dim = int(getattr(generator, "label_dim", 0) or 0)
    batches = [seeds[i : i + batch_size] for i in range(0, len(seeds), batch_size)]
    for batch_seeds in batches[rank::world_size]:
        z, labels, rnd = seeded_inputs(batch_seeds, shape, label_dim, device, class_idx)
        with torch.no_grad():
            if getattr(generator, "uses_per_seed_noise", False):
                x = generator(z, labels, randn_like=rnd.randn_like)
            else:
                x = generator(z, labels)
        yield batch_seeds, quantize(x)
