"""Few-step generators in the progressive-distillation manner (paper 000 section 2.2).

The PD teachers of GDD's analysis are k deterministic steps of the consistency-parameterized
one-step network on T(i, k), trained with the same GAN loss as the student; the GDD plugin
builds them (`generator_steps`, `generator_sigma_mid`) and the rel-FID analysis compares them.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..core.config import ConfigError
from .generator import SolverGenerator
from .schedules import RHO, SIGMA_MAX, SIGMA_MIN, edm_sigmas


def rho_for_midpoint(sigma_mid: float, sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX) -> float:
    """The rho whose 3-level EDM schedule is [sigma_max, sigma_mid, sigma_min].

    The middle level ((sigma_max^(1/rho) + sigma_min^(1/rho)) / 2)^rho falls monotonically
    from sigma_max (rho -> 0) to sqrt(sigma_min sigma_max) (rho -> inf), so every sigma_mid in
    between has exactly one rho; this lets the two-step teacher of Figure 2B be an ordinary
    SolverGenerator (saved, reloaded and sampled like any other)."""
    lo_bound = math.sqrt(sigma_min * sigma_max)
    if not lo_bound < sigma_mid < sigma_max:
        raise ConfigError(f"intermediate sigma {sigma_mid} must lie in ({lo_bound:.4g}, {sigma_max}) for a "
                          f"two-step schedule from {sigma_max} to {sigma_min}")

    def mid(log_rho: float) -> float:
        r = math.exp(log_rho)
        return ((sigma_max ** (1 / r) + sigma_min ** (1 / r)) / 2) ** r

    a, b = math.log(1e-3), math.log(1e4)  # mid(a) ~ sigma_max, mid(b) ~ sqrt(sigma_min sigma_max)
    for _ in range(200):
        m = (a + b) / 2
        if mid(m) > sigma_mid:
            a = m
        else:
            b = m
    rho = math.exp((a + b) / 2)
    # Close to sigma_max, rho is so small that sigma_min^(1/rho) vanishes next to sigma_max^(1/rho) in
    # EDM's formula (float64 cancellation): refuse rather than sample a different schedule.
    got = edm_sigmas(3, sigma_min, sigma_max, rho, trailing_zero=False).tolist()
    if not all(math.isclose(g, w, rel_tol=1e-6) for g, w in zip(got, (sigma_max, sigma_mid, sigma_min))):
        raise ConfigError(f"intermediate sigma {sigma_mid} is too close to sigma_max={sigma_max}: the EDM schedule "
                          f"loses sigma_min to float64 cancellation at rho={rho:.3g} (got {got}); use a smaller intermediate sigma "
                          f"(up to about {0.65 * sigma_max:g})")
    return rho


class PDGenerator(SolverGenerator):
    """H = F(...F(F(x_tk, t_k, t_{k-1}), t_{k-1}, t_{k-2})..., t_1, t_0) with t_i = T(i, k):
    k deterministic (Euler = DDIM) steps of the consistency-parameterized network F, then the
    schedule's trailing 0, which is the identity for OneStepPrecond (D(x; eps) = x exactly), so
    the NFE that matter are k. A SolverGenerator with `k + 1` EDM levels and rho chosen by the
    caller, returning z's dtype (the GAN discriminator runs in float32); differentiable, so the
    GDD plugin trains it like its one-step generator."""

    def forward(self, z: torch.Tensor, class_labels: torch.Tensor | None = None, randn_like=None) -> torch.Tensor:
        return super().forward(z, class_labels, randn_like).to(z.dtype)


def pd_generator(denoiser: nn.Module, steps: int, sigma_mid: float | None = None) -> PDGenerator:
    """The k-step PD teacher on T(i, k) (rho 7), or the two-step one with a given intermediate sigma."""
    if sigma_mid is None:
        return PDGenerator(denoiser, "euler", steps + 1, rho=RHO)
    if steps != 2:
        raise ConfigError("an intermediate sigma defines a two-step teacher only")
    return PDGenerator(denoiser, "euler", 3, rho=rho_for_midpoint(sigma_mid, denoiser.sigma_min, denoiser.sigma_max))


__all__ = ["PDGenerator", "pd_generator", "rho_for_midpoint"]
