"""GDD / GDD-I (paper 000) and D2O / D2O-F (paper 001): one method, named presets.

The teacher's score network becomes a one-step generator G(z) = D_theta(80 z; sigma_max) with
the consistency-style parameterization (c_skip ~ 0, c_out ~ sigma_data; paper 000 appendix
B.4), initialised from the teacher's weights, and is trained ONLY with the non-saturating GAN
objective against real data (paper 000 eq. 3/4): no instance-level loss unless the optional
extra CD loss of section 4.3 (paper 001 section 4.4) is switched on. GDD-I / D2O-F freeze
parameters by role (methods/freezing.py; default: conv frozen, Table 2/3 best row).

One `step`, as the official loop (Zyriix/GDD training_loop.py, loss.py): a generator update
(D frozen), a discriminator update, and on steps 16, 32, ... a separate lazy-R1 update of D
(gain gamma/2 * interval; D's Adam uses lr * 16/17 and beta2 0.99^(16/17)). Fake images use
the real batch's labels. The adversarial losses are the official ones: per sample, the mean
over a feature network's concatenated patch logits, summed over the per-GPU batch
(`adv_batch_scale` times the batch mean here, so the scale does not depend on our GPU count)
and over feature networks. The student trains with dropout 0 (train.sh --dropout=0). D,
feature networks and R1 run in fp32; G under the loop's autocast (bf16 where enabled).
ADA (discriminator.ada_target / ada_p; the VGG16 baseline) augments each image batch once
before D, shared by its feature networks, for fakes in both updates and reals in D's update,
never for R1 (official loss.py run_D); p follows the mean sign of D's real logits.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..core.config import ConfigError
from ..discriminators import DiscriminatorConfig, build_ada, build_discriminator, diff_augment, parse_policy
from ..freezing import DEFAULT_FROZEN_LEVEL, apply_freeze_level, freezing_summary
from ..losses import discriminator_loss, generator_loss, lazy_adam_hparams, lazy_r1_weight, r1_due, r1_penalty
from ..plugin import Batch, DataSpec, GradClip, Method, TrainContext, frozen, register_method
from ..solvers.generator import OneStepGenerator
from ..solvers.pd import pd_generator
from ..zoo import OneStepPrecond
from .cd import CDLossConfig, ConsistencyLoss, disable_dropout, draw_labels, draw_normal


@dataclass
class GDDConfig:
    dataset: str = "digits-8x8"  # what the preset was made for (recorded with the run)
    teacher: str = "digits-8x8-cond"  # zoo preset / checkpoint of the EDM teacher (recorded; the loop loads it)
    g_lr: float = 1e-4  # Table 6 (CIFAR-10)
    d_lr: float = 1e-4
    betas: tuple[float, float] = (0.0, 0.99)  # Table 6: Adam beta1 0, beta2 0.99, no weight decay
    freeze: str = "none"  # methods/freezing.py level: none (GDD/D2O), conv (GDD-I/D2O-F default), ...
    r1_gamma: float = 1e-4  # Table 6 / Table 1b
    r1_interval: int = 16  # lazy regularization (StyleGAN2)
    sigma_max: float = 80.0  # generator noise level t = sigma_max (appendix B.4)
    epsilon: float = 0.002  # consistency parameterization epsilon
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    # Official losses sum per-sample means over the per-GPU batch: this is that batch (0 = this
    # process's local batch, i.e. literally official on our GPU count). Paper presets: global
    # batch / 8, the 8 A100s of the published runs (train.sh launches 4: batch / 4).
    adv_batch_scale: int = 0
    # The generator trained: 1 = the one-step student; k > 1 = paper 000 section 2.2's k-step PD
    # teacher (k Euler steps of the same network on T(i, k)), trained with the same GAN loss;
    # generator_sigma_mid sets a two-step teacher's intermediate sigma (Figure 2B).
    generator_steps: int = 1
    generator_sigma_mid: float | None = None
    cd_weight: float = 0.0  # > 0 adds the consistency-distillation loss (section 4.3); paper states no weight -> 1
    cd: CDLossConfig = field(default_factory=CDLossConfig)


PUBLISHED_GPUS = 8  # official README: "8 A100 GPUs"; per-GPU batch 32 (ImageNet 64)


def _table6(dataset: str, *, g_lr, d_lr, batch, gamma, ema_mimg, kimg, teacher, features, cond) -> dict[str, Any]:
    """A paper preset: paper 000 Table 6 = paper 001 Table 10 (same numbers)."""
    return {
        "method": {"dataset": dataset, "teacher": teacher, "g_lr": g_lr, "d_lr": d_lr, "betas": [0.0, 0.99], "r1_gamma": gamma,
                   "adv_batch_scale": batch // PUBLISHED_GPUS,
                   "discriminator": {"kind": "projected", "feature_networks": features}},
        "loop": {"total_kimg": kimg, "batch_size": batch, "ema_halflife_kimg": ema_mimg * 1000,
                 "ema_rampup_ratio": 0.05, "precision": "bf16", "grad_clip": None},
    }


CIFAR_FEATURES = ["vgg16_bn", "efficientnet_lite0"]  # paper 000 section 4.4
FACE_FEATURES = ["deit_base", "efficientnet_lite0"]


def _paper_presets() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    rows = [  # (name, dataset, g_lr, d_lr, batch, gamma, EMA Mimg, GDD kimg, GDD-I kimg, teacher, features, cond)
        ("cifar10-uncond", "cifar10-32x32", 1e-4, 1e-4, 256, 1e-4, 0.5, 5000, 5000, "edm-cifar10-32x32-uncond-ve", CIFAR_FEATURES, False),
        ("cifar10-cond", "cifar10-32x32", 1e-4, 1e-4, 256, 1e-4, 0.5, 5000, 5000, "edm-cifar10-32x32-cond-ve", CIFAR_FEATURES, True),
        ("afhqv2", "afhqv2-64x64", 2e-5, 4e-5, 256, 1e-4, 0.5, 5000, 10000, "edm-afhqv2-64x64-uncond-ve", FACE_FEATURES, False),
        ("ffhq", "ffhq-64x64", 2e-5, 4e-5, 256, 1e-4, 0.5, 5000, 10000, "edm-ffhq-64x64-uncond-ve", FACE_FEATURES, False),
        ("imagenet64", "imagenet-64x64", 8e-6, 4e-5, 512, 4e-4, 50, 5000, 5000, "edm-imagenet-64x64-cond-adm", FACE_FEATURES, True),
    ]
    for name, ds, g_lr, d_lr, batch, gamma, ema, kimg, kimg_i, teacher, feats, cond in rows:
        common = dict(g_lr=g_lr, d_lr=d_lr, batch=batch, gamma=gamma, ema_mimg=ema, teacher=teacher, features=feats, cond=cond)
        out[name] = _table6(ds, kimg=kimg, **common)
        frozen_preset = _table6(ds, kimg=kimg_i, **common)
        frozen_preset["method"]["freeze"] = DEFAULT_FROZEN_LEVEL
        out[f"{name}-i"] = frozen_preset
    # Freezing ablation rows (paper 000 Table 2 / paper 001 Table 3), CIFAR-10 uncond, 5 Mimg.
    for level in ("conv_qkv", "conv_qkv_skip"):
        p = _table6("cifar10-32x32", kimg=5000, g_lr=1e-4, d_lr=1e-4, batch=256, gamma=1e-4, ema_mimg=0.5,
                    teacher="edm-cifar10-32x32-uncond-ve", features=CIFAR_FEATURES, cond=False)
        p["method"]["freeze"] = level
        out[f"cifar10-uncond-freeze-{level}"] = p
    # Discriminator / augmentation ablations (Table 1a/1b).
    vgg = _table6("cifar10-32x32", kimg=5000, g_lr=1e-4, d_lr=1e-4, batch=256, gamma=1e-2, ema_mimg=0.5,
                  teacher="edm-cifar10-32x32-uncond-ve", features=CIFAR_FEATURES, cond=False)
    # Table 1a baseline: VGG16, gamma_r1 = 0.01 and ADA (section 3.2), whose target the paper does not
    # state: StyleGAN2-ADA's default 0.6, p from 0.
    vgg["method"]["discriminator"] = {"kind": "vgg16", "ada_target": 0.6, "ada_p": 0.0}
    out["cifar10-uncond-vgg16-baseline"] = vgg
    aug = _table6("cifar10-32x32", kimg=5000, g_lr=1e-4, d_lr=1e-4, batch=256, gamma=0.0, ema_mimg=0.5,
                  teacher="edm-cifar10-32x32-uncond-ve", features=CIFAR_FEATURES, cond=False)
    aug["method"]["discriminator"]["augment"] = "color,translation,cutout"  # Table 1b row 1 (no R1)
    out["cifar10-uncond-diffaug"] = aug
    # Extra CD loss (section 4.3, Figure 4B): GDD and GDD-I + CD-LPIPS.
    for suffix, level in (("", "none"), ("-i", DEFAULT_FROZEN_LEVEL)):
        p = _table6("cifar10-32x32", kimg=5000, g_lr=1e-4, d_lr=1e-4, batch=256, gamma=1e-4, ema_mimg=0.5,
                    teacher="edm-cifar10-32x32-uncond-ve", features=CIFAR_FEATURES, cond=False)
        p["method"].update(freeze=level, cd_weight=1.0, cd={"distance": "lpips"})
        out[f"cifar10-uncond{suffix}-cd"] = p
    return out


# Embedded default: digits 8x8 teacher, digits feature network, about a minute on 2 CPU cores.
# Learning rates are raised from Table 6 because the budget is ~100x shorter.
SMOKE = {
    "method": {"teacher": "digits-8x8-cond", "g_lr": 1e-4, "d_lr": 2e-4, "r1_gamma": 1e-4,
               "discriminator": {"kind": "projected", "feature_networks": ["digits"], "width_scale": 0.25}},
    "loop": {"total_kimg": 6.4, "batch_size": 64, "ema_halflife_kimg": 0.5, "ema_rampup_ratio": 0.05,
             "precision": "auto", "log_kimg": 1.6, "checkpoint_kimg": 6.4},
}


def _with(preset: dict, **method) -> dict:
    import copy

    p = copy.deepcopy(preset)
    p["method"].update(method)
    return p


def _gdd_presets() -> dict[str, dict[str, Any]]:
    presets = {"smoke": SMOKE, "smoke-i": _with(SMOKE, freeze=DEFAULT_FROZEN_LEVEL)}
    presets.update(_paper_presets())
    return presets


def _d2o_presets() -> dict[str, dict[str, Any]]:
    presets = {"smoke": SMOKE, "smoke-f": _with(SMOKE, freeze=DEFAULT_FROZEN_LEVEL)}
    for name, p in _paper_presets().items():
        presets[name.replace("-i", "-f") if name.endswith("-i") else name] = p
    # Paper 001 section 3.4 / 4.2: D2O (FID 3.62) and D2O-F (FID 4.12) after only 0.2M images.
    for name in ("cifar10-uncond", "cifar10-uncond-f"):
        import copy

        p = copy.deepcopy(presets[name])
        p["loop"]["total_kimg"] = 200
        presets[f"{name}-0.2m"] = p
    return presets


@register_method
class GDD(Method):
    """GAN distillation at distribution level (paper 000); GDD-I via `freeze`."""

    name = "gdd"
    Config = GDDConfig
    presets = _gdd_presets()

    def __init__(self, config: GDDConfig, teacher: nn.Module | None, data: DataSpec, device: torch.device):
        super().__init__(config, teacher, data, device)
        if teacher is None:
            raise ValueError(f"{self.name} needs a teacher (an EDMPrecond network, e.g. zoo preset '{config.teacher}')")
        # fp32 weights (bf16 comes from the loop's autocast, also for ImageNet's fp16 ADM teacher), dropout 0.
        student = OneStepPrecond.from_teacher(teacher, sigma_max=config.sigma_max, epsilon=config.epsilon, use_fp16=False)
        disable_dropout(student)
        student.train().to(device)
        if config.generator_steps < 1:
            raise ConfigError(f"generator_steps {config.generator_steps}: give 1 (the one-step student) or more (a PD teacher)")
        if config.generator_steps == 1 and config.generator_sigma_mid is None:
            self._gen = OneStepGenerator(student, sigma=config.sigma_max)
        else:
            self._gen = pd_generator(student, config.generator_steps, config.generator_sigma_mid)
        self.frozen_names = apply_freeze_level(student, config.freeze)
        self.augment = parse_policy(config.discriminator.augment)
        dc = config.discriminator
        self.ada = build_ada(dc.ada_target, dc.ada_p, dc.ada_kimg, dc.ada_interval)
        if self.ada is not None:
            if self.augment:  # no official setting uses both (train.sh, paper 000 Table 1)
                raise ConfigError(f"discriminator.augment={dc.augment!r} (DiffAugment) and ADA (ada_target={dc.ada_target}, "
                                  f"ada_p={dc.ada_p}) are both on; choose one: set augment: '' or ada_target and ada_p to 0")
            self.ada.to(device)
        # Conditioning follows the data: an unconditional suite trains an unconditional D.
        self.disc = build_discriminator(config.discriminator, data.resolution, data.channels, data.label_dim,
                                        double_backward=config.r1_gamma > 0).to(device)
        self.disc.train()
        self.opt_g = torch.optim.Adam(self._trainable(self._gen), lr=config.g_lr, betas=tuple(config.betas))
        d_lr, d_betas = lazy_adam_hparams(config.d_lr, tuple(config.betas), config.r1_interval)
        self.opt_d = torch.optim.Adam(self._trainable(self.disc), lr=d_lr, betas=d_betas)
        self.cd_loss = None
        if config.cd_weight > 0:
            self.teacher = teacher.to(device).eval().requires_grad_(False)
            self.cd_loss = ConsistencyLoss(config.cd, teacher)

    @staticmethod
    def _trainable(module: nn.Module) -> list[nn.Parameter]:
        return [p for p in module.parameters() if p.requires_grad]

    @property
    def generator(self) -> nn.Module:
        return self._gen

    def modules(self) -> dict[str, nn.Module]:
        mods = {"generator": self._gen, "discriminator": self.disc}
        if self.ada is not None:
            mods["ada"] = self.ada  # p and the sign accumulator are its buffers: saved, resumed
        return mods

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def _augmenter(self, ctx: TrainContext, stream: str):
        """DiffAugment with fresh draws on every call (one call per feature network)."""
        if not self.augment:
            return None
        calls = iter(range(10 ** 6))

        def augment(x: torch.Tensor) -> torch.Tensor:
            k, draws = next(calls), iter(range(10 ** 6))
            return diff_augment(x, self.augment, lambda *shape: ctx.rand(*shape, stream=f"{stream}{k}_{next(draws)}"))
        return augment

    def _ada_images(self, images: torch.Tensor, ctx: TrainContext, stream: str) -> torch.Tensor:
        """ADA on the whole image batch, once, in fp32 (official run_D: before the feature networks)."""
        if self.ada is None:
            return images
        with torch.autocast(device_type=self.device.type, enabled=False):
            return self.ada(images.float(), lambda *s: ctx.rand(*s, stream=stream),
                            lambda *s: ctx.randn(*s, stream=f"{stream}_n"))

    def adv_scale(self, ctx: TrainContext) -> int:
        return self.config.adv_batch_scale or ctx.local_batch_size

    def _d(self, images: torch.Tensor, labels, augment) -> list[torch.Tensor]:
        """D and its feature networks in fp32, outside the loop's autocast (as official)."""
        with torch.autocast(device_type=self.device.type, enabled=False):
            return self.disc(images.float(), labels, augment)

    def _labels(self, batch: Batch, ctx: TrainContext, stream: str):
        """Fake images get the real batch's labels, as official."""
        if not self.data.label_dim:
            return None
        if batch.labels is not None:
            return batch.labels.to(self.device).float()
        return draw_labels(ctx, ctx.local_batch_size, self.data.label_dim, stream=stream)

    def step(self, batch: Batch, ctx: TrainContext) -> dict[str, float]:
        cfg, gen, disc = self.config, self._gen, self.disc
        b = ctx.local_batch_size
        shape = (self.data.channels, self.data.resolution, self.data.resolution)
        scale = self.adv_scale(ctx)
        nan_to_num = GradClip(nan_to_num=True)  # the official loop's nan_to_num on every gradient
        logs: dict[str, float] = {}
        if batch.images is None:
            raise ValueError(f"{self.name} trains against real data: the loop passed no images")
        c = self._labels(batch, ctx, "gdd_c")

        # Generator update: non-saturating loss (eq. 3/4), D's parameters frozen.
        z = draw_normal(ctx, b, *shape, stream="gdd_z_g")
        with frozen(disc):
            with ctx.autocast():
                fake = gen(z, c)
            loss_g = generator_loss(self._d(self._ada_images(fake, ctx, "gdd_ada_g"), c, self._augmenter(ctx, "gdd_aug_g")))
            total_g = scale * loss_g
            if self.cd_loss is not None:
                with ctx.autocast():
                    loss_cd = self.cd_loss(gen.denoiser, batch, ctx)
                total_g = total_g + cfg.cd_weight * loss_cd
                logs["loss_cd"] = float(loss_cd.detach())
        total_g.backward()
        ctx.optimizer_step(self.opt_g, self._trainable(gen), clip=nan_to_num)
        logs["loss_g"] = float(loss_g.detach())

        # Discriminator update on fresh fakes and the real batch.
        z = draw_normal(ctx, b, *shape, stream="gdd_z_d")
        real = batch.images.detach().to(self.device).float()
        with torch.no_grad(), ctx.autocast():
            fake = gen(z, c)
        fake_logits = self._d(self._ada_images(fake.detach(), ctx, "gdd_ada_df"), c, self._augmenter(ctx, "gdd_aug_df"))
        real_logits = self._d(self._ada_images(real, ctx, "gdd_ada_dr"), c, self._augmenter(ctx, "gdd_aug_dr"))
        loss_d = discriminator_loss(real_logits, fake_logits)
        (scale * loss_d).backward()
        ctx.optimizer_step(self.opt_d, self._trainable(disc), clip=nan_to_num)
        logs["loss_d"] = float(loss_d.detach())
        logs["d_real"] = float(torch.cat([l.detach().float().flatten() for l in real_logits]).mean())
        logs["d_fake"] = float(torch.cat([l.detach().float().flatten() for l in fake_logits]).mean())

        if self.ada is not None:  # official: signs of the (augmented) real logits, all ranks
            self.ada.accumulate(real_logits, ctx.all_reduce_mean)

        # Lazy R1: its own forward, backward and optimizer step (StyleGAN2 / official loop); no ADA.
        if r1_due(ctx.step, cfg.r1_gamma, cfg.r1_interval):
            real = real.detach().requires_grad_(True)
            penalty = r1_penalty(real, self._d(real, c, self._augmenter(ctx, "gdd_aug_r1")))
            (lazy_r1_weight(cfg.r1_gamma, cfg.r1_interval) * penalty).backward()
            ctx.optimizer_step(self.opt_d, self._trainable(disc), clip=nan_to_num)
            logs["r1"] = float(penalty.detach())
        if self.ada is not None:  # official: after every ada_interval-th iteration, global batch
            self.ada.end_step(ctx.step, ctx.batch_size)
            logs["ada_p"] = float(self.ada.p)
        return logs

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(freezing_summary(self._gen.denoiser, self.config.freeze))
        info["discriminator"] = {
            "kind": self.config.discriminator.kind,
            "feature_networks": list(self.config.discriminator.feature_networks),
            "trainable_params": sum(p.numel() for p in self.disc.parameters() if p.requires_grad),
            "untrained_features": bool(getattr(self.disc, "untrained_features", False)),
            "augment": self.config.discriminator.augment or "none",
            "ada": self.ada.describe() if self.ada is not None else "none",
            "conditional": bool(getattr(self.disc, "label_dim", 0)),
            "class_embedding": getattr(self.disc, "embedding_source", "none"),
            "logit_sizes": getattr(self.disc, "logit_sizes", None),
        }
        info["adv_batch_scale"] = self.config.adv_batch_scale or "local batch"
        info["student_dropout"] = 0.0
        if self.cd_loss is not None:
            info["cd"] = self.cd_loss.describe()
        return info


@register_method
class D2O(GDD):
    """D2O / D2O-F (paper 001): the same method as GDD / GDD-I under the journal's names."""

    name = "d2o"
    presets = _d2o_presets()
