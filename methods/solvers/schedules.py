"""Noise-level schedules as pure functions: sigma_0 > sigma_1 > ... (> 0).

All schedules are float64 tensors, the precision EDM samples in. A schedule for a sampler that
ends in the clean image carries a trailing 0 (`append_zero`); the DPM-Solver analyses and the
convergence tests use schedules that stop at sigma_min.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..core.config import ConfigError, suggest

# EDM (Karras et al. 2022) section 3 / Table 1 and Algorithm 2: the deterministic sampler's
# defaults, also used by paper 000 appendix B.2 (following consistency models).
SIGMA_MIN = 0.002
SIGMA_MAX = 80.0
RHO = 7.0


def _check_range(num_steps: int, sigma_min: float, sigma_max: float, least: int = 1) -> None:
    if int(num_steps) != num_steps or num_steps < least:
        raise ValueError(f"num_steps must be an integer >= {least}, got {num_steps}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")


def append_zero(sigmas: torch.Tensor) -> torch.Tensor:
    """Append the final noise level 0 (t_N = 0 in EDM Algorithm 1/2)."""
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def edm_sigmas(
    num_steps: int = 18,
    sigma_min: float = SIGMA_MIN,
    sigma_max: float = SIGMA_MAX,
    rho: float = RHO,
    round_sigma: Callable[[torch.Tensor], torch.Tensor] | None = None,
    trailing_zero: bool = True,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """EDM's rho schedule (EDM eq. 5): `num_steps` levels from sigma_max down to sigma_min.

    sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho, i < N,
    passed through the network's `round_sigma` (iDDPM networks only support discrete levels),
    then t_N = 0 appended unless `trailing_zero=False`. Length N (+1).
    """
    _check_range(num_steps, sigma_min, sigma_max, least=1)
    if num_steps == 1:  # one level only: EDM's formula divides by N - 1
        sigmas = torch.tensor([float(sigma_max)], dtype=torch.float64, device=device)
    else:
        i = torch.arange(num_steps, dtype=torch.float64, device=device)
        lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
        sigmas = (hi + i / (num_steps - 1) * (lo - hi)) ** rho
    if round_sigma is not None:
        sigmas = torch.as_tensor(round_sigma(sigmas)).to(torch.float64)
    return append_zero(sigmas) if trailing_zero else sigmas


def logsnr_uniform_sigmas(
    num_steps: int,
    sigma_min: float = SIGMA_MIN,
    sigma_max: float = SIGMA_MAX,
    trailing_zero: bool = False,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Levels uniform in lambda = -log(sigma) (half the logSNR in EDM's VE view), the schedule
    DPM-Solver recommends for low-resolution data (Lu et al. 2022, section 3.3)."""
    _check_range(num_steps, sigma_min, sigma_max, least=2)
    lam = torch.linspace(-math.log(sigma_max), -math.log(sigma_min), num_steps, dtype=torch.float64, device=device)
    sigmas = torch.exp(-lam)
    return append_zero(sigmas) if trailing_zero else sigmas


def time_uniform_sigmas(
    num_steps: int,
    sigma_min: float = SIGMA_MIN,
    sigma_max: float = SIGMA_MAX,
    rho: float = 1.0,
    epsilon_s: float = 1e-3,
    trailing_zero: bool = False,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Levels uniform in the time t of the VP-SDE whose sigma(t) spans [sigma_min, sigma_max]
    on t in [epsilon_s, 1] (EDM Table 1 'VP' schedule; DPM-Solver's 'time_uniform' for
    high-resolution data). rho > 1 bends the time grid as in EDM eq. 5 (diff-sampler option).
    """
    _check_range(num_steps, sigma_min, sigma_max, least=2)
    # sigma(t) = sqrt(exp(beta_d t^2 / 2 + beta_min t) - 1): solve beta_d, beta_min from the
    # two end points sigma(epsilon_s) = sigma_min, sigma(1) = sigma_max (EDM appendix C.2).
    a_min, a_max = math.log(sigma_min ** 2 + 1), math.log(sigma_max ** 2 + 1)
    beta_d = 2 * (a_min / epsilon_s - a_max) / (epsilon_s - 1)
    beta_min = a_max - 0.5 * beta_d
    i = torch.arange(num_steps, dtype=torch.float64, device=device)
    t = (1 + i / (num_steps - 1) * (epsilon_s ** (1 / rho) - 1)) ** rho
    sigmas = torch.sqrt(torch.expm1(0.5 * beta_d * t ** 2 + beta_min * t))
    return append_zero(sigmas) if trailing_zero else sigmas


def reversed_index_sigma(
    i: int | torch.Tensor, N: int, sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX, rho: float = RHO
) -> torch.Tensor:
    """Paper 000 (GDD) appendix B.2, the consistency-distillation time step scheduler:

        T(i, N) = (sigma_max^(1/rho) + (1 - i/N) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho

    with the index reversed relative to EDM: T(0, N) = sigma_min, T(N, N) = sigma_max
    (N = 18, rho = 7, sigma_min = 0.002, sigma_max = 80 in the paper). `i` may be a tensor of
    indices (e.g. drawn per sample during training).
    """
    if int(N) != N or N < 1:
        raise ValueError(f"N must be a positive integer, got {N}")
    i = torch.as_tensor(i, dtype=torch.float64)
    if ((i < 0) | (i > N)).any():
        raise ValueError(f"index i must lie in [0, N={N}], got {i.tolist()}")
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + (1 - i / N) * (lo - hi)) ** rho


SCHEDULES = {"edm": edm_sigmas, "logsnr": logsnr_uniform_sigmas, "time_uniform": time_uniform_sigmas}


def make_sigmas(
    schedule: str,
    num_steps: int,
    sigma_min: float = SIGMA_MIN,
    sigma_max: float = SIGMA_MAX,
    rho: float = RHO,
    round_sigma: Callable[[torch.Tensor], torch.Tensor] | None = None,
    trailing_zero: bool = True,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """A schedule by name ('edm', 'logsnr', 'time_uniform') with `num_steps` nonzero levels."""
    if schedule == "edm":
        return edm_sigmas(num_steps, sigma_min, sigma_max, rho, round_sigma, trailing_zero, device)
    if schedule == "logsnr":
        sigmas = logsnr_uniform_sigmas(num_steps, sigma_min, sigma_max, False, device)
    elif schedule == "time_uniform":
        sigmas = time_uniform_sigmas(num_steps, sigma_min, sigma_max, 1.0, 1e-3, False, device)
    else:
        raise ConfigError(f"unknown schedule {schedule!r}{suggest(schedule, SCHEDULES)}; choose one of {sorted(SCHEDULES)}")
    if round_sigma is not None:
        sigmas = torch.as_tensor(round_sigma(sigmas)).to(torch.float64)
    return append_zero(sigmas) if trailing_zero else sigmas
