"""Projected-GAN discriminator (Sauer et al. 2021) as used by GDD/D2O (paper 000 section 3.2, eq. 4).

Per frozen feature network P: features at four scales -> random, fixed cross-channel mixing
(CCM, 1x1 convs) -> random, fixed cross-scale mixing (CSM, top-down: the deeper map is
upsampled and added before a 1x1 conv) -> one trainable head D_l per scale, which returns a
logit map. Several feature networks (VGG16-BN + EfficientNet-lite0 on CIFAR-10) each get
their own projections and heads; the GAN loss sums over every head (eq. 4). For class-
conditional data each head projects its output onto a class embedding as StyleGAN-XL's
projected discriminator (paper 000 B.4: "simple class embedding in discriminator").
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import spectral_norm

from .feature_networks import FrozenFeatureNetwork

# Projected GAN's CCM widths per scale (its "expand" setting doubles them per level).
CCM_CHANNELS = (64, 128, 256, 512)


def _fixed_conv(cin: int, cout: int, generator: torch.Generator) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, kernel_size=1, bias=True)
    with torch.no_grad():  # Kaiming-normal random mixing, drawn from a private seeded generator
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * math.sqrt(2.0 / cin))
        conv.bias.zero_()
    conv.requires_grad_(False)
    return conv


class RandomProjection(nn.Module):
    """CCM + CSM: fixed random mixing of one feature network's multi-scale maps."""

    def __init__(self, in_channels: list[int], seed: int, width_scale: float = 1.0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        widths = [max(8, int(CCM_CHANNELS[min(i, len(CCM_CHANNELS) - 1)] * width_scale)) for i in range(len(in_channels))]
        self.out_channels = widths
        self.ccm = nn.ModuleList(_fixed_conv(c, w, g) for c, w in zip(in_channels, widths))
        # CSM: level i receives the (upsampled) mixed level i+1 projected to its width.
        self.csm = nn.ModuleList(_fixed_conv(widths[i + 1], widths[i], g) for i in range(len(widths) - 1))

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        mixed = [conv(f) for conv, f in zip(self.ccm, feats)]
        out = [None] * len(mixed)
        out[-1] = mixed[-1]
        for i in range(len(mixed) - 2, -1, -1):
            deeper = F.interpolate(out[i + 1], size=mixed[i].shape[-2:], mode="bilinear", align_corners=False)
            out[i] = mixed[i] + self.csm[i](deeper)
        return out


class DiscHead(nn.Module):
    """Trainable head: strided 4x4 spectral-norm convs down to <= 4x4, then a logit conv."""

    def __init__(self, channels: int, resolution: int, label_dim: int = 0, cmap_dim: int = 64, max_width: int = 512):
        super().__init__()
        layers: list[nn.Module] = []
        c, res = channels, resolution
        while res > 4:
            cout = min(max_width, c * 2)
            layers += [spectral_norm(nn.Conv2d(c, cout, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            c, res = cout, (res - 2) // 2 + 1  # 4x4 kernel, stride 2, padding 1
        self.body = nn.Sequential(*layers)
        self.label_dim = label_dim
        out = cmap_dim if label_dim else 1
        self.out = spectral_norm(nn.Conv2d(c, out, kernel_size=min(4, res), padding=0))
        if label_dim:  # StyleGAN-XL projection: <features, embed(c)> / sqrt(cmap_dim)
            self.embed = nn.Linear(label_dim, cmap_dim)
            self.cmap_dim = cmap_dim

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        h = self.out(self.body(x))
        if self.label_dim:
            if labels is None:
                raise ValueError("projected discriminator is class-conditional: pass one-hot labels")
            cmap = self.embed(labels.to(h.dtype)).view(-1, self.cmap_dim, 1, 1)
            h = (h * cmap).sum(1, keepdim=True) / math.sqrt(self.cmap_dim)
        return h.flatten(1)  # (B, positions) logits


class ProjectedDiscriminator(nn.Module):
    """forward(images in [-1, 1], labels) -> list of per-head logits (B, positions)."""

    def __init__(self, feature_networks: list[FrozenFeatureNetwork], resolution: int, channels: int,
                 label_dim: int = 0, seed: int = 0, width_scale: float = 1.0, cmap_dim: int = 64):
        super().__init__()
        if not feature_networks:
            raise ValueError("ProjectedDiscriminator needs at least one feature network")
        self.features = nn.ModuleList(feature_networks)
        self.projections = nn.ModuleList()
        self.heads = nn.ModuleList()
        for k, fn in enumerate(feature_networks):
            shapes = fn.infer_channels(resolution, channels)
            proj = RandomProjection([c for c, _ in shapes], seed=seed + 1000 * k, width_scale=width_scale)
            self.projections.append(proj)
            self.heads.append(nn.ModuleList(DiscHead(w, s, label_dim, cmap_dim) for w, (_, s) in zip(proj.out_channels, shapes)))
        self.label_dim = label_dim

    @property
    def untrained_features(self) -> bool:
        return any(fn.untrained for fn in self.features)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> list[torch.Tensor]:
        logits = []
        for fn, proj, heads in zip(self.features, self.projections, self.heads):
            feats = proj(fn(images))
            logits += [head(f, labels) for head, f in zip(heads, feats)]
        return logits
