"""Frechet distance between Gaussians, in float64, without scipy.linalg.sqrtm.

FD = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^{1/2})   (Heusel et al. 2017, Eq. in Sec. 3).
tr((S1 S2)^{1/2}) equals the sum of square roots of the eigenvalues of a symmetric PSD matrix
similar to S1 S2: L^T S1 L with S2 = L L^T (Cholesky; fast, the usual case where the reference
covariance is full rank), else S1^{1/2} S2 S1^{1/2} via eigh. Symmetric eigenvalues are stable
and real, so no complex parts or sqrtm(disp=...) (removed in scipy 1.18) are involved. Tiny
negative eigenvalues from rounding are clipped at zero. The FD of a set against itself can come out slightly negative
from rounding: `display_value` clamps at zero, the raw value is always kept.
"""
from __future__ import annotations

import numpy as np

from .statistics import GaussianStats


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    a = None
    for s, other in ((sigma2, sigma1), (sigma1, sigma2)):
        try:
            chol = np.linalg.cholesky(s)
            a = chol.T @ other @ chol
            break
        except np.linalg.LinAlgError:  # singular (e.g. n < dim): try the other, then eigh
            continue
    if a is None:
        r1 = _sqrt_psd(sigma1)
        a = r1 @ sigma2 @ r1
    w = np.linalg.eigvalsh((a + a.T) / 2)
    return float(np.sqrt(np.clip(w, 0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Raw FD (may be ~-1e-10 for identical inputs); see display_value."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics of different feature spaces: mu {mu1.shape} vs {mu2.shape}, "
                         f"sigma {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2))


def frechet_distance_stats(a: GaussianStats, b: GaussianStats, what: str = "FD") -> float:
    a.warn_if_rank_deficient(f"{what} (first set)")
    b.warn_if_rank_deficient(f"{what} (second set)")
    return frechet_distance(a.mu, a.sigma, b.mu, b.sigma)


def display_value(raw: float) -> float:
    """FD shown to users: a distance, never below zero."""
    return max(0.0, float(raw))
