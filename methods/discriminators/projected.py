"""Projected-GAN discriminator (Sauer et al. 2021) as the official GDD/D2O code builds it
(paper 000 section 3.2, eq. 4; Zyriix/GDD pg_modules/, = autonomousvision/projected-gan).

Per frozen feature network P:
  raw maps (4 scales; DeiT: token grids reassembled DPT-style into a 56/28/14/7 pyramid of
  96/192/384/768 channels by random convs)
  -> CCM: random 1x1 convs to 64/128/256/512 channels (cout 64, "expand")
  -> CSM: FeatureFusionBlocks from the deepest level up: add the deeper output, upsample x2
     (bilinear, align_corners), 1x1 conv halving the width (not on level 0): widths
     64/64/128/256 at twice the raw resolution
  -> one trainable head per scale: DownBlocks (spectral-norm 4x4 stride-2 conv, BatchNorm in
     train mode, LeakyReLU 0.2) from the nominal start size down to 8, then a spectral-norm
     4x4 conv: PATCH logits (11x11 per VGG head, 4x4 per EfficientNet/DeiT head at 224).
The random CCM/CSM/reassembly convs keep PyTorch's default init (drawn from a private seed)
and never train. Class-conditional heads project onto an embedding of the class (ImageNet
embedding of tf_efficientnet_lite0 + linear + leaky ReLU, StyleGAN-XL style).

forward returns one logit tensor per feature network: its heads' (B, H*W) maps concatenated
per sample, (B, N). The official loss averages a sample's N logits (methods/plugins/gdd.py).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import spectral_norm

from .feature_networks import FrozenFeatureNetwork

CCM_COUT = 64  # official backbone_kwargs.cout, with expand=True: 64/128/256/512
# Projected GAN's head widths by (nominal) feature size ("nfc_midas").
HEAD_CHANNELS = {1: 2048, 2: 1024, 4: 512, 8: 512, 16: 256, 32: 128, 64: 64, 128: 64, 256: 32, 512: 16, 1024: 8}
VIT_PYRAMID = (96, 192, 384, 768)  # DPT reassembly widths for ViT-Base/DeiT-Base
EMBED_CLASSES, EMBED_DIM = 1000, 320  # tf_efficientnet_lite0's ImageNet class embedding (in_embeddings/)
Augment = Callable[[torch.Tensor], torch.Tensor]


def _seeded(seed: int, build: Callable[[], nn.Module]) -> nn.Module:
    """Build modules with PyTorch's default init from a private seed (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


class ViTReassemble(nn.Module):
    """DPT-style reassembly (official feature_networks/vit.py, readout 'ignore'): 1x1 convs to
    96/192/384/768 channels, then x4 / x2 transposed convs, identity, and a stride-2 3x3 conv:
    a 14x14 token grid becomes a 56/28/14/7 pyramid."""

    def __init__(self, vit_channels: int = 768, widths=VIT_PYRAMID):
        super().__init__()
        w = widths
        self.levels = nn.ModuleList([
            nn.Sequential(nn.Conv2d(vit_channels, w[0], 1), nn.ConvTranspose2d(w[0], w[0], 4, stride=4)),
            nn.Sequential(nn.Conv2d(vit_channels, w[1], 1), nn.ConvTranspose2d(w[1], w[1], 2, stride=2)),
            nn.Sequential(nn.Conv2d(vit_channels, w[2], 1)),
            nn.Sequential(nn.Conv2d(vit_channels, w[3], 1), nn.Conv2d(w[3], w[3], 3, stride=2, padding=1)),
        ])
        self.out_channels = list(w)

    def forward(self, grids: list[torch.Tensor]) -> list[torch.Tensor]:
        return [level(g) for level, g in zip(self.levels, grids)]


class FeatureFusionBlock(nn.Module):
    """CSM level: (deeper + same) -> upsample x2 (bilinear, align_corners=True) -> 1x1 conv."""

    def __init__(self, features: int, expand: bool):
        super().__init__()
        self.out_conv = nn.Conv2d(features, features // 2 if expand else features, 1)

    def forward(self, deeper: torch.Tensor, same: torch.Tensor | None = None) -> torch.Tensor:
        x = deeper
        if same is not None:
            if x.shape[-2:] != same.shape[-2:]:  # only for pyramids that do not halve (not official nets)
                x = F.interpolate(x, size=same.shape[-2:], mode="bilinear", align_corners=True)
            x = x + same
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class RandomProjection(nn.Module):
    """(Reassembly +) CCM + CSM: fixed random mixing of one feature network's maps."""

    def __init__(self, in_channels: list[int], seed: int, width_scale: float = 1.0, vit_tokens: bool = False):
        super().__init__()

        def build():
            mods = nn.ModuleDict()
            chans = list(in_channels)
            if vit_tokens:
                mods["reassemble"] = ViTReassemble(chans[0])
                chans = mods["reassemble"].out_channels
            cout = max(8, int(CCM_COUT * width_scale))
            ccm_w = [cout * 2 ** i for i in range(len(chans))]
            mods["ccm"] = nn.ModuleList(nn.Conv2d(c, w, 1) for c, w in zip(chans, ccm_w))
            mods["csm"] = nn.ModuleList(FeatureFusionBlock(w, expand=i > 0) for i, w in enumerate(ccm_w))
            return mods, [ccm_w[0]] + [w // 2 for w in ccm_w[1:]]

        mods, self.out_channels = _seeded(seed, build)
        self.reassemble = mods["reassemble"] if "reassemble" in mods else None
        self.ccm, self.csm = mods["ccm"], mods["csm"]
        self.requires_grad_(False)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.reassemble is not None:
            feats = self.reassemble(feats)
        mixed = [conv(f) for conv, f in zip(self.ccm, feats)]
        out = [None] * len(mixed)
        out[-1] = self.csm[-1](mixed[-1])
        for i in range(len(mixed) - 2, -1, -1):
            out[i] = self.csm[i](out[i + 1], mixed[i])
        return out


def sn_conv(*args, **kwargs) -> nn.Module:
    return spectral_norm(nn.Conv2d(*args, **kwargs))


class DownBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(sn_conv(cin, cout, 4, 2, 1, bias=True), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))


class ClassEmbedding(nn.Module):
    """Class -> cmap: ImageNet embedding (1000 x 320) + StyleGAN2 FullyConnectedLayer (weight
    N(0,1) scaled by 1/sqrt(in), zero bias) + leaky ReLU 0.2 with gain sqrt(2). Classes index
    the embedding's rows by the one-hot argmax, as official (CIFAR-10 uses rows 0..9)."""

    def __init__(self, cmap_dim: int, weight: torch.Tensor | None):
        super().__init__()
        self.embed = nn.Embedding(EMBED_CLASSES, EMBED_DIM)
        if weight is not None:
            with torch.no_grad():
                self.embed.weight.copy_(weight)
        self.proj_weight = nn.Parameter(torch.randn(cmap_dim, EMBED_DIM))
        self.proj_bias = nn.Parameter(torch.zeros(cmap_dim))

    def forward(self, onehot: torch.Tensor) -> torch.Tensor:
        e = self.embed(onehot.argmax(1))
        h = F.linear(e, self.proj_weight / math.sqrt(EMBED_DIM), self.proj_bias)
        return F.leaky_relu(h, 0.2) * math.sqrt(2)


class PatchHead(nn.Module):
    """Projected GAN's SingleDisc / SingleDiscCond: DownBlocks start_sz -> end_sz, then a
    spectral-norm conv (kernel 4 for end_sz >= 8) to 1 logit (or cmap_dim for projection)."""

    def __init__(self, channels: int, start_sz: int, end_sz: int, label_dim: int = 0, cmap_dim: int = 64,
                 embed_weight: torch.Tensor | None = None, width_scale: float = 1.0):
        super().__init__()
        nfc = {sz: max(8, int(c * width_scale)) for sz, c in HEAD_CHANNELS.items()}
        if start_sz not in nfc:  # sizes that are not powers of two: the nearest one
            sizes = np.array(list(nfc))
            start_sz = int(sizes[np.argmin(abs(sizes - start_sz))])
        nfc[start_sz] = channels
        blocks = []
        while start_sz > end_sz:
            blocks.append(DownBlock(nfc[start_sz], nfc[start_sz // 2]))
            start_sz //= 2
        self.body = nn.Sequential(*blocks)
        kernel = 4 if end_sz >= 8 else max(1, end_sz // 2)
        self.label_dim, self.cmap_dim = label_dim, cmap_dim
        self.out = sn_conv(nfc[end_sz], cmap_dim if label_dim else 1, kernel, 1, 0, bias=False)
        self.cls_embed = ClassEmbedding(cmap_dim, embed_weight) if label_dim else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        h = self.out(self.body(x))
        if self.cls_embed is not None:
            if labels is None:
                raise ValueError("projected discriminator is class-conditional: pass one-hot labels")
            cmap = self.cls_embed(labels).to(h.dtype).view(-1, self.cmap_dim, 1, 1)
            h = (h * cmap).sum(1, keepdim=True) / math.sqrt(self.cmap_dim)
        return h.flatten(1)  # (B, positions) patch logits


class ProjectedDiscriminator(nn.Module):
    """forward(images in [-1, 1], labels, augment) -> one (B, N) logit tensor per feature network."""

    def __init__(self, feature_networks: list[FrozenFeatureNetwork], resolution: int, channels: int,
                 label_dim: int = 0, seed: int = 0, width_scale: float = 1.0, cmap_dim: int = 64,
                 embed_weight: torch.Tensor | None = None, embedding_source: str = "random"):
        super().__init__()
        if not feature_networks:
            raise ValueError("ProjectedDiscriminator needs at least one feature network")
        if label_dim > EMBED_CLASSES:
            raise ValueError(f"class embedding has {EMBED_CLASSES} rows; label_dim {label_dim} does not fit")
        self.features = nn.ModuleList(feature_networks)
        self.projections = nn.ModuleList()
        self.heads = nn.ModuleList()
        self.logit_sizes: list[list[int]] = []  # per feature network: each head's H (= W) of its patch map
        for k, fn in enumerate(feature_networks):
            with torch.no_grad():  # one probe of the frozen network gives every shape
                raw = fn(torch.zeros(1, channels, resolution, resolution, device=fn.mean.device))
                fn.channels = [r.shape[1] for r in raw]
                proj = RandomProjection(fn.channels, seed=seed + 1000 * k, width_scale=width_scale,
                                        vit_tokens=fn.vit_tokens).to(fn.mean.device)
                mixed = proj(raw)
                nominal = list(fn.nominal_resolutions or [m.shape[-1] for m in mixed])[:len(mixed)]
                end_sz = 8 if nominal[-1] >= 8 else nominal[-1]
                heads = nn.ModuleList(PatchHead(w, s, end_sz, label_dim, cmap_dim, embed_weight, width_scale)
                                      for w, s in zip(proj.out_channels, nominal)).to(fn.mean.device).eval()
                onehot = F.one_hot(torch.zeros(1, dtype=torch.long), label_dim).float().to(fn.mean.device) if label_dim else None
                self.logit_sizes.append([int(round(math.sqrt(h(m, onehot).shape[1]))) for h, m in zip(heads, mixed)])
            self.projections.append(proj)
            self.heads.append(heads)
        self.label_dim = label_dim
        self.embedding_source = embedding_source if label_dim else "none"
        self.train()

    @property
    def untrained_features(self) -> bool:
        return any(fn.untrained for fn in self.features)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None,
                augment: Augment | None = None) -> list[torch.Tensor]:
        """`augment` (DiffAugment) is drawn afresh for each feature network, as official."""
        logits = []
        for fn, proj, heads in zip(self.features, self.projections, self.heads):
            x = augment(images) if augment is not None else images
            feats = proj(fn(x))
            logits.append(torch.cat([head(f, labels) for head, f in zip(heads, feats)], dim=1))
        return logits
