"""Kernel Inception Distance: unbiased MMD^2 with the cubic polynomial kernel (Binkowski et al.
2018), averaged over random subsets exactly as torch-fidelity 0.4.0 draws them (RandomState(
rng_seed).choice without replacement, first set then second set per subset), so the numbers
equal torch-fidelity's on the same features. Computed in float64.
"""
from __future__ import annotations

import numpy as np
import torch

# torch-fidelity defaults (defaults.py): 100 subsets of 1000, degree 3, gamma 1/D, coef0 1, seed 2020
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
RNG_SEED = 2020


class NotEnoughSamplesError(ValueError):
    pass


def _as_np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)


def polynomial_mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None,
                             coef0: float = 1.0) -> float:
    """Unbiased MMD^2 between equal-size samples x, y (m, D) with k(a,b) = (gamma a.b + coef0)^degree."""
    m = x.shape[0]
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    kxx = (x @ x.T * gamma + coef0) ** degree
    kyy = (y @ y.T * gamma + coef0) ** degree
    kxy = (x @ y.T * gamma + coef0) ** degree
    sum_xx = kxx.sum() - np.trace(kxx)
    sum_yy = kyy.sum() - np.trace(kyy)
    return float((sum_xx + sum_yy) / (m * (m - 1)) - 2 * kxy.sum() / (m * m))


def kernel_inception_distance(features_1, features_2, subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE,
                              degree: int = 3, gamma: float | None = None, coef0: float = 1.0,
                              rng_seed: int = RNG_SEED) -> tuple[float, float]:
    """(mean, std) of MMD^2 over `subsets` random subsets; features_1 generated, features_2 real."""
    f1, f2 = _as_np(features_1), _as_np(features_2)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise ValueError(f"KID needs two (N, D) feature arrays of equal D, got {f1.shape} and {f2.shape}")
    n1, n2 = len(f1), len(f2)
    if min(n1, n2) < subset_size:
        raise NotEnoughSamplesError(
            f"KID subset size {subset_size} exceeds the samples available (generated {n1}, reference {n2}): "
            f"evaluate at least {subset_size} images or pass a smaller kid_subset_size")
    if subset_size < 2:
        raise ValueError("KID subset size must be at least 2")
    # torch-fidelity draws the subsets from the float32 features and computes the kernel in the
    # features' dtype; float64 here only changes rounding. Each subset is converted on its own:
    # no float64 copy of all 50k rows.
    rng = np.random.RandomState(rng_seed)
    mmds = np.empty(subsets)
    for i in range(subsets):
        a = f1[rng.choice(n1, subset_size, replace=False)].astype(np.float64)
        b = f2[rng.choice(n2, subset_size, replace=False)].astype(np.float64)
        mmds[i] = polynomial_mmd2_unbiased(a, b, degree, gamma, coef0)
    return float(mmds.mean()), float(mmds.std())
