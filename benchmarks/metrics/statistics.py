"""Streaming float64 feature statistics (mean, covariance) and feature collection.

Features arrive batch by batch from the extractors; the mean and covariance are merged with
Chan et al.'s pairwise update in float64, so 50k x 2048 features never need to be held for
FD, and the result equals numpy's mean/cov (ddof=1) of the stacked features.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch


class RankDeficientWarning(UserWarning):
    """Fewer samples than feature dimensions: the covariance is singular and FD is biased."""


@dataclass
class GaussianStats:
    mu: np.ndarray  # (D,) float64
    sigma: np.ndarray  # (D, D) float64, ddof=1 as numpy.cov / torch-fidelity / EDM
    n: int

    def __post_init__(self):
        self.mu = np.asarray(self.mu, dtype=np.float64)
        self.sigma = np.asarray(self.sigma, dtype=np.float64)
        d = self.mu.shape
        if self.mu.ndim != 1 or self.sigma.shape != (d[0], d[0]):
            raise ValueError(f"statistics need mu (D,) and sigma (D, D); got {self.mu.shape} and {self.sigma.shape}")
        if not (np.isfinite(self.mu).all() and np.isfinite(self.sigma).all()):
            raise ValueError("statistics contain NaN/Inf: the features they came from were not finite")

    @property
    def dim(self) -> int:
        return int(self.mu.shape[0])

    def warn_if_rank_deficient(self, what: str = "features") -> None:
        if 0 < self.n <= self.dim:
            warnings.warn(
                f"{what}: n={self.n} samples for {self.dim}-d features; the covariance has rank < {self.dim} "
                f"and the Frechet distance is biased upward. Use n > {self.dim} (paper protocol: 50,000).",
                RankDeficientWarning, stacklevel=3)


def stats_from_features(features) -> GaussianStats:
    x = np.asarray(features.detach().cpu().numpy() if torch.is_tensor(features) else features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need at least 2 feature vectors (N, D) for a covariance, got shape {x.shape}")
    return GaussianStats(x.mean(0), np.cov(x, rowvar=False), len(x))


class RunningStats:
    """Mean and covariance accumulated batch by batch (float64, pairwise merge)."""

    def __init__(self):
        self.n = 0
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None  # sum of outer products of deviations from the mean

    def update(self, features: torch.Tensor | np.ndarray) -> None:
        x = np.asarray(features.detach().cpu().numpy() if torch.is_tensor(features) else features, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"features must be (B, D), got {x.shape}")
        if not np.isfinite(x).all():
            raise FloatingPointError(f"{int((~np.isfinite(x)).any(1).sum())} feature vectors contain NaN/Inf")
        nb = len(x)
        if nb == 0:
            return
        mb = x.mean(0)
        db = x - mb
        m2b = db.T @ db
        if self.n == 0:
            self.n, self.mean, self.m2 = nb, mb, m2b
            return
        if x.shape[1] != self.mean.shape[0]:
            raise ValueError(f"feature dimension changed from {self.mean.shape[0]} to {x.shape[1]}")
        n = self.n + nb
        delta = mb - self.mean
        self.m2 = self.m2 + m2b + np.outer(delta, delta) * (self.n * nb / n)
        self.mean = self.mean + delta * (nb / n)
        self.n = n

    def result(self) -> GaussianStats:
        if self.n < 2:
            raise ValueError(f"need at least 2 samples for a covariance, got {self.n}")
        return GaussianStats(self.mean.copy(), self.m2 / (self.n - 1), self.n)


@dataclass(frozen=True)
class FeatureNeeds:
    """What the requested metrics need of one feature kind."""

    rows: bool  # KID, precision/recall and IS need the raw rows
    moments: bool = True  # Frechet distances need mean and covariance


class FeatureCollector:
    """Per feature kind: running Gaussian statistics and/or the raw rows, as the metrics need.

    Rows for the moments are merged in blocks of at least MOMENT_BLOCK: one (D, D) float64 update
    per block instead of per extractor batch (at 4096-d each update touches 128 MB).
    """

    MOMENT_BLOCK = 1024

    def __init__(self, needs: FeatureNeeds):
        self.needs = needs
        self.stats = RunningStats()
        self._rows: list[torch.Tensor] = []
        self._pending: list[torch.Tensor] = []
        self._pending_n = 0

    def update(self, features: torch.Tensor) -> None:
        rows = features.detach().cpu()  # moments from the extractor's dtype (float64 where asked), rows as float32
        if not torch.isfinite(rows).all():
            raise FloatingPointError(f"{int((~torch.isfinite(rows)).any(1).sum())} feature vectors contain NaN/Inf")
        if self.needs.rows:
            self._rows.append(rows.to(torch.float32))
        if self.needs.moments:
            self._pending.append(rows)
            self._pending_n += len(rows)
            if self._pending_n >= self.MOMENT_BLOCK:
                self._flush()

    def _flush(self) -> None:
        if self._pending:
            self.stats.update(torch.cat(self._pending))
            self._pending, self._pending_n = [], 0

    def moments(self) -> GaussianStats:
        if not self.needs.moments:
            raise RuntimeError("moments were not collected for this feature kind")
        self._flush()
        return self.stats.result()

    def features(self) -> torch.Tensor:
        if not self.needs.rows:
            raise RuntimeError("features were not kept for this collector")
        return torch.cat(self._rows) if self._rows else torch.empty(0, 0)
