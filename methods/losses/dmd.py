"""Distribution matching distillation: DMD (paper 003) and DMD2's EDM code (tianweiy/DMD2 main/edm).

Notation (docs/shared note section 2): x = G(z) the generator output, mu_real = the frozen
teacher, mu_fake = the fake score trained on detached generator samples, both EDM denoisers.

- Noise levels: a 1000-level Karras (rho = 7) table on [0.002, 80], ascending (index 0 =
  sigma_min), as DMD2 `edm_guidance.py` (k-diffusion ramp, then flipped).
- Distribution-matching gradient (paper eq. 7-8, Alg. 2): t ~ U{20..980}, x_t = x + sigma_t eps,
  grad = ((x - mu_real) - (x - mu_fake)) / mean_CHW |x - mu_real| (no epsilon; NaN/inf -> finite
  as torch.nan_to_num). It reaches x through 0.5 * mean((x - sg(x - grad))^2), whose gradient
  into x is grad / x.numel() (the dreamfusion trick DMD2 uses).
- Fake-score loss (eq. 6, Alg. 3): mean((sigma^-2 + sigma_data^-2)(mu_fake(x_t) - sg(x))^2),
  t over all levels.
- Regression (eq. 9): distance(G(z_ref), y_ref) averaged over the paired batch.
- DMD2's optional GAN on the fake score's bottleneck: non-saturating softplus losses.

Pure functions: the caller draws eps and t and runs the networks.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch.nn import functional as F

__all__ = [
    "dmd_karras_sigmas", "dmd_timestep_bounds", "dmd_distribution_matching_grad", "dmd_loss",
    "dmd_fake_score_loss", "dmd_regression_loss", "dmd2_generator_gan_loss", "dmd2_discriminator_gan_loss",
]


def dmd_karras_sigmas(num_train_timesteps: int = 1000, sigma_min: float = 0.002, sigma_max: float = 80.0,
                      rho: float = 7.0) -> torch.Tensor:
    """(T,) float32 Karras levels, ascending: [0] = sigma_min, [T-1] = sigma_max."""
    if num_train_timesteps < 2:
        raise ValueError(f"dmd_karras_sigmas: need at least 2 levels, got {num_train_timesteps}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"dmd_karras_sigmas: need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    ramp = torch.linspace(0, 1, num_train_timesteps)  # float32 as DMD2 (the table is a float32 buffer)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return torch.flip((hi + ramp * (lo - hi)) ** rho, dims=[0])


def dmd_timestep_bounds(num_train_timesteps: int = 1000, min_step_percent: float = 0.02,
                        max_step_percent: float = 0.98) -> tuple[int, int]:
    """(low, high_exclusive) for randint of the DM timesteps: (20, 981) with the defaults."""
    low = int(min_step_percent * num_train_timesteps)
    high = min(int(max_step_percent * num_train_timesteps) + 1, num_train_timesteps)
    if not 0 <= low < high:
        raise ValueError(f"dmd_timestep_bounds: empty range [{low}, {high}) from percents "
                         f"{min_step_percent}, {max_step_percent}")
    return low, high


@torch.no_grad()
def dmd_distribution_matching_grad(x: torch.Tensor, pred_real: torch.Tensor, pred_fake: torch.Tensor) -> torch.Tensor:
    """Per-element DM gradient, detached: ((x - mu_real) - (x - mu_fake)) / mean_CHW |x - mu_real|."""
    p_real = x - pred_real
    p_fake = x - pred_fake
    weight = p_real.abs().mean(dim=tuple(range(1, x.dim())), keepdim=True)
    return torch.nan_to_num((p_real - p_fake) / weight)


def dmd_loss(x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """0.5 * mean((x - sg(x - grad))^2): its gradient into x is grad / x.numel()."""
    return 0.5 * F.mse_loss(x, (x - grad).detach(), reduction="mean")


def dmd_fake_score_loss(pred_fake: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor,
                        sigma_data: float = 0.5) -> torch.Tensor:
    """mean((sigma^-2 + sigma_data^-2) * (pred_fake - sg(x))^2); sigma broadcasts (B,1,1,1)."""
    weight = sigma ** -2 + 1.0 / sigma_data ** 2
    return torch.mean(weight * (pred_fake - x.detach()) ** 2)


def dmd_regression_loss(g_ref: torch.Tensor, y_ref: torch.Tensor,
                        distance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """distance(G(z_ref), y_ref).mean(), `distance` returning one value per sample (B,)."""
    d = distance(g_ref, y_ref)
    if d.dim() != 1 or d.shape[0] != g_ref.shape[0]:
        raise ValueError(f"dmd_regression_loss: distance must return one value per sample ({g_ref.shape[0]},), "
                         f"got shape {tuple(d.shape)}")
    return d.mean()


def dmd2_generator_gan_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """softplus(-l_fake).mean() (non-saturating)."""
    return F.softplus(-logits_fake).mean()


def dmd2_discriminator_gan_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """(softplus(l_fake) + softplus(-l_real)).mean(); the two batches pair element by element as DMD2."""
    return (F.softplus(logits_fake) + F.softplus(-logits_real)).mean()
