"""An exactly solvable teacher: data distributed as N(m, s^2 I).

For this data the ideal denoiser and the probability-flow ODE have closed forms, so solvers,
generators and the generation pipeline can be checked against exact answers without any
trained network:

    D(x; sigma)  = m + (x - m) s^2 / (s^2 + sigma^2)                (posterior mean E[x0 | x])
    dx/dsigma    = (x - D) / sigma = (x - m) sigma / (s^2 + sigma^2)
    =>  x(sigma) = m + (x(sigma_0) - m) sqrt(s^2 + sigma^2) / sqrt(s^2 + sigma_0^2)

(d log|x - m| / dsigma = sigma / (s^2 + sigma^2) integrates to log sqrt(s^2 + sigma^2)).
"""
from __future__ import annotations

import torch
from torch import nn


class GaussianDenoiser(nn.Module):
    """The Denoiser (EDM convention) of N(mean, std^2 I) data; per-class means if label_dim > 0.

    With labels, class k has mean `mean + class_offset * (k - (label_dim - 1) / 2)`, so the
    conditioning visibly changes the output (a one-hot or soft label row mixes the means).
    """

    def __init__(self, mean: float = 0.0, std: float = 0.5, img_resolution: int = 8, img_channels: int = 1,
                 label_dim: int = 0, class_offset: float = 0.1, sigma_min: float = 0.002, sigma_max: float = 80.0):
        super().__init__()
        if std <= 0:
            raise ValueError(f"GaussianDenoiser: std must be positive, got {std}")
        self.mean, self.std = float(mean), float(std)
        self.img_resolution, self.img_channels, self.label_dim = img_resolution, img_channels, label_dim
        self.class_offset = float(class_offset)
        self.sigma_min, self.sigma_max, self.sigma_data = sigma_min, sigma_max, std

    def round_sigma(self, sigma):
        return torch.as_tensor(sigma)

    def class_means(self, class_labels, x: torch.Tensor) -> torch.Tensor:
        if not self.label_dim or class_labels is None:
            return torch.full((x.shape[0], 1, 1, 1), self.mean, dtype=x.dtype, device=x.device)
        offsets = self.class_offset * (torch.arange(self.label_dim, dtype=x.dtype, device=x.device) - (self.label_dim - 1) / 2)
        return (self.mean + class_labels.to(x.dtype) @ offsets).reshape(-1, 1, 1, 1)

    def forward(self, x, sigma, class_labels=None, force_fp32=False):
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
        m = self.class_means(class_labels, x)
        return m + (x - m) * self.std ** 2 / (self.std ** 2 + sigma ** 2)


def exact_ode_solution(x_start: torch.Tensor, sigma_start, sigma_end, mean, std: float) -> torch.Tensor:
    """x(sigma_end) of the probability-flow ODE from x(sigma_start) = x_start for N(mean, std^2)."""
    sigma_start = torch.as_tensor(sigma_start, dtype=x_start.dtype)
    sigma_end = torch.as_tensor(sigma_end, dtype=x_start.dtype)
    scale = torch.sqrt(std ** 2 + sigma_end ** 2) / torch.sqrt(std ** 2 + sigma_start ** 2)
    return mean + (x_start - mean) * scale
