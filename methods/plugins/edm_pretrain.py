"""EDM pre-training: the teachers (Karras et al. 2022, "Elucidating the design space...").

Loss (EDM section 5 / Table 1 "ours", training/loss.py EDMLoss):
    ln(sigma) ~ N(P_mean, P_std^2), P_mean = -1.2, P_std = 1.2
    weight = (sigma^2 + sigma_data^2) / (sigma * sigma_data)^2
    loss = weight * ||D(y + n; sigma, labels) - y||^2,  n ~ N(0, sigma^2 I)
summed over pixels and averaged over the batch, as EDM's training loop does. Adam with a
linear learning-rate warm-up over `lr_rampup_kimg` (EDM: lr * min(cur_nimg / rampup_nimg, 1)).
The generator that is sampled and evaluated is the EMA denoiser under Heun's 2nd-order solver
(EDM Algorithm 2, 18 steps = 35 NFE by default).

Digits presets follow /work/shared/notes/digits-default.md: network A at native 8x8, Adam lr
2e-3, 50-step linear warm-up at batch 128 (6.4 kimg), EMA half-life 5% of the images seen
(ema_rampup_ratio 0.05 with a half-life cap far above the run length), ~800 steps, dropout 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..core.config import ConfigError
from ..plugin import Batch, DataSpec, Method, TrainContext, register_method

# A half-life cap that the digits runs never reach, so the EMA half-life is always
# ema_rampup_ratio * images seen = 5% (digits-default.md).
_DIGITS_LOOP = dict(batch_size=128, ema_halflife_kimg=500.0, ema_rampup_ratio=0.05, log_kimg=12.8,
                    checkpoint_kimg=25.6)


@dataclass
class EDMPretrainConfig:
    network: str = "digits-8x8-cond"  # a zoo preset (onestep.methods.zoo.PRESETS)
    network_overrides: dict[str, Any] = field(default_factory=dict)  # e.g. {"model_channels": 16}
    lr: float = 2e-3  # digits-default.md (EDM CIFAR-10: 1e-3)
    lr_rampup_kimg: float = 6.4  # digits-default.md: 50 steps at batch 128 (EDM CIFAR-10: 10000 kimg)
    adam_betas: tuple[float, float] = (0.9, 0.999)  # EDM train.py
    adam_eps: float = 1e-8
    P_mean: float = -1.2  # EDM Table 1
    P_std: float = 1.2
    sigma_data: float = 0.5
    sampler_steps: int = 18  # Heun steps of the evaluated generator (EDM default)


@register_method
class EDMPretrain(Method):
    name = "edm"
    Config = EDMPretrainConfig
    needs_teacher = False
    presets = {
        "digits": {"method": {"network": "digits-8x8-cond"},
                   "loop": {**_DIGITS_LOOP, "total_kimg": 102.4}},  # 800 steps, ~2 min on 2 cores
        "digits-uncond": {"method": {"network": "digits-8x8-uncond"},
                          "loop": {**_DIGITS_LOOP, "total_kimg": 102.4}},
        # digits-default.md: 16x16 needs ~8 min of training (~900 steps) for 97% label accuracy.
        "digits-16x16": {"method": {"network": "digits-16x16-cond"},
                         "loop": {**_DIGITS_LOOP, "total_kimg": 115.2}},
        # The session teacher of the test suite: ~300 steps (digits-default.md: 387 steps = 95%).
        "digits-test": {"method": {"network": "digits-8x8-cond"},
                        "loop": {**_DIGITS_LOOP, "total_kimg": 38.4}},
        # Seconds on a CPU: a narrow network, a few dozen steps. Exercises the whole path only.
        "smoke": {"method": {"network": "digits-8x8-cond", "network_overrides": {"model_channels": 16},
                             "lr_rampup_kimg": 0.64},
                  "loop": {"batch_size": 64, "total_kimg": 1.92, "ema_halflife_kimg": 500.0,
                           "ema_rampup_ratio": 0.05, "log_kimg": 0.64, "checkpoint_kimg": 0.64}},
    }

    def __init__(self, config: EDMPretrainConfig, teacher: nn.Module | None, data: DataSpec, device: torch.device):
        super().__init__(config, teacher, data, device)
        from ..zoo import build_network

        net = build_network(config.network, **dict(config.network_overrides))
        for attr, want in (("img_resolution", data.resolution), ("img_channels", data.channels)):
            if getattr(net, attr) != want:
                raise ConfigError(f"edm: network '{config.network}' has {attr}={getattr(net, attr)} but the data has "
                                  f"{want}; pick a network preset matching the dataset")
        if net.label_dim and net.label_dim != data.label_dim:
            raise ConfigError(f"edm: network '{config.network}' is conditional on {net.label_dim} classes but the data "
                              f"has label_dim {data.label_dim}; use an unconditional network or labelled data")
        if getattr(net, "sigma_data", config.sigma_data) != config.sigma_data:
            raise ConfigError(f"edm: sigma_data {config.sigma_data} differs from the network's {net.sigma_data}")
        self.net = net.to(device).train()
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=config.lr, betas=tuple(config.adam_betas),
                                          eps=config.adam_eps)

    @property
    def generator(self) -> nn.Module:
        return self.net

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.net}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"adam": self.optimizer}

    def build_generator(self, ema_modules: dict[str, nn.Module]) -> nn.Module:
        from ..solvers import SolverGenerator

        return SolverGenerator(ema_modules["generator"], "heun", self.config.sampler_steps)

    def loss(self, images: torch.Tensor, labels: torch.Tensor | None, ctx: TrainContext) -> torch.Tensor:
        """EDM's weighted denoising loss per image (summed over pixels), shape (B,)."""
        cfg = self.config
        b = images.shape[0]
        sigma = (ctx.randn(b, 1, 1, 1, stream="sigma") * cfg.P_std + cfg.P_mean).exp()
        weight = (sigma ** 2 + cfg.sigma_data ** 2) / (sigma * cfg.sigma_data) ** 2
        noise = ctx.randn(*images.shape, stream="noise") * sigma
        with ctx.autocast():
            denoised = self.net(images + noise, sigma, labels if self.net.label_dim else None)
        return (weight * (denoised.float() - images) ** 2).flatten(1).sum(1)

    def step(self, batch: Batch, ctx: TrainContext) -> dict[str, float]:
        cfg = self.config
        # EDM training_loop.py: lr = base * min(cur_nimg / rampup_nimg, 1), a function of progress only.
        lr = cfg.lr * min(ctx.cur_nimg / max(cfg.lr_rampup_kimg * 1000, 1e-8), 1.0)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        per_image = self.loss(batch.images, batch.labels, ctx)
        per_image.mean().backward()
        ctx.optimizer_step(self.optimizer, self.net)
        pixels = batch.images[0].numel()
        return {"loss": float(per_image.detach().mean()) / pixels, "lr": lr}  # loss per pixel, for reading
