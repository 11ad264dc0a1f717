"""Inception Score from logits (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))) per split,
mean and std over splits, with torch-fidelity's shuffling (RandomState(2020).permutation) and
split boundaries, in float64.
"""
from __future__ import annotations

import numpy as np
import torch

ISC_SPLITS = 10  # torch-fidelity isc_splits; Salimans et al. use 10 splits of 5,000
RNG_SEED = 2020


def inception_score(logits, splits: int = ISC_SPLITS, shuffle: bool = True, rng_seed: int = RNG_SEED) -> tuple[float, float]:
    x = logits if torch.is_tensor(logits) else torch.as_tensor(logits)
    if x.ndim != 2:
        raise ValueError(f"Inception Score needs (N, classes) logits, got {tuple(x.shape)}")
    n = x.shape[0]
    if n < splits:
        raise ValueError(f"Inception Score with {splits} splits needs at least {splits} samples, got {n}")
    if shuffle:
        x = x[np.random.RandomState(rng_seed).permutation(n)]
    x = x.double()
    log_p = x.log_softmax(dim=1)
    p = log_p.exp()
    scores = []
    for i in range(splits):
        lo, hi = i * n // splits, (i + 1) * n // splits
        log_q = p[lo:hi].mean(0, keepdim=True).log()
        scores.append(float((p[lo:hi] * (log_p[lo:hi] - log_q)).sum(1).mean().exp()))
    return float(np.mean(scores)), float(np.std(scores))
