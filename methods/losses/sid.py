"""Score identity distillation: SiD, SiDA and SiD2A (paper 002; its equations were lost in the
seed text, so the official code, mingyuanzhou/SiD branch `sida` @ a5510fdf, is the algebra).

Contract: /work/shared/notes/score-and-trajectory-methods.md section 5. Citations are
`sida_training/sida_loss.py` (loss) and `sida_training/sida_training_loop.py` (loop) lines.

Conventions: images (B, C, H, W); "per element" = the images' shape, "per sample" = (B, 1, 1, 1).
Every returned loss is minimised as returned. Nothing is detached unless stated. No randomness
inside: the caller draws u, normal, n and passes them. No NaN filtering here (the plugin drops
NaN samples before calling, as the official code does).
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = [
    "sid_generator_sigma", "edm_lognormal_sigma", "edm_loss_weight", "sid_weight_factor", "sid_generator_loss",
    "sid_fake_score_loss", "sida_generator_adv_loss", "sida_discriminator_loss", "sida_generator_total",
    "sida_fake_score_total", "sida_phase",
]


def sid_generator_sigma(u: torch.Tensor, t_max: float = 800, sigma_min: float = 0.002, sigma_max: float = 80.0,
                        rho: float = 7.0) -> torch.Tensor:
    """Generator-step noise level (loss :27-34): t = u t_max/1000, sigma on EDM's rho schedule with
    t = 0 -> sigma_min; t_max = 800 caps sigma near 24.4 (never sigma_max)."""
    t = u * (t_max / 1000)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + (1 - t) * (lo - hi)) ** rho


def edm_lognormal_sigma(normal: torch.Tensor, p_mean: float = -1.2, p_std: float = 1.2) -> torch.Tensor:
    """Fake-score-step noise level (loss :80-81): EDM's log-normal exp(normal p_std + p_mean)."""
    return (normal * p_std + p_mean).exp()


def edm_loss_weight(sigma: torch.Tensor, sigma_data: float = 0.5) -> torch.Tensor:
    """EDM's lambda(sigma) = (sigma^2 + sigma_d^2) / (sigma sigma_d)^2 (loss :36, :82)."""
    return (sigma ** 2 + sigma_data ** 2) / (sigma * sigma_data) ** 2


def sid_weight_factor(y: torch.Tensor, y_real: torch.Tensor) -> torch.Tensor:
    """Per-sample normaliser w_i = mean_CHW |y - y_real| in float32, at least 1e-5, without
    gradient (loss :64-65)."""
    with torch.no_grad():
        return (y - y_real).abs().to(torch.float32).mean(dim=[1, 2, 3], keepdim=True).clip(min=1e-5)


def sid_generator_loss(y: torch.Tensor, y_real: torch.Tensor, y_fake: torch.Tensor, alpha: float,
                       weight_factor: torch.Tensor | None = None) -> torch.Tensor:
    """SiD generator loss per element (loss :67):
    (y_real - y_fake) * ((y_real - y) - alpha (y_real - y_fake)) / w.

    y is the generator output (with grad); y_real / y_fake are the teacher's and the fake score's
    denoisings of y + sigma n, not detached (gradients reach y through both networks' inputs)."""
    if weight_factor is None:
        weight_factor = sid_weight_factor(y, y_real)
    diff = y_real - y_fake
    return diff * ((y_real - y) - alpha * diff) / weight_factor


def sid_fake_score_loss(y_fake: torch.Tensor, y: torch.Tensor, sigma: torch.Tensor,
                        sigma_data: float = 0.5) -> torch.Tensor:
    """Fake score denoising loss per element, lambda(sigma) (y_fake - y)^2 (loss :115, :176).
    The caller passes y detached (the official code generates it under no_grad)."""
    return edm_loss_weight(sigma, sigma_data) * (y_fake - y) ** 2


def _group_means(values: torch.Tensor, group_size: int | None) -> torch.Tensor:
    """Per sample, the mean of `values` over all elements of its group of consecutive samples."""
    b = values.shape[0]
    g = b if group_size is None else int(group_size)
    if g <= 0 or b % g:
        raise ValueError(f"adversarial normalization group {group_size} must divide the batch of {b} samples")
    means = values.reshape(b // g, -1).mean(dim=1)
    return means.repeat_interleave(g).view(b, *([1] * (values.dim() - 1)))


def sida_generator_adv_loss(logits_fake: torch.Tensor, weight_factor: torch.Tensor,
                            group_size: int | None = None) -> torch.Tensor:
    """SiDA generator adversarial term per sample (loss :69-72): the group's mean of
    BCEWithLogits(clamp(logits, -10, 10), 1) = softplus(-clamp(l)), divided by w_i (detached).
    The clamp zeroes the gradient of logits outside [-10, 10]."""
    bce = F.softplus(-logits_fake.clamp(-10, 10)).to(torch.float32)
    m = _group_means(bce, group_size).reshape(-1, 1, 1, 1)
    return m / weight_factor.detach().reshape(-1, 1, 1, 1)


def sida_discriminator_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor, weight: torch.Tensor,
                            group_size: int | None = None) -> torch.Tensor:
    """SiDA discriminator loss per sample (loss :118-123): weight_i (mean_g BCE(l_real, 1) +
    mean_g BCE(l_fake, 0)) / 2, means over each group's elements, no clamp; weight = lambda(sigma)."""
    real = _group_means(F.softplus(-logits_real), group_size).reshape(-1, 1, 1, 1)
    fake = _group_means(F.softplus(logits_fake), group_size).reshape(-1, 1, 1, 1)
    return weight.reshape(-1, 1, 1, 1) * (real + fake) / 2


def sida_generator_total(sid_loss: torch.Tensor, adv_loss: torch.Tensor | None, batch_gpu_total: int,
                         use_adversarial: bool, lsg: float = 100.0, lsg_gan: float = 0.01) -> torch.Tensor:
    """The generator's backward target (loop :402-413): S = lsg/B_tot sum(sid_loss); with the
    adversarial term 0.5 S + 0.5 lsg_gan CHW/B_tot sum(adv_loss), else S."""
    s = sid_loss.sum() * (lsg / batch_gpu_total)
    if not use_adversarial:
        return s
    if adv_loss is None:
        raise ValueError("sida_generator_total: use_adversarial=True needs adv_loss")
    chw = sid_loss[0].numel()  # loop :403, mean over (1,1,1) then x C*H*W
    g = adv_loss.sum() * (lsg_gan * chw / batch_gpu_total)
    return 0.5 * s + 0.5 * g


def sida_fake_score_total(fake_score_loss: torch.Tensor, d_loss: torch.Tensor | None, batch_gpu_total: int,
                          ls: float = 1.0, lsd: float = 1.0) -> torch.Tensor:
    """The fake score's backward target (loop :359, :364-366): ls/B_tot sum(fake_score_loss)
    + lsd/B_tot sum(d_loss); d_loss None for SiD (no discriminator)."""
    total = fake_score_loss.sum() * (ls / batch_gpu_total)
    if d_loss is not None:
        total = total + d_loss.sum() * (lsd / batch_gpu_total)
    return total


def sida_phase(cur_nimg: int, fake_only_nimg: int = 100_000, sid_only_nimg: int = 200_000) -> tuple[bool, bool]:
    """(update_generator, use_adversarial) = (cur_nimg > 100k, cur_nimg > 200k), strict, with
    cur_nimg the images seen before this update (loop :410, :425)."""
    return cur_nimg > fake_only_nimg, cur_nimg > sid_only_nimg
