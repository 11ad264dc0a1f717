"""GAN-distillation and consistency-distillation losses (GDD/D2O, CD).

- Non-saturating GAN objective of GDD/D2O (paper 000 eq. 3/4, paper 001 section 3.3):
  D maximises log D(x) + log(1 - D(G(z))), G minimises -log D(G(z)). With logits l and
  D = sigmoid(l): -log D = softplus(-l), -log(1 - D) = softplus(l). A multi-scale (projected)
  discriminator returns one logit map per head; the objective is the sum over heads (eq. 4)
  of the mean over the batch (and over each head's spatial positions).
  The official GDD code sums the per-sample means over the (per-GPU) batch instead: the GDD
  plugin multiplies these means by that batch size (methods/plugins/gdd.py).
- Lazy R1 (Mescheder et al. 2018; lazy schedule of StyleGAN2): gamma/2 * E||grad_x D(x)||^2 on
  real images, evaluated every `interval` steps (from step `interval` on, as StyleGAN2 and the
  official GDD loop) and multiplied by `interval` so its average strength equals the non-lazy
  penalty. It is its own optimizer step; `lazy_adam_hparams` gives the main step's corrected
  learning rate and beta2.
- Instance distances for CD (paper 000 section 4.3, appendix B.2): squared L2, pseudo-Huber
  (Song & Dhariwal 2023, c = 0.00054 sqrt(d)) and LPIPS (Zhang et al. 2018) at 224x224.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

Logits = torch.Tensor | Sequence[torch.Tensor]

__all__ = ['Logits', 'generator_loss', 'discriminator_loss', 'r1_penalty', 'lazy_r1_weight', 'r1_due', 'lazy_adam_hparams', 'l2_distance', 'pseudo_huber_distance', 'torch_hub_checkpoint_dir', 'LPIPSDistance', 'make_distance']


def _as_list(logits: Logits) -> list[torch.Tensor]:
    if isinstance(logits, torch.Tensor):
        return [logits]
    logits = list(logits)
    if not logits:
        raise ValueError("GAN loss: got an empty list of discriminator logits")
    return logits


def _check_finite(t: torch.Tensor, what: str) -> None:
    if not torch.isfinite(t).all():
        bad = int((~torch.isfinite(t)).sum())
        raise FloatingPointError(f"{what}: {bad} non-finite values; lower the learning rate or the R1 gamma "
                                 "(a large gamma can explode a multi-logit projected discriminator, paper 000 section 3.2)")


def generator_loss(fake_logits: Logits) -> torch.Tensor:
    """Non-saturating generator loss: sum over heads of mean softplus(-l) = -log sigmoid(l)."""
    return sum(F.softplus(-l.float()).mean() for l in _as_list(fake_logits))


def discriminator_loss(real_logits: Logits, fake_logits: Logits) -> torch.Tensor:
    """Discriminator loss: sum over heads of mean softplus(-l_real) + mean softplus(l_fake)."""
    real, fake = _as_list(real_logits), _as_list(fake_logits)
    if len(real) != len(fake):
        raise ValueError(f"discriminator_loss: {len(real)} real heads but {len(fake)} fake heads")
    return sum(F.softplus(-r.float()).mean() + F.softplus(f.float()).mean() for r, f in zip(real, fake))


def r1_penalty(real_images: torch.Tensor, real_logits: Logits) -> torch.Tensor:
    """Per-sample ||d(sum of all logits)/d x||^2 averaged over the batch.

    `real_images` must require grad and `real_logits` must be computed from it; the graph is
    kept (create_graph) so the penalty trains the discriminator.
    """
    if not real_images.requires_grad:
        raise ValueError("r1_penalty: real_images must have requires_grad=True before the discriminator call")
    total = sum(l.float().sum() for l in _as_list(real_logits))
    (grad,) = torch.autograd.grad(total, real_images, create_graph=True)
    return grad.float().square().flatten(1).sum(1).mean()


def lazy_r1_weight(gamma: float, interval: int) -> float:
    """Weight of the R1 penalty on the steps where it is evaluated: gamma/2 * interval."""
    if interval < 1:
        raise ValueError(f"R1 interval must be >= 1, got {interval}")
    return 0.5 * gamma * interval


def r1_due(step: int, gamma: float, interval: int) -> bool:
    """Whether the lazy R1 step runs after this (0-based) update: steps interval, 2 interval, ...
    (Zyriix/GDD training_loop.py: batch_idx != 0 and batch_idx % r1_interval == 0)."""
    return gamma > 0 and interval > 0 and step > 0 and step % interval == 0


def lazy_adam_hparams(lr: float, betas: tuple[float, float], interval: int) -> tuple[float, tuple[float, float]]:
    """StyleGAN2's lazy-regularization correction of the main optimizer: c = interval /
    (interval + 1), lr * c and beta ** c (the official GDD loop: D's Adam lr*16/17, 0.99^(16/17))."""
    if interval < 1:
        raise ValueError(f"R1 interval must be >= 1, got {interval}")
    c = interval / (interval + 1)
    return lr * c, (betas[0] ** c, betas[1] ** c)


# --- instance distances (consistency distillation) ----------------------------------------
def l2_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample mean squared difference (B,)."""
    return (a.float() - b.float()).square().flatten(1).mean(1)


def pseudo_huber_distance(a: torch.Tensor, b: torch.Tensor, c: float | None = None) -> torch.Tensor:
    """sqrt(||a-b||^2 + c^2) - c per sample; c = 0.00054 sqrt(d) (iCT, Song & Dhariwal 2023)."""
    d = a[0].numel()
    c = 0.00054 * math.sqrt(d) if c is None else c
    return ((a.float() - b.float()).square().flatten(1).sum(1) + c * c).sqrt() - c


_TORCHVISION_BACKBONE_FILES = {"vgg": "vgg16-397923af.pth", "alex": "alexnet-owt-7be5be79.pth"}


def torch_hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


class LPIPSDistance(nn.Module):
    """LPIPS (lpips package) on images in [-1, 1], resized to 224 first (paper 000 B.4).

    The package ships only its linear calibration layers; the backbone comes from torchvision's
    pretrained file in $TORCH_HOME/hub/checkpoints. `backbone="pretrained"` requires that file
    (clear error otherwise); `"random"` uses a random backbone (offline tests) and sets
    `untrained = True`, which plugins record in their outputs; `"auto"` picks pretrained when the
    file is present.
    """

    def __init__(self, net: str = "vgg", backbone: str = "auto", resize: int | None = 224):
        super().__init__()
        import lpips  # local import: optional heavy dependency

        if net not in _TORCHVISION_BACKBONE_FILES:
            raise ValueError(f"LPIPS net {net!r} unsupported; choose one of {sorted(_TORCHVISION_BACKBONE_FILES)}")
        if backbone not in ("auto", "pretrained", "random"):
            raise ValueError(f"LPIPS backbone {backbone!r}: choose 'auto', 'pretrained' or 'random'")
        file = torch_hub_checkpoint_dir() / _TORCHVISION_BACKBONE_FILES[net]
        if backbone == "auto":
            backbone = "pretrained" if file.is_file() else "random"
        if backbone == "pretrained" and not file.is_file():
            raise FileNotFoundError(
                f"LPIPS needs torchvision's {net} weights at {file}; download them where a network exists "
                f"(torchvision.models) or copy the file there, or use backbone='random' for untrained tests")
        self.untrained = backbone == "random"
        self.resize = resize
        self.net = lpips.LPIPS(net=net, pretrained=True, pnet_rand=self.untrained, verbose=False)
        self.net.eval().requires_grad_(False)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.resize and a.shape[-1] != self.resize:
            a = F.interpolate(a.float(), size=(self.resize, self.resize), mode="bilinear", align_corners=False)
            b = F.interpolate(b.float(), size=(self.resize, self.resize), mode="bilinear", align_corners=False)
        if a.shape[1] == 1:  # grayscale data (digits): LPIPS backbones take RGB
            a, b = a.expand(-1, 3, -1, -1), b.expand(-1, 3, -1, -1)
        return self.net(a.float(), b.float(), normalize=False).flatten(1).mean(1)


def make_distance(name: str, lpips_backbone: str = "auto", lpips_resize: int | None = 224):
    """Callable (a, b) -> per-sample distance (B,) for 'l2', 'pseudo_huber' or 'lpips'."""
    if name == "l2":
        return l2_distance
    if name == "pseudo_huber":
        return pseudo_huber_distance
    if name == "lpips":
        return LPIPSDistance(backbone=lpips_backbone, resize=lpips_resize)
    from ..core.config import ConfigError, suggest

    choices = ("l2", "pseudo_huber", "lpips")
    raise ConfigError(f"unknown distance {name!r}{suggest(name, choices)}; choose one of {list(choices)}")
