"""DMD (paper 003, distribution matching distillation) and DMD2's EDM variant (tianweiy/DMD2 main/edm).

Networks: the generator G(z, c) = D_G(80 z; 80, c), a copy of the teacher (DMD Alg. 1 line 2;
DMD2 `train_edm.py` feeds 80 z at sigma 80); the fake score mu_fake (onestep.methods.fake_score,
a copy of the teacher); the frozen teacher mu_real. Dropout 0 on G and mu_fake (DMD2's network
config). One `step` (paper Alg. 1 / DMD2 `train_one_step`):
  1. x = G(z) with z ~ N(0, I) and uniform labels;
  2. on generator steps (every `fake_updates_per_generator`-th step; DMD = 1, DMD2 = 5): the
     distribution-matching loss on x (t ~ U{20..980} of the 1000-level Karras table), plus
     lambda_reg * the regression loss on a separate paired batch {z_ref, Heun(z_ref)} (DMD), plus
     the GAN generator loss through mu_fake's bottleneck (DMD2); norm clip 10, AdamW step;
  3. every step: mu_fake's denoising loss over all 1000 levels on the SAME x, detached
     (generated before the G update), plus the GAN discriminator loss (DMD2); norm clip 10.
The math is in onestep.methods.losses.dmd; the paired dataset in onestep.methods.teacher_pairs.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..checkpoints import state_checksum
from ..fake_score import FakeScore, frozen_teacher
from ..losses import (dmd2_discriminator_gan_loss, dmd2_generator_gan_loss, dmd_distribution_matching_grad,
                      dmd_fake_score_loss, dmd_karras_sigmas, dmd_loss, dmd_regression_loss, dmd_timestep_bounds,
                      make_distance)
from ..plugin import Batch, DataSpec, GradClip, Method, TrainContext, frozen, register_method
from ..solvers.generator import OneStepGenerator
from ..teacher_pairs import PairSpec, TeacherPairs
from ..zoo import set_dropout
from .cd import draw_labels, draw_normal

DISTANCES = ("lpips_piq", "lpips", "l2", "l1", "pseudo_huber")


@dataclass
class DMDConfig:
    dataset: str = "digits-8x8"  # what the preset was made for (recorded)
    teacher: str = "digits-8x8-cond"  # zoo preset / checkpoint of the EDM teacher (recorded; the loop loads it)
    g_lr: float = 5e-5  # paper 003 B.1 (CIFAR-10); 2e-6 ImageNet (B.2); 1e-5 without regression (C.2)
    fake_lr: float = 5e-5  # the paper gives one learning rate for both networks
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW, paper 003 B.1/B.2
    weight_decay: float = 0.01
    grad_clip_norm: float = 10.0  # L2 norm, both networks (B.1, DMD2 max_grad_norm)
    warmup_steps: int = 0  # linear lr warm-up from 0 (DMD2's constant_with_warmup: 500); DMD: none
    generator_sigma: float = 80.0  # G(z) = D_G(sigma z; sigma) (DMD2 conditioning_sigma)
    dropout: float = 0.0  # DMD2's networks are built with dropout 0
    # noise levels (paper 003 section 4 / B.1, DMD2 defaults)
    num_train_timesteps: int = 1000
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    min_step_percent: float = 0.02
    max_step_percent: float = 0.98
    sigma_data: float = 0.5
    # loss weights
    dm_weight: float = 1.0  # 0 = Table 2 "w/o Dist. Matching"
    fake_weight: float = 1.0
    reg_weight: float = 0.25  # lambda_reg: 0.25 cond CIFAR-10 / ImageNet, 0.5 uncond CIFAR-10; 0 = "w/o Regress."
    reg_distance: str = "lpips_piq"  # lpips_piq (paper: PIQ's avg-pool VGG LPIPS) | lpips (max-pool) | l2 | l1 | pseudo_huber
    lpips_backbone: str = "auto"  # auto | pretrained | random (untrained: recorded)
    # paired dataset (only built when reg_weight > 0)
    pairs: int = 100_000  # 100k cond CIFAR-10, 500k uncond CIFAR-10, 25k ImageNet 64 (B.1/B.2)
    pair_steps: int = 18  # Heun-18 CIFAR-10, Heun-256 ImageNet 64
    pair_dtype: str = "float16"  # storage precision of the teacher outputs
    pair_chunk: int = 1000
    pair_batch: int = 250  # teacher sampler batch during generation (does not change the data)
    pair_seed_offset: int = 0
    reg_batch: int | None = None  # paired batch per step (global); None = the DM batch (B.1)
    # DMD2 (tianweiy/DMD2 main/edm)
    fake_updates_per_generator: int = 1  # TTUR dfake_gen_update_ratio: G on every k-th step; DMD2 = 5
    gan: bool = False  # classifier head on mu_fake's bottleneck (DMD2 --gan_classifier)
    gan_g_weight: float = 3e-3  # gen_cls_loss_weight (DMD2 ImageNet GAN run)
    gan_d_weight: float = 1e-2  # cls_loss_weight
    gan_max_timestep: int = 1000  # diffusion_gan_max_timestep: noise at karras[randint(0, k)]; 0 = clean (karras[0])
    ema: bool = False  # DMD2 evaluates raw weights; True = the loop's EMA generator


@dataclass
class DMD2Config(DMDConfig):
    """DMD2's EDM defaults (experiments/imagenet/*.sh, train_edm.py): the DMD fields, changed where DMD2 differs."""

    g_lr: float = 2e-6
    fake_lr: float = 2e-6
    warmup_steps: int = 500
    reg_weight: float = 0.0  # DMD2 dropped the regression loss
    fake_updates_per_generator: int = 5
    gan: bool = True


def _adamw(params, lr: float, cfg: DMDConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)


class GANHead(nn.Module):
    """DMD2's `cls_pred_branch` on the bottleneck (C, h, w): conv 4/2 -> GN -> SiLU -> conv to 1x1
    -> GN -> SiLU -> conv 1x1 to one logit. For DMD2's 768x8x8 bottleneck the second conv is 4/4,
    exactly `edm_guidance.py:47-57`; other sizes use kernel = stride = h/2 (or skip the first conv
    when h == 1) so the head still ends at 1x1."""

    def __init__(self, channels: int, size: int):
        super().__init__()
        # 32 groups as DMD2 (768 channels: 24 per group); fewer for narrow bottlenecks so that a
        # group never holds a single channel (GroupNorm of one value at 1x1 is a constant).
        groups = next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0 and (channels // g >= 2 or g == 1))
        layers: list[nn.Module] = []
        if size >= 2:
            layers += [nn.Conv2d(channels, channels, kernel_size=4, stride=2, padding=1),
                       nn.GroupNorm(groups, channels), nn.SiLU()]
            size //= 2
        layers += [nn.Conv2d(channels, channels, kernel_size=size, stride=size, padding=0),
                   nn.GroupNorm(groups, channels), nn.SiLU(), nn.Conv2d(channels, 1, kernel_size=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features.float()).flatten(1)  # (B, 1)


def l1_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.float() - b.float()).abs().flatten(1).mean(1)


def piq_style_lpips(lpips_backbone: str = "auto") -> nn.Module:
    """The LPIPS DMD uses (via consistency models): piq.LPIPS(replace_pooling=True) on (x+1)/2
    after bilinear upsampling to 224. Built from the project's LPIPSDistance (`lpips` package, VGG,
    the same five layers, unit-normalised features, the same linear weights' role, 224 bilinear)
    with its max pools replaced by 2x2 average pools, as PIQ's replace_pooling does; the `lpips`
    scaling layer on [-1, 1] equals PIQ's ImageNet mean/std on (x+1)/2, so inputs stay in [-1, 1].
    (`piq` itself is not a dependency: its weights are a separate download.)"""
    dist = make_distance("lpips", lpips_backbone=lpips_backbone)
    for parent in dist.net.net.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.MaxPool2d):
                setattr(parent, name, nn.AvgPool2d(kernel_size=2, stride=2, padding=0))
    return dist


def regression_distance(name: str, lpips_backbone: str = "auto"):
    if name == "l1":
        return l1_distance
    if name == "lpips_piq":
        return piq_style_lpips(lpips_backbone)
    return make_distance(name, lpips_backbone=lpips_backbone)


def pair_spec_for(cfg: DMDConfig, teacher: nn.Module, data: DataSpec | None = None, sha256: str | None = None) -> PairSpec:
    """The paired dataset a DMD config asks for (also used by `onestep dmd-pairs` for job arrays)."""
    if data is None:
        data = DataSpec(int(teacher.img_resolution), int(teacher.img_channels), int(getattr(teacher, "label_dim", 0) or 0))
    return PairSpec(sha256 or state_checksum(teacher), cfg.pairs, data.channels, data.resolution, data.label_dim,
                    "heun", cfg.pair_steps, cfg.sigma_min, cfg.sigma_max, cfg.rho, cfg.pair_dtype, cfg.pair_chunk,
                    cfg.pair_seed_offset)


def pairs_root() -> "Path":
    """Where `prepare` keeps DMD's paired datasets: the loop's ctx.cache_dir() for method 'dmd'."""
    from ..core.paths import cache_dir

    return cache_dir("methods", "dmd") / "pairs"


# --- presets --------------------------------------------------------------------------------
def _paper(dataset: str, teacher: str, *, lr: float, reg: float, pairs: int, steps: int, batch: int,
           iters: int, precision: str = "fp32") -> dict[str, Any]:
    return {
        "method": {"dataset": dataset, "teacher": teacher, "g_lr": lr, "fake_lr": lr, "reg_weight": reg,
                   "reg_distance": "lpips_piq", "pairs": pairs, "pair_steps": steps},
        "loop": {"batch_size": batch, "total_kimg": iters * batch / 1000, "precision": precision, "grad_clip": None,
                 "checkpoint_kimg": 500, "log_kimg": 40},
    }


def _dmd_presets() -> dict[str, dict[str, Any]]:
    cifar_c = _paper("cifar10-32x32", "edm-cifar10-32x32-cond-vp", lr=5e-5, reg=0.25, pairs=100_000, steps=18,
                     batch=392, iters=300_000)
    cifar_u = _paper("cifar10-32x32", "edm-cifar10-32x32-uncond-vp", lr=5e-5, reg=0.5, pairs=500_000, steps=18,
                     batch=392, iters=300_000)
    imnet = _paper("imagenet-64x64", "edm-imagenet-64x64-cond-adm", lr=2e-6, reg=0.25, pairs=25_000, steps=256,
                   batch=336, iters=350_000, precision="bf16")  # B.2: "mixed precision"
    presets = {"cifar10-cond": cifar_c, "cifar10-uncond": cifar_u, "imagenet64": imnet}
    # Table 2 (left) ablations: C.1 drops the DM loss; C.2 drops the regression loss at lr 1e-5.
    for name in ("cifar10-cond", "imagenet64"):
        no_dm = copy.deepcopy(presets[name])
        no_dm["method"]["dm_weight"] = 0.0
        presets[f"{name}-no-dm"] = no_dm
        no_reg = copy.deepcopy(presets[name])
        no_reg["method"].update(reg_weight=0.0, g_lr=1e-5, fake_lr=1e-5)
        presets[f"{name}-no-reg"] = no_reg
    presets["smoke"] = SMOKE
    return presets


# Embedded default: digits 8x8 teacher, 2,000 Heun-18 pairs (cached), 100 steps at batch 64 on CPU.
# lr raised from 5e-5 (G 2e-4, fake score 1e-3 so it tracks G) as the budget is ~3000x shorter; l2 (no LPIPS
# weights offline; the run records it).
SMOKE = {
    "method": {"teacher": "digits-8x8-cond", "g_lr": 2e-4, "fake_lr": 1e-3, "reg_weight": 0.25, "reg_distance": "l2",
               "pairs": 2000, "pair_steps": 18, "pair_chunk": 500, "pair_batch": 500},
    "loop": {"total_kimg": 6.4, "batch_size": 64, "precision": "auto", "log_kimg": 1.6, "checkpoint_kimg": 6.4},
}


def _dmd2_presets() -> dict[str, dict[str, Any]]:
    # experiments/imagenet/*.sh: 7 GPUs x 40, lr 2e-6 both, TTUR 5, bf16, 500 warm-up steps.
    base = {"dataset": "imagenet-64x64", "teacher": "edm-imagenet-64x64-cond-adm", "g_lr": 2e-6, "fake_lr": 2e-6}
    loop = {"batch_size": 280, "precision": "bf16", "grad_clip": None, "checkpoint_kimg": 500, "log_kimg": 40}
    return {
        "imagenet64": {"method": {**base, "gan": False}, "loop": {**loop, "total_kimg": 410_000 * 280 / 1000}},
        "imagenet64-gan": {"method": {**base, "gan": True}, "loop": {**loop, "total_kimg": 200_000 * 280 / 1000}},
        # digits, CPU: TTUR 2 (not 5) so 200 steps still give 100 G updates; lrs raised as dmd's smoke
        "smoke": {"method": {"teacher": "digits-8x8-cond", "g_lr": 2e-4, "fake_lr": 1e-3, "warmup_steps": 5,
                             "fake_updates_per_generator": 2, "gan": True, "gan_g_weight": 3e-3, "gan_d_weight": 1e-2},
                  "loop": {"total_kimg": 12.8, "batch_size": 64, "precision": "auto", "log_kimg": 1.6,
                           "checkpoint_kimg": 12.8}},
    }


@register_method
class DMD(Method):
    """Distribution matching distillation (paper 003): DM gradient + LPIPS regression, 1:1 updates."""

    name = "dmd"
    Config = DMDConfig
    presets = _dmd_presets()
    needs_real_data = False  # DMD needs none; DMD2 needs real images for its GAN only

    def __init__(self, config: DMDConfig, teacher: nn.Module | None, data: DataSpec, device: torch.device):
        super().__init__(config, teacher, data, device)
        cfg = config
        if teacher is None:
            raise ValueError(f"{self.name} needs a teacher (an EDM denoiser, e.g. zoo preset '{cfg.teacher}')")
        if cfg.reg_distance not in DISTANCES:
            raise ValueError(f"{self.name}: reg_distance {cfg.reg_distance!r} unknown; choose one of {DISTANCES}")
        if cfg.fake_updates_per_generator < 1:
            raise ValueError(f"{self.name}: fake_updates_per_generator must be >= 1, got {cfg.fake_updates_per_generator}")
        if cfg.gan and not type(self).needs_real_data:
            raise ValueError(f"{self.name}: the GAN head needs real images; use method 'dmd2'")
        self.teacher = frozen_teacher(teacher).to(device)
        # The paired dataset's cache key; a teacher on the meta device (dry runs) has no values.
        on_meta = any(p.is_meta for p in teacher.parameters())
        self.teacher_sha256 = None if on_meta else state_checksum(teacher)
        g_net = copy.deepcopy(self.teacher).requires_grad_(True)
        set_dropout(g_net, cfg.dropout)
        self._gen = OneStepGenerator(g_net, sigma=cfg.generator_sigma).to(device).train()
        self.fake = FakeScore(self.teacher, dropout=cfg.dropout).to(device)
        self.head = None
        fake_params = list(self.fake.parameters())
        if cfg.gan:
            feats = self.fake.bottleneck(torch.zeros(1, data.channels, data.resolution, data.resolution, device=device),
                                         torch.ones(1, device=device),
                                         torch.zeros(1, data.label_dim, device=device) if data.label_dim else None)
            self.head = GANHead(feats.shape[1], feats.shape[-1]).to(device)
            fake_params += list(self.head.parameters())
        self.sigmas = dmd_karras_sigmas(cfg.num_train_timesteps, cfg.sigma_min, cfg.sigma_max, cfg.rho).to(device)
        self.t_bounds = dmd_timestep_bounds(cfg.num_train_timesteps, cfg.min_step_percent, cfg.max_step_percent)
        self.opt_g = _adamw(self._gen.parameters(), cfg.g_lr, cfg)
        self.opt_fake = _adamw(fake_params, cfg.fake_lr, cfg)
        self.clip = GradClip(norm=cfg.grad_clip_norm)
        self.distance = None
        self.pairs: TeacherPairs | None = None
        if cfg.reg_weight > 0:
            self.distance = regression_distance(cfg.reg_distance, cfg.lpips_backbone)
            if isinstance(self.distance, nn.Module):
                self.distance.to(device)

    # --- paired dataset ---------------------------------------------------------------------
    def pair_spec(self) -> PairSpec:
        return pair_spec_for(self.config, self.teacher, self.data, self.teacher_sha256)

    def prepare(self, ctx: TrainContext) -> None:
        if self.config.reg_weight <= 0 or (self.pairs is not None and self.pairs.is_complete()):
            return
        if torch.device(ctx.device).type == "meta":  # a dry run on meta: no values to make pairs from
            return
        pairs = TeacherPairs(self.pair_spec(), ctx.cache_dir() / "pairs")  # = pairs_root() for 'dmd'
        # Each rank generates its share of the chunks, then any chunk still missing (so no rank
        # waits on another); atomic chunk files make the duplicates harmless.
        pairs.build(self.teacher, ctx.device, self.config.pair_batch, ctx.rank, ctx.world_size, merge=False,
                    log=print if ctx.rank == 0 else None)
        pairs.build(self.teacher, ctx.device, self.config.pair_batch, log=print if ctx.rank == 0 else None)
        self.pairs = pairs

    # --- interface --------------------------------------------------------------------------
    @property
    def generator(self) -> nn.Module:
        return self._gen

    def modules(self) -> dict[str, nn.Module]:
        mods = {"generator": self._gen, "fake_score": self.fake}
        if self.head is not None:
            mods["gan_head"] = self.head
        return mods

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "fake_score": self.opt_fake}

    def ema_modules(self) -> dict[str, nn.Module]:
        return {"generator": self._gen} if self.config.ema else {}

    def build_generator(self, ema_modules: dict[str, nn.Module]) -> nn.Module:
        return ema_modules["generator"] if self.config.ema else self._gen

    def _set_lr(self, step: int) -> None:
        # constant_with_warmup (transformers): factor step / warmup below warmup, then 1; stateless for resume.
        w = self.config.warmup_steps
        factor = min(1.0, step / w) if w > 0 else 1.0
        for opt, lr in ((self.opt_g, self.config.g_lr), (self.opt_fake, self.config.fake_lr)):
            for group in opt.param_groups:
                group["lr"] = lr * factor

    def _gan_logits(self, images: torch.Tensor, labels, ctx: TrainContext, stream: str) -> torch.Tensor:
        b = images.shape[0]
        k = self.config.gan_max_timestep
        if k > 0:  # DMD2 --diffusion_gan: noise at a random Karras level in [0, k)
            t = ctx.randint(k, b, stream=f"{stream}_t").long()
            sigma = self.sigmas[t]
            images = images + sigma.view(-1, 1, 1, 1) * ctx.randn(*images.shape, stream=f"{stream}_eps")
        else:
            sigma = self.sigmas[torch.zeros(b, dtype=torch.long, device=images.device)]
        return self.head(self.fake.bottleneck(images, sigma, labels))

    def step(self, batch: Batch, ctx: TrainContext) -> dict[str, float]:
        cfg, gen = self.config, self._gen
        b = ctx.local_batch_size
        shape = (self.data.channels, self.data.resolution, self.data.resolution)
        logs: dict[str, float] = {}
        self._set_lr(ctx.step)
        z = draw_normal(ctx, b, *shape, stream="dmd_z")
        c = draw_labels(ctx, b, self.data.label_dim, stream="dmd_c")
        update_g = ctx.step % cfg.fake_updates_per_generator == 0

        # 1-2. Generator update (DM + regression + GAN), mu_fake and the head frozen as critics.
        if update_g:
            gen.train()
            with ctx.autocast():
                x = gen(z, c)
            xf = x.float()
            total = xf.new_zeros(())
            if cfg.dm_weight > 0:
                lo, hi = self.t_bounds
                t = ctx.randint(hi - lo, b, stream="dmd_t").long() + lo
                sigma = self.sigmas[t].view(-1, 1, 1, 1)
                eps = ctx.randn(b, *shape, stream="dmd_eps")
                with torch.no_grad(), self.fake.as_critic(), ctx.autocast():
                    x_t = xf.detach() + sigma * eps
                    pred_real = self.teacher(x_t, sigma.flatten(), c).float()
                    pred_fake = self.fake(x_t, sigma.flatten(), c).float()
                grad = dmd_distribution_matching_grad(xf.detach(), pred_real, pred_fake)
                loss_dm = dmd_loss(xf, grad)
                total = total + cfg.dm_weight * loss_dm
                logs["loss_dm"] = float(loss_dm.detach())
                logs["dm_grad_norm"] = float(grad.norm().detach())
            if cfg.reg_weight > 0:
                if self.pairs is None:
                    raise RuntimeError(f"{self.name}: the paired dataset is not ready; the loop calls prepare(ctx) first")
                b_ref = b if cfg.reg_batch is None else cfg.reg_batch // ctx.world_size
                idx = ctx.randint(cfg.pairs, b_ref, stream="dmd_ref")
                z_ref, c_ref, y_ref = self.pairs.batch(idx, ctx.device)
                with ctx.autocast():
                    g_ref = gen(z_ref, c_ref)
                    loss_reg = dmd_regression_loss(g_ref.float(), y_ref, self.distance)
                total = total + cfg.reg_weight * loss_reg
                logs["loss_reg"] = float(loss_reg.detach())
            if self.head is not None:
                with self.fake.as_critic(), frozen(self.head), ctx.autocast():
                    loss_gan_g = dmd2_generator_gan_loss(self._gan_logits(x, c, ctx, "dmd_gan_g").float())
                total = total + cfg.gan_g_weight * loss_gan_g
                logs["loss_gan_g"] = float(loss_gan_g.detach())
            total.backward()
            ctx.optimizer_step(self.opt_g, gen.parameters(), clip=self.clip)
            x = x.detach()
        else:
            with torch.no_grad(), ctx.autocast():
                x = gen(z, c)

        # 3. Fake score update on the same (pre-update) samples, every step.
        x = x.detach().float()
        with self.fake.updating():
            eps = ctx.randn(b, *shape, stream="dmd_fake_eps")  # DMD2 compute_loss_fake: noise first, then t
            t = ctx.randint(cfg.num_train_timesteps, b, stream="dmd_fake_t").long()
            sigma = self.sigmas[t].view(-1, 1, 1, 1)
            with ctx.autocast():
                pred = self.fake(x + sigma * eps, sigma.flatten(), c)
            loss_fake = dmd_fake_score_loss(pred.float(), x, sigma, cfg.sigma_data)
            total = cfg.fake_weight * loss_fake
            if self.head is not None:
                if batch.images is None:
                    raise ValueError(f"{self.name}: the GAN head needs real images; the loop passed none")
                with ctx.autocast():
                    real_logits = self._gan_logits(batch.images.to(ctx.device), batch.labels, ctx, "dmd_gan_dr")
                    fake_logits = self._gan_logits(x, c, ctx, "dmd_gan_df")
                loss_gan_d = dmd2_discriminator_gan_loss(real_logits.float(), fake_logits.float())
                total = total + cfg.gan_d_weight * loss_gan_d
                logs["loss_gan_d"] = float(loss_gan_d.detach())
                logs["d_real"] = float(torch.sigmoid(real_logits.detach().float()).mean())
                logs["d_fake"] = float(torch.sigmoid(fake_logits.detach().float()).mean())
        total.backward()
        ctx.optimizer_step(self.opt_fake, self.opt_fake.param_groups[0]["params"], clip=self.clip)
        logs["loss_fake"] = float(loss_fake.detach())
        return logs

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        cfg = self.config
        info["dmd"] = {
            "variant": self.name, "teacher_sha256": self.teacher_sha256,
            "fake_updates_per_generator": cfg.fake_updates_per_generator, "gan": cfg.gan, "ema": cfg.ema,
            "dm_weight": cfg.dm_weight, "reg_weight": cfg.reg_weight,
            "regression_distance": cfg.reg_distance if cfg.reg_weight > 0 else None,
            "lpips_flavour": {"lpips_piq": "VGG LPIPS, average pooling (PIQ replace_pooling=True), 224 bilinear",
                              "lpips": "VGG LPIPS, max pooling (lpips package), 224 bilinear"}.get(cfg.reg_distance)
            if cfg.reg_weight > 0 else None,
            "lpips_untrained_backbone": bool(getattr(self.distance, "untrained", False)),
        }
        if self.pairs is not None:
            info["dmd"]["pairs"] = {"dir": str(self.pairs.dir), **self.pairs.info()}
        return info


@register_method
class DMD2(DMD):
    """DMD2's EDM code: DM + fake losses of DMD, TTUR 5, no regression, optional GAN on the bottleneck."""

    name = "dmd2"
    Config = DMD2Config
    presets = _dmd2_presets()
    needs_real_data = True  # the GAN's real images (unused when gan is False)


    def __init__(self, config: DMD2Config, teacher, data, device):
        if config.reg_weight > 0:
            raise ValueError("dmd2 has no regression loss (DMD2's EDM code dropped it); use method 'dmd' for reg_weight > 0")
        super().__init__(config, teacher, data, device)
