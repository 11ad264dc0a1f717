"""DiffAugment (Zhao et al. 2020): color, translation, cutout, applied to real and fake alike.

As the official training/diffaug.py (translation 1/8, cutout 0.2). Off by default: GDD/D2O find it hurts (paper 000 Table 1b, paper 001 Table 2). Randomness
comes from a `rand(*shape)` callable (the method passes ctx.rand with its own stream names), so
distributed runs stay equal to one process.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch.nn import functional as F

POLICIES = ("color", "translation", "cutout")
Rand = Callable[..., torch.Tensor]


def parse_policy(policy: str) -> tuple[str, ...]:
    parts = tuple(p for p in policy.replace(" ", "").split(",") if p)
    bad = [p for p in parts if p not in POLICIES]
    if bad:
        raise ValueError(f"unknown DiffAugment policy {bad[0]!r}; choose a comma list of {list(POLICIES)}")
    return parts


def _color(x, rand):
    b = x.shape[0]
    x = x + (rand(b, 1, 1, 1).to(x) - 0.5)  # brightness
    mean = x.mean(1, keepdim=True)
    x = (x - mean) * (rand(b, 1, 1, 1).to(x) * 2) + mean  # saturation
    mean = x.mean((1, 2, 3), keepdim=True)
    return (x - mean) * (rand(b, 1, 1, 1).to(x) + 0.5) + mean  # contrast


def _translation(x, rand, ratio=0.125):
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    tx = (rand(b).to(x.device) * (2 * sh + 1)).floor().long() - sh
    ty = (rand(b).to(x.device) * (2 * sw + 1)).floor().long() - sw
    gx = (torch.arange(h, device=x.device).view(1, h, 1) + tx.view(b, 1, 1) + 1).clamp(0, h + 1)
    gy = (torch.arange(w, device=x.device).view(1, 1, w) + ty.view(b, 1, 1) + 1).clamp(0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])
    idx_b = torch.arange(b, device=x.device).view(b, 1, 1)
    return padded.permute(0, 2, 3, 1)[idx_b, gx, gy].permute(0, 3, 1, 2)


def _cutout(x, rand, ratio=0.2):  # official training/diffaug.py: 0.2
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ox = (rand(b).to(x.device) * (h + (1 - ch % 2))).floor().long()
    oy = (rand(b).to(x.device) * (w + (1 - cw % 2))).floor().long()
    gx = torch.arange(ch, device=x.device).view(1, ch, 1) + ox.view(b, 1, 1) - ch // 2
    gy = torch.arange(cw, device=x.device).view(1, 1, cw) + oy.view(b, 1, 1) - cw // 2
    mask = torch.ones(b, h, w, device=x.device, dtype=x.dtype)
    idx_b = torch.arange(b, device=x.device).view(b, 1, 1)
    mask[idx_b, gx.clamp(0, h - 1), gy.clamp(0, w - 1)] = 0
    return x * mask.unsqueeze(1)


_OPS = {"color": _color, "translation": _translation, "cutout": _cutout}


def diff_augment(x: torch.Tensor, policy: tuple[str, ...], rand: Rand) -> torch.Tensor:
    for name in policy:
        x = _OPS[name](x, rand)
    return x
