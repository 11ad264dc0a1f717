"""SiD, SiDA and SiD2A (paper 002; official code mingyuanzhou/SiD branch `sida` @ a5510fdf).

Three networks of the teacher's architecture: the frozen teacher f_phi, the fake score f_psi
(FakeScore, a trainable copy of the teacher) and the one-step generator G(z) = D_G(2.5 z; 2.5)
(OneStepGenerator). One `step` = one official iteration (`sida_training_loop.py:340-427`):

1. fake score (+ discriminator) update on stop-grad G samples and the step's real batch, G in
   eval mode, f_psi in train mode; clipping nan_to_num (+ value 1.0 with the GAN, `:376-383`);
2. generator update on a fresh z and a fresh data batch (its labels; `Batch.more[0]`), G in
   train mode, f_psi eval and frozen; nan_to_num only (`:422-426`).

The local batch is processed in micro-batches of `batch_gpu` samples, each forward+backward
accumulating into the gradients (the official accumulation rounds): the adversarial
"fakeness" is normalized over one micro-batch (32 samples for CIFAR-10 / ImageNet), whatever
the number of ranks. SiDA's phases are a pure function of ctx.cur_nimg (`sida_phase`), so a
resume needs no extra state. The math is in onestep.methods.losses.sid (the contract).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..fake_score import FakeScore, frozen_teacher
from ..losses import (edm_lognormal_sigma, edm_loss_weight, sid_fake_score_loss, sid_generator_loss,
                      sid_generator_sigma, sid_weight_factor, sida_discriminator_loss, sida_fake_score_total,
                      sida_generator_adv_loss, sida_generator_total, sida_phase)
from ..plugin import Batch, DataSpec, GradClip, Method, TrainContext, register_method
from ..solvers.generator import OneStepGenerator
from ..zoo import network_config, set_dropout


@dataclass
class SiDConfig:
    dataset: str = "digits-8x8"  # what the preset was made for (recorded with the run)
    teacher: str = "digits-8x8-cond"  # zoo preset / checkpoint of the EDM teacher (recorded; the loop loads it)
    alpha: float = 1.2  # SiD bias-correction weight (sida_train.py:137 default; SiDA scripts: 1.0)
    sigma_init: float = 2.5  # generator noise level (init_sigma)
    t_max: float = 800  # generator-step noise levels t in [0, t_max/1000]
    p_mean: float = -1.2  # fake-score-step log-normal sigma (EDMLoss defaults)
    p_std: float = 1.2
    lr_fake: float = 1e-5  # --lr
    lr_g: float = 1e-5  # --glr
    betas: tuple[float, float] = (0.0, 0.999)  # both optimizers (sida_train.py:208-209)
    eps: float = 1e-8  # Adam eps: 1e-8 in fp32, 1e-6 with fp16
    batch_gpu: int = 32  # micro-batch = adversarial normalization group (official --batch-gpu)
    ls: float = 1.0  # fake score loss scaling
    lsd: float = 1.0  # discriminator loss scaling
    lsg: float = 100.0  # SiD generator loss scaling
    lsg_gan: float = 0.01  # adversarial generator loss scaling
    fake_only_nimg: int = 100_000  # SiDA phase 1: fake score only while cur_nimg <= this
    sid_only_nimg: int = 200_000  # SiDA phase 2: SiD loss only while cur_nimg <= this
    dropout: float | None = None  # G's and f_psi's dropout; None keeps the teacher's
    sid_checkpoint: str | None = None  # SiD2A: the pre-distilled SiD generator (load_network)


@dataclass
class SiDAConfig(SiDConfig):
    alpha: float = 1.0  # SiDA: paper section 5.1 ablation and run_sida.sh


SUPPORTED = "DDPM++ (SongUNet with positional embedding) and ADM (DhariwalUNet) under EDMPrecond"


def check_teacher(teacher: nn.Module) -> dict:
    """The official code runs EDMPrecond_EncoderDecoder around DDPM++ or ADM only (note 1.1)."""
    cfg = network_config(teacher)
    if cfg["class"] != "EDMPrecond":
        raise ValueError(f"SiD/SiDA need an EDMPrecond teacher, got {cfg['class']}; the official code supports "
                         f"{SUPPORTED} (sida_train.py: precond 'edm' only)")
    if cfg["model_class"] == "SongUNet" and cfg["model_kwargs"].get("embedding_type") == "fourier":
        raise ValueError("SiD/SiDA do not support NCSN++ teachers (the official sida_train.py has no NCSN++ "
                         f"encoder-decoder network); use a DDPM++ ('-vp') or ADM teacher: {SUPPORTED}")
    if cfg["model_class"] not in ("SongUNet", "DhariwalUNet"):
        raise ValueError(f"SiD/SiDA: unsupported network {cfg['model_class']}; supported: {SUPPORTED}")
    return cfg


def _same_architecture(a: dict, b: dict) -> bool:
    strip = lambda c: {**c, "model_kwargs": {k: v for k, v in c["model_kwargs"].items() if k != "dropout"}}  # noqa: E731
    return strip(a) == strip(b)


def _keep_mask(*tensors: torch.Tensor) -> torch.Tensor:
    """Samples without NaN in any of the tensors (sida_loss.py:48-51, :99-101)."""
    bad = torch.zeros(tensors[0].shape[0], dtype=torch.bool, device=tensors[0].device)
    for t in tensors:
        bad |= torch.isnan(t).flatten(start_dim=1).any(dim=1)
    return ~bad


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, start + size)


@register_method
class SiD(Method):
    """Score identity distillation (SiD: use_gan False) and SiDA (use_gan True)."""

    name = "sid"
    Config = SiDConfig
    presets: dict[str, dict[str, Any]] = {}  # filled below
    use_gan: bool = False  # SiDA: adversarial terms, phases, value clipping of the fake score's gradients
    data_batches_per_step = 2  # fake-score update and generator update each take a fresh batch (loop :348, :391)

    def __init__(self, config: SiDConfig, teacher: nn.Module | None, data: DataSpec, device: torch.device):
        super().__init__(config, teacher, data, device)
        if teacher is None:
            raise ValueError(f"{self.name} needs a teacher (an EDMPrecond network, e.g. zoo preset '{config.teacher}')")
        teacher_cfg = check_teacher(teacher)
        self.teacher = frozen_teacher(teacher.to(device))
        self.fake = FakeScore(self.teacher, dropout=config.dropout).to(device)
        self.fake.requires_grad_(True)
        self._gen = OneStepGenerator(self._initial_generator(teacher_cfg), sigma=config.sigma_init)
        opt = dict(betas=tuple(config.betas), eps=config.eps)
        self.opt_fake = torch.optim.Adam(self.fake.parameters(), lr=config.lr_fake, **opt)
        self.opt_g = torch.optim.Adam(self._gen.parameters(), lr=config.lr_g, **opt)
        self.clip_fake = GradClip(nan_to_num=True, value=1.0 if self.use_gan else None)  # loop :376-381
        self.clip_g = GradClip(nan_to_num=True)  # loop :422-424

    def _initial_generator(self, teacher_cfg: dict) -> nn.Module:
        """G starts as the teacher (SiD, SiDA)."""
        den = copy.deepcopy(self.teacher)
        if self.config.sid_checkpoint is not None:
            raise ValueError(f"method '{self.name}' starts the generator from the teacher; sid_checkpoint is for "
                             "method 'sid2a'")
        return self._trainable(den)

    def _trainable(self, den: nn.Module) -> nn.Module:
        if self.config.dropout is not None:
            set_dropout(den, self.config.dropout)
        return den.to(self.device).eval().requires_grad_(True)

    # --- interface ------------------------------------------------------------------------
    @property
    def generator(self) -> nn.Module:
        return self._gen

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self._gen, "fake_score": self.fake}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "fake_score": self.opt_fake}

    def phase(self, cur_nimg: int) -> tuple[bool, bool]:
        """(update_generator, use_adversarial): SiD has no phases; SiDA's follow sida_phase."""
        if not self.use_gan:
            return True, False
        return sida_phase(cur_nimg, self.config.fake_only_nimg, self.config.sid_only_nimg)

    def _group(self, ctx: TrainContext) -> int:
        b, g = ctx.local_batch_size, min(self.config.batch_gpu, ctx.local_batch_size)  # loop :171-172
        if b % g:
            raise ValueError(f"{self.name}: the local batch {b} is not a multiple of batch_gpu {g}; choose a batch "
                             "size that is batch_gpu x ranks x accumulation rounds")
        return g

    def step(self, batch: Batch, ctx: TrainContext) -> dict[str, float]:
        if batch.images is None:
            raise ValueError(f"{self.name}: the loop passed no real data batch")
        update_g, use_adv = self.phase(ctx.cur_nimg)
        logs = self._fake_score_step(batch, ctx)
        logs["phase"] = float(1 + update_g + use_adv) if self.use_gan else 0.0
        if update_g:  # phase 1: the official code computes G's loss but drops its gradients; skipped here
            if not batch.more:
                raise ValueError(f"{self.name} needs a fresh data batch for the generator update "
                                 "(data_batches_per_step = 2); the loop passed one")
            logs.update(self._generator_step(batch.more[0], ctx, use_adv))
        return logs

    # --- 1. fake score (+ discriminator) ----------------------------------------------------
    def _fake_score_step(self, batch: Batch, ctx: TrainContext) -> dict[str, float]:
        cfg, b, g = self.config, ctx.local_batch_size, self._group(ctx)
        shape = (self.data.channels, self.data.resolution, self.data.resolution)
        z = ctx.randn(b, *shape, stream="sid_fake_z")
        normal = ctx.randn(b, 1, 1, 1, stream="sid_fake_sigma")
        eps = ctx.randn(b, *shape, stream="sid_fake_n")
        real = batch.images.to(self.device, torch.float32)
        labels = batch.labels
        sums = {"loss_fake": 0.0, "loss_d": 0.0}
        self._gen.eval()
        with self.fake.updating():
            for s in _chunks(b, g):
                c = None if labels is None else labels[s]
                with torch.no_grad(), ctx.autocast():
                    y = self._gen(z[s], c).float()  # stop-grad G samples, G in eval mode (loop :352-354)
                sigma = edm_lognormal_sigma(normal[s], cfg.p_mean, cfg.p_std)
                n = eps[s] * sigma
                with ctx.autocast():
                    if self.use_gan:
                        y_fake, logit_fake = self.fake.denoise_with_map(y + n, sigma, c)
                        logit_real = self.fake.encoder_map(real[s] + n, sigma, c)  # same sigma and n (loss :96)
                    else:
                        y_fake = self.fake(y + n, sigma, c)
                y_fake = y_fake.float()
                if self.use_gan:
                    keep = _keep_mask(y, y_fake, logit_fake, logit_real)
                    y, y_fake, sigma = y[keep], y_fake[keep], sigma[keep]
                    logit_fake, logit_real = logit_fake[keep].float(), logit_real[keep].float()
                    d = sida_discriminator_loss(logit_real, logit_fake, edm_loss_weight(sigma))
                else:
                    keep = _keep_mask(y, y_fake)
                    y, y_fake, sigma, d = y[keep], y_fake[keep], sigma[keep], None
                fs = sid_fake_score_loss(y_fake, y, sigma)
                total = sida_fake_score_total(fs, d, b, cfg.ls, cfg.lsd)
                total.backward()
                sums["loss_fake"] += float(fs.detach().sum()) * cfg.ls / b
                if d is not None:
                    sums["loss_d"] += float(d.detach().sum()) * cfg.lsd / b
        ctx.optimizer_step(self.opt_fake, self.fake.parameters(), clip=self.clip_fake)
        if not self.use_gan:
            sums.pop("loss_d")
        return sums

    # --- 2. generator -----------------------------------------------------------------------
    def _generator_step(self, batch: Batch, ctx: TrainContext, use_adv: bool) -> dict[str, float]:
        cfg, b, g = self.config, ctx.local_batch_size, self._group(ctx)
        shape = (self.data.channels, self.data.resolution, self.data.resolution)
        z = ctx.randn(b, *shape, stream="sid_gen_z")
        u = ctx.rand(b, 1, 1, 1, stream="sid_gen_t")
        eps = ctx.randn(b, *shape, stream="sid_gen_n")
        labels = batch.labels  # the fresh batch's labels: the dataset's label distribution (loop :391-396)
        sums = {"loss_g": 0.0, "loss_g_adv": 0.0}
        self._gen.train()
        with self.fake.as_critic():
            for s in _chunks(b, g):
                c = None if labels is None else labels[s]
                with ctx.autocast():
                    y = self._gen(z[s], c).float()
                sigma = sid_generator_sigma(u[s], cfg.t_max)
                n = eps[s] * sigma
                with ctx.autocast():
                    y_real = self.teacher(y + n, sigma, c).float()
                    if self.use_gan:
                        y_fake, logits = self.fake.denoise_with_map(y + n, sigma, c)
                    else:
                        y_fake, logits = self.fake(y + n, sigma, c), None
                y_fake = y_fake.float()
                keep = _keep_mask(y, y_real, y_fake)
                w_all = sid_weight_factor(y, y_real)
                loss = sid_generator_loss(y[keep], y_real[keep], y_fake[keep], cfg.alpha, w_all[keep])
                adv = None
                if self.use_gan:
                    # the BCE mean runs over the unfiltered micro-batch's logits (loss :72), divided by the
                    # kept samples' weight factors
                    adv = sida_generator_adv_loss(logits.float(), w_all)[keep]
                total = sida_generator_total(loss, adv, b, use_adv, cfg.lsg, cfg.lsg_gan)
                total.backward()
                sums["loss_g"] += float(loss.detach().sum()) * cfg.lsg / b
                if adv is not None:
                    sums["loss_g_adv"] += float(adv.detach().sum()) * cfg.lsg_gan * loss[0].numel() / b
        self._gen.eval()
        ctx.optimizer_step(self.opt_g, self._gen.parameters(), clip=self.clip_g)
        if not self.use_gan:
            sums.pop("loss_g_adv")
        return sums

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(use_gan=self.use_gan, alpha=self.config.alpha, batch_gpu=self.config.batch_gpu,
                    fake_score_params=sum(p.numel() for p in self.fake.parameters()))
        return info


@register_method
class SiDA(SiD):
    """SiDA: SiD + the adversarial terms of the fake score's encoder map, in three phases."""

    name = "sida"
    Config = SiDAConfig
    use_gan = True


@register_method
class SiD2A(SiDA):
    """SiD2A: SiDA whose generator starts from a pre-distilled SiD generator (`sid_checkpoint`);
    the fake score starts afresh from the teacher and the phases restart at 0 (loop :253-260)."""

    name = "sid2a"

    @classmethod
    def upstream_stand_ins(cls, config, teacher, data, folder):
        """A missing SiD generator: the teacher's network itself, saved in our checkpoint format."""
        import os

        if config.sid_checkpoint and os.path.exists(config.sid_checkpoint):
            return {}
        from ..checkpoints import save_network

        path = save_network(Path(folder) / "sid-generator", teacher)
        return {"sid_checkpoint": (str(path), "SiD generator: the teacher's weights (a dry run does not distil SiD first)")}

    def _initial_generator(self, teacher_cfg: dict) -> nn.Module:
        from ..checkpoints import load_network

        path = self.config.sid_checkpoint
        if not path:
            raise ValueError("sid2a needs method.sid_checkpoint: the SiD generator to start from (a run's "
                             "final/generator, or an EDM-format .pkl); train one with method 'sid' first")
        den = load_network(path, self.device)
        if not _same_architecture(network_config(den), teacher_cfg):
            raise ValueError(f"sid2a: the SiD generator in '{path}' does not have the teacher's architecture "
                             f"({network_config(den)} vs {teacher_cfg}); distil it from the same teacher")
        return self._trainable(den)


# --- presets --------------------------------------------------------------------------------
# Paper 002 Table 8 + run_sida.sh / run_sid_sida.sh (note section 1.8). SiD: same loop with
# use_gan False and alpha 1.2 (run_sid.sh); its durations are the SiDA ones (the paper gives SiD's
# numbers from the SiD paper; these presets are for re-running SiD as SiD2A's starting point).
ROWS = [  # name, dataset, teacher, batch, batch_gpu, lr, eps, fp16, EMA Mimg, dropout, SiDA Mimg
    ("cifar10-uncond", "cifar10-32x32", "edm-cifar10-32x32-uncond-vp", 256, 32, 1e-5, 1e-8, False, 0.5, 0.13, 300),
    ("cifar10-cond", "cifar10-32x32", "edm-cifar10-32x32-cond-vp", 256, 32, 1e-5, 1e-8, False, 0.5, 0.13, 300),
    ("imagenet64", "imagenet-64x64", "edm-imagenet-64x64-cond-adm", 8192, 32, 4e-6, 1e-6, True, 2.0, 0.10, 300),
    ("ffhq64", "ffhq-64x64", "edm-ffhq-64x64-uncond-vp", 512, 64, 1e-5, 1e-6, True, 0.5, 0.05, 200),
    ("afhqv2-64", "afhqv2-64x64", "edm-afhqv2-64x64-uncond-vp", 512, 64, 5e-6, 1e-6, True, 0.5, 0.05, 200),
]
SID2A_MIMG = 100


def _paper(use_gan: bool, alpha: float, mimg_key: str) -> dict[str, dict]:
    out = {}
    for name, ds, teacher, batch, bgpu, lr, eps, fp16, ema, dropout, mimg in ROWS:
        kimg = (SID2A_MIMG if mimg_key == "sid2a" else mimg) * 1000
        out[name] = {
            "method": {"dataset": ds, "teacher": teacher, "alpha": alpha, "lr_fake": lr, "lr_g": lr,
                       "betas": [0.0, 0.999], "eps": eps, "batch_gpu": bgpu, "dropout": dropout},
            # fp16 in the official runs -> the loop's bf16 autocast (docs/ARCHITECTURE.md deviations)
            "loop": {"total_kimg": kimg, "batch_size": batch, "ema_halflife_kimg": ema * 1000, "ema_rampup_ratio": 0.05,
                     "precision": "bf16" if fp16 else "fp32", "grad_clip": None, "checkpoint_kimg": 500},
        }
    return out


def _with(presets: dict, **method) -> dict:
    out = copy.deepcopy(presets)
    for p in out.values():
        p["method"].update(method)
    return out


# Embedded default: digits 8x8 teacher, CPU, about a minute. Learning rates raised from 1e-5 and
# SiDA's phase boundaries SHORTENED (smoke only: 1.6k / 3.2k images instead of 100k / 200k) so that
# all three phases run within the 6.4k-image budget.
SMOKE = {
    "method": {"teacher": "digits-8x8-cond", "lr_fake": 1e-4, "lr_g": 1e-4, "batch_gpu": 32},
    "loop": {"total_kimg": 6.4, "batch_size": 64, "ema_halflife_kimg": 0.5, "ema_rampup_ratio": 0.05,
             "precision": "auto", "log_kimg": 1.6, "checkpoint_kimg": 6.4},
}


def _smoke(use_gan: bool, alpha: float) -> dict:
    p = copy.deepcopy(SMOKE)
    p["method"].update(alpha=alpha)
    if use_gan:
        p["method"].update(fake_only_nimg=1_600, sid_only_nimg=3_200)
    return p


SiD.presets = {"smoke": _smoke(False, 1.2), **_paper(False, 1.2, "sida"),
               **{f"{k}-alpha1": v for k, v in _paper(False, 1.0, "sida").items()}}
SiDA.presets = {"smoke": _smoke(True, 1.0), **_paper(True, 1.0, "sida")}
# SiD2A: alpha 1 (scripts) and 1.2 (paper: "both 1 and 1.2"); method.sid_checkpoint must be set.
SiD2A.presets = {**_paper(True, 1.0, "sid2a"), **{f"{k}-alpha1.2": v for k, v in _paper(True, 1.2, "sid2a").items()}}
