"""Consistency distillation (Song et al. 2023) as defined in paper 000 appendix B.1/B.2 (Table 5)
and paper 001 appendix C: the baseline rows and the CD-I / CD-F freezing comparison (paper 000
section 4.3, paper 001 section 4.3), and the optional extra loss of GDD/D2O (section 4.3 / 4.4).

    i ~ U{1..N},  t = T(i, N),  u = T(i-1, N)              (reversed-index schedule, eq. 5)
    x_t = x + t n,  x_u = Heun step of the teacher from t to u
    L = d( F_theta(x_t, t),  F_theta^sg(x_u, u) )            (Table 5c)

F_theta is the student under the consistency parameterization (OneStepPrecond, so F(x, eps) =
x), initialised from the teacher; N = 18, rho = 7, sigma in [0.002, 80] (appendix B.2);
d = LPIPS at 224x224 (B.4), L2 or pseudo-Huber. The target uses the stop-gradient online
network as Table 5 writes it (target_ema = 0); CD's EMA target (mu = 0.95 in Song et al.
2023) is available through `target_ema`.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..freezing import DEFAULT_FROZEN_LEVEL, apply_freeze_level, freezing_summary
from ..losses import make_distance
from ..plugin import Batch, DataSpec, Method, TrainContext, register_method
from ..solvers.generator import OneStepGenerator
from ..solvers.schedules import reversed_index_sigma
from ..zoo import OneStepPrecond


# --- randomness helpers shared with gdd.py ------------------------------------------------
def draw_normal(ctx: TrainContext, local_batch: int, *shape: int, stream: str) -> torch.Tensor:
    """This rank's slice of a global N(0, I) batch (the loop's ctx.randn takes local shapes)."""
    return ctx.randn(local_batch, *shape, stream=stream)


def draw_labels(ctx: TrainContext, local_batch: int, label_dim: int, stream: str) -> torch.Tensor | None:
    """Uniform random one-hot class labels for generated images (None when unconditional)."""
    if not label_dim:
        return None
    return F.one_hot(ctx.randint(label_dim, local_batch, stream=stream).long(), label_dim).float()


def disable_dropout(net: nn.Module) -> int:
    """Dropout 0 in a student copied from a teacher (GDD/D2O train.sh --dropout=0; Consistency
    Models' CIFAR-10 CD runs use dropout 0, so the target network sees no mask either).
    Also rewrites the recorded model kwargs, so a saved student says dropout 0. Returns the
    number of blocks changed."""
    n = 0
    for m in net.modules():
        if isinstance(getattr(m, "dropout", None), (int, float)) and not isinstance(m, (nn.Dropout, bool)):
            n += m.dropout != 0
            m.dropout = 0.0
        kwargs = getattr(m, "init_kwargs", None)
        if isinstance(kwargs, dict) and "dropout" in kwargs:
            kwargs["dropout"] = 0.0
    for m in net.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    return n


def heun_step(denoiser: nn.Module, x: torch.Tensor, t: torch.Tensor, u: torch.Tensor, labels) -> torch.Tensor:
    """One EDM Heun step (Algorithm 1) from per-sample levels t to u > 0.

    The shared solvers take one sigma sequence for the whole batch; CD draws a level per
    sample, hence this per-sample form of the same update.
    """
    t4, u4 = t.view(-1, 1, 1, 1), u.view(-1, 1, 1, 1)
    d_t = (x - denoiser(x, t, labels)) / t4
    x_u = x + (u4 - t4) * d_t
    d_u = (x_u - denoiser(x_u, u, labels)) / u4
    return x + (u4 - t4) * (0.5 * d_t + 0.5 * d_u)


@dataclass
class CDLossConfig:
    num_steps: int = 18  # N (appendix B.2, following CD)
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    distance: str = "lpips"  # lpips | l2 | pseudo_huber
    lpips_backbone: str = "auto"  # auto | pretrained | random (offline; outputs are marked untrained)


class ConsistencyLoss:
    """L_CD on a real batch for a student denoiser F (stop-gradient or EMA target)."""

    def __init__(self, cfg: CDLossConfig, teacher: nn.Module):
        self.cfg = cfg
        self.teacher = teacher
        self.distance = make_distance(cfg.distance, lpips_backbone=cfg.lpips_backbone)
        if isinstance(self.distance, nn.Module):
            self.distance.to(next(teacher.parameters()).device)

    def describe(self) -> dict[str, Any]:
        return {"distance": self.cfg.distance, "num_steps": self.cfg.num_steps,
                "lpips_untrained_backbone": bool(getattr(self.distance, "untrained", False))}

    def __call__(self, student: nn.Module, batch: Batch, ctx: TrainContext, target: nn.Module | None = None) -> torch.Tensor:
        cfg = self.cfg
        if batch.images is None:
            raise ValueError("consistency distillation needs real images (x_t = x + t n)")
        x = batch.images.to(next(student.parameters()).device).float()
        b = x.shape[0]
        i = ctx.randint(cfg.num_steps, b, stream="cd_index").to(x.device).long() + 1  # i in {1..N}
        t = reversed_index_sigma(i, cfg.num_steps, cfg.sigma_min, cfg.sigma_max, cfg.rho).to(x)
        u = reversed_index_sigma(i - 1, cfg.num_steps, cfg.sigma_min, cfg.sigma_max, cfg.rho).to(x)
        x_t = x + t.view(-1, 1, 1, 1) * ctx.randn(*x.shape, stream="cd_noise").to(x)
        with torch.no_grad():
            x_u = heun_step(self.teacher, x_t, t, u, batch.labels)
            y_target = (target or student)(x_u, u, batch.labels)
        y = student(x_t, t, batch.labels)
        return self.distance(y, y_target.detach()).mean()


@dataclass
class CDConfig:
    dataset: str = "digits-8x8"
    teacher: str = "digits-8x8-cond"
    lr: float = 4e-4  # Song et al. 2023 CIFAR-10 CD
    betas: tuple[float, float] = (0.9, 0.999)
    freeze: str = "none"  # "conv" = CD-I (paper 000) / CD-F (paper 001)
    target_ema: float = 0.0  # 0 = stop-gradient online target (paper 000 Table 5); 0.95 = Song et al. 2023
    loss: CDLossConfig = field(default_factory=CDLossConfig)


_SMOKE = {
    "method": {"teacher": "digits-8x8-cond", "lr": 2e-4, "loss": {"distance": "l2"}},
    "loop": {"total_kimg": 6.4, "batch_size": 64, "ema_halflife_kimg": 0.5, "ema_rampup_ratio": 0.05,
             "precision": "auto", "log_kimg": 1.6, "checkpoint_kimg": 6.4},
}


def _cifar(freeze: str) -> dict[str, Any]:
    # Paper 000 Fig. 4A / paper 001 Fig. 3A: CD vs CD-I/CD-F on CIFAR-10 (NCSN++ EDM teacher),
    # LPIPS, N = 18; optimiser and batch of Song et al. 2023 (CIFAR-10: lr 4e-4, batch 512).
    return {"method": {"dataset": "cifar10-32x32", "teacher": "edm-cifar10-32x32-uncond-ve", "lr": 4e-4,
                       "freeze": freeze, "loss": {"distance": "lpips"}},
            "loop": {"total_kimg": 5000, "batch_size": 512, "ema_halflife_kimg": 500, "ema_rampup_ratio": 0.05,
                     "precision": "bf16"}}


@register_method
class CD(Method):
    name = "cd"
    Config = CDConfig
    presets = {
        "smoke": _SMOKE,
        "smoke-i": {"method": {**_SMOKE["method"], "freeze": DEFAULT_FROZEN_LEVEL}, "loop": dict(_SMOKE["loop"])},
        "cifar10-uncond": _cifar("none"),
        "cifar10-uncond-i": _cifar(DEFAULT_FROZEN_LEVEL),
    }

    def __init__(self, config: CDConfig, teacher: nn.Module | None, data: DataSpec, device: torch.device):
        super().__init__(config, teacher, data, device)
        if teacher is None:
            raise ValueError(f"cd needs a teacher (an EDMPrecond network, e.g. zoo preset '{config.teacher}')")
        self.teacher = teacher.to(device).eval().requires_grad_(False)
        student = OneStepPrecond.from_teacher(teacher, sigma_max=config.loss.sigma_max, epsilon=config.loss.sigma_min,
                                              use_fp16=False)
        disable_dropout(student)  # so the stop-gradient target and the online network see the same (no) mask
        student.train().to(device)
        self._gen = OneStepGenerator(student, sigma=config.loss.sigma_max)
        apply_freeze_level(student, config.freeze)
        self.target = None
        if config.target_ema > 0:
            self.target = copy.deepcopy(student).eval().requires_grad_(False)
        self.loss = ConsistencyLoss(config.loss, self.teacher)
        self.opt = torch.optim.Adam([p for p in self._gen.parameters() if p.requires_grad], lr=config.lr,
                                    betas=tuple(config.betas))

    @property
    def generator(self) -> nn.Module:
        return self._gen

    def modules(self) -> dict[str, nn.Module]:
        mods = {"generator": self._gen}
        if self.target is not None:
            mods["target"] = self.target
        return mods

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt}

    def step(self, batch: Batch, ctx: TrainContext) -> dict[str, float]:
        student = self._gen.denoiser
        with ctx.autocast():
            loss = self.loss(student, batch, ctx, target=self.target)
        loss.backward()
        ctx.optimizer_step(self.opt, [p for p in self._gen.parameters() if p.requires_grad])
        if self.target is not None:
            with torch.no_grad():
                for pt, ps in zip(self.target.parameters(), student.parameters()):
                    pt.lerp_(ps.detach(), 1 - self.config.target_ema)
        return {"loss_cd": float(loss.detach())}

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(freezing_summary(self._gen.denoiser, self.config.freeze))
        info["cd"] = self.loss.describe()
        return info
