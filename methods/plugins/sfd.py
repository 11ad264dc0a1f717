"""SFD, SFD-v and SFD's one-NFE second stage (paper 004, "Simple and Fast Distillation";
official code zju-pi/diff-sampler `sfd-main/`), and the solver-only baselines of its tables.

Per iteration (training_loop.py:239-301, training/loss.py:57-128; note section 3.2):
  x_T = sigma_max eps, labels uniform one-hot;
  teacher (frozen, eval, no_grad): ONE pass of its solver (DPM-Solver++(3M) default) over
    (M+1)(N-1)+1 polynomial levels, states read at every (M+1)-th level;
  for k = 0 .. N-2: x_{k+1} = Euler step of the student (train mode, so the teacher's dropout
    is active) from its own detached x_k; loss |x_{k+1} - teacher_k| summed / batch; backward;
    optimizer step (nan_to_num grads). Step 0 with AFS needs no network and is not trained.
  lr / 10 once half the run's images are seen; no EMA: the student itself is sampled.
SFD-v: N ~ random.randint(4, 7) per iteration from Random(42), the student told N through its
step condition (zoo.step_conditioned). Second stage: student and teacher = the first-stage
model; Euler teacher with the first stage's AFS over (M+1)(N-1)+1 levels (N = 3, M = 2), and
the extra LPIPS term at the last step.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core.config import ConfigError
from ..losses import make_distance
from ..losses.sfd import (SFD_LOSSES, sfd_schedule, sfd_second_stage_loss, sfd_segment_loss, sfd_student_step,
                          sfd_teacher_levels, sfd_teacher_trajectory, sfd_total, sfd_v_num_steps)
from ..plugin import Batch, DataSpec, GradClip, Method, TrainContext, register_method
from ..solvers.generator import SFDGenerator
from .cd import draw_labels, draw_normal

NAN_TO_NUM = GradClip(nan_to_num=True)  # training_loop.py:284-287: nan_to_num, no clipping


@dataclass
class SFDConfig:
    num_steps: int = 4  # N student levels; NFE = N - 2 with AFS (train.py:101, README)
    M: int = 3  # teacher steps between student levels minus one (the slides' K = M + 1 = 4)
    teacher_solver: str = "dpm_solver_pp_3m"  # dpm_solver_pp_3m | dpm_solver_2 | heun | euler
    max_order: int = 3  # DPM-Solver++ teacher
    lower_order_final: bool = True
    dynamic_threshold: bool = False  # diff-sampler thresholds on CPU/fp32, not in its fp16 GPU runs (note 3.3)
    sigma_min: float = 0.006  # t_min (slides' ablation: 0.006 > 0.002)
    sigma_max: float = 80.0
    rho: float = 7.0
    afs: bool = True
    loss: str = "l1"  # l1 (official) | l2 | pseudo_huber | lpips (the slides' ablation)
    lpips_backbone: str = "auto"
    lr: float = 5e-5  # train.py:66
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    lr_drop_fraction: float = 0.5  # lr / 10 once cur_nimg >= this * total (training_loop.py:298-301)
    # SFD-v (training_loop.py:122-128, :239-244)
    step_condition: bool = False
    num_steps_low: int = 4
    num_steps_high: int = 7
    sfd_v_seed: int = 42
    # Second stage (launch.sh: --is_second_stage --num_steps=3 --M=2 --afs --sampler_tea=euler --lr=5e-4)
    second_stage: bool = False
    first_stage: str | None = None  # our checkpoint of a first-stage SFD / SFD-v generator
    second_stage_distance: str = "lpips"  # the extra last-step term (official: piq LPIPS); l2 / pseudo_huber / none
    sample_steps: int | None = None  # N of the evaluated generator (SFD-v); default num_steps


_DIGITS_LOOP = {"batch_size": 64, "ema_halflife_kimg": 500.0, "ema_rampup_ratio": 0.05, "precision": "auto",
                "log_kimg": 1.6, "checkpoint_kimg": 6.4}
# ~100 iterations at batch 64 on the digits teacher; lr raised for the short run (official 5e-5
# over 200 kimg). NFE = N - 2.
def _smoke(num_steps: int, **method) -> dict:
    return {"method": {"num_steps": num_steps, "lr": 2e-4, **method}, "loop": {**_DIGITS_LOOP, "total_kimg": 6.4}}


def _paper(dataset: str, num_steps: int, total_kimg: float = 200, **method) -> dict:
    # train.py / launch.sh: Adam 5e-5, batch 128 (4 GPUs x 32), 200 kimg (800 for SFD-v); the
    # slides and code give no separate ImageNet hyperparameters (note 3.7): the same command.
    return {"method": {"num_steps": num_steps, **method},
            "loop": {"batch_size": 128, "total_kimg": total_kimg, "ema_halflife_kimg": 500.0, "ema_rampup_ratio": 0.05,
                     "precision": "fp32"}}


_PRESETS: dict[str, dict] = {
    "smoke": _smoke(4),
    "smoke-nfe3": _smoke(5),
    "smoke-nfe4": _smoke(6),
    "smoke-v": {"method": {"step_condition": True, "lr": 2e-4, "sample_steps": 4},
                "loop": {**_DIGITS_LOOP, "total_kimg": 9.6}},
    # needs method.first_stage = a saved first-stage generator (e.g. the `smoke` run's final generator)
    "smoke-second-stage": {"method": {"second_stage": True, "num_steps": 3, "M": 2, "teacher_solver": "euler",
                                      "lr": 5e-4, "second_stage_distance": "l2"},
                           "loop": {**_DIGITS_LOOP, "total_kimg": 6.4}},
}
for _ds in ("cifar10", "imagenet64"):
    for _nfe in (2, 3, 4, 5):
        _PRESETS[f"{_ds}-nfe{_nfe}"] = _paper(_ds, _nfe + 2)
        _PRESETS[f"{_ds}-v-nfe{_nfe}"] = _paper(_ds, 4, 800, step_condition=True, sample_steps=_nfe + 2)
    _PRESETS[f"{_ds}-second-stage"] = _paper(_ds, 3, 2000, second_stage=True, M=2, teacher_solver="euler", lr=5e-4)


@register_method
class SFD(Method):
    name = "sfd"
    Config = SFDConfig
    needs_real_data = False
    presets = _PRESETS

    def __init__(self, config: SFDConfig, teacher: nn.Module | None, data: DataSpec, device: torch.device):
        super().__init__(config, teacher, data, device)
        cfg = config
        if cfg.loss not in SFD_LOSSES:
            raise ConfigError(f"sfd: loss {cfg.loss!r} must be one of {list(SFD_LOSSES)}")
        self.record = {"sigma_min": cfg.sigma_min, "rho": cfg.rho, "afs": cfg.afs, "step_condition": cfg.step_condition}
        if cfg.second_stage:
            if not cfg.first_stage:
                raise ConfigError("sfd: second_stage needs method.first_stage = the path of a first-stage SFD/SFD-v "
                                  "generator checkpoint (e.g. <run>/final/generator.json)")
            from ..solvers.generator import load_generator

            first = load_generator(cfg.first_stage, device=device)
            if not isinstance(first, SFDGenerator):
                raise ConfigError(f"sfd: first_stage {cfg.first_stage} is a {type(first).__name__}, not an SFD generator")
            # The second stage takes the teacher's recorded training settings (loss.py:98-102).
            self.record = {"sigma_min": first.sigma_min, "rho": first.rho, "afs": first.afs,
                           "step_condition": first.step_condition}
            teacher = first.denoiser
        if teacher is None:
            raise ConfigError("sfd needs a teacher (an EDM denoiser)")
        self.teacher = teacher.to(device).eval().requires_grad_(False)
        if cfg.step_condition and not cfg.second_stage:
            from ..zoo import step_conditioned_from

            self.student = step_conditioned_from(self.teacher).to(device)
        else:
            self.student = copy.deepcopy(self.teacher)
        self.student.requires_grad_(True).train()
        self.opt = torch.optim.Adam(self.student.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)
        self.distance = make_distance(cfg.loss, lpips_backbone=cfg.lpips_backbone) if cfg.loss in ("pseudo_huber", "lpips") else None
        self.stage2_distance = None
        if cfg.second_stage and cfg.second_stage_distance != "none":
            self.stage2_distance = make_distance(cfg.second_stage_distance, lpips_backbone=cfg.lpips_backbone)
        for d in (self.distance, self.stage2_distance):
            if isinstance(d, nn.Module):
                d.to(device)
        self._draws: list[int] = []

    @classmethod
    def upstream_stand_ins(cls, config: SFDConfig, teacher, data, folder):
        """A second stage's missing first stage: this config's first stage (second_stage off)
        built from the teacher, untrained, saved as a generator."""
        import dataclasses
        import os

        if not config.second_stage or (config.first_stage and os.path.exists(config.first_stage)):
            return {}
        from ..solvers.generator import save_generator

        first = cls(dataclasses.replace(config, second_stage=False, first_stage=None), teacher, data, torch.device("cpu"))
        path = save_generator(Path(folder) / "sfd-first-stage", first.build_generator({}))
        return {"first_stage": (str(path), "first-stage SFD generator: the teacher's weights, untrained (a dry run "
                                          "does not train the first stage)")}

    # -- interface -----------------------------------------------------------------------
    @property
    def generator(self) -> nn.Module:
        return self.build_generator({})

    def modules(self) -> dict[str, nn.Module]:
        return {"student": self.student}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"student": self.opt}

    def ema_modules(self) -> dict[str, nn.Module]:
        return {}  # no EMA: the trained network itself is saved (training_loop.py:332)

    def build_generator(self, ema_modules: dict[str, nn.Module]) -> nn.Module:
        cfg, rec = self.config, self.record
        steps = cfg.sample_steps or cfg.num_steps
        return SFDGenerator(self.student, steps, rec["sigma_min"], cfg.sigma_max, rec["rho"],
                            afs=cfg.afs, step_condition=rec["step_condition"])

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["sfd"] = {"teacher_solver": "euler" if self.config.second_stage else self.config.teacher_solver,
                       "loss": self.config.loss, **self.record,
                       "lpips_untrained_backbone": bool(getattr(self.distance, "untrained", False)
                                                        or getattr(self.stage2_distance, "untrained", False))}
        return info

    # -- one iteration -------------------------------------------------------------------
    def num_steps_at(self, step: int) -> int:
        """N for this iteration: fixed, or SFD-v's draw number `step` from Random(seed)."""
        cfg = self.config
        if not cfg.step_condition or cfg.second_stage:
            return cfg.num_steps
        if len(self._draws) <= step:
            self._draws = sfd_v_num_steps(max(step + 1, 2 * len(self._draws)), cfg.sfd_v_seed, cfg.num_steps_low,
                                          cfg.num_steps_high)
        return self._draws[step]

    def _lr(self, ctx: TrainContext) -> float:
        total = getattr(ctx, "total_nimg", None)
        if total is None:
            raise RuntimeError("sfd: the training context lacks total_nimg (the loop sets it); SFD drops the lr at "
                               "half the run")
        return self.config.lr / 10 if ctx.cur_nimg >= self.config.lr_drop_fraction * total else self.config.lr

    def step(self, batch: Batch, ctx: TrainContext) -> dict[str, float]:
        cfg, rec = self.config, self.record
        lr = self._lr(ctx)
        for group in self.opt.param_groups:
            group["lr"] = lr
        n = self.num_steps_at(ctx.step)
        M = (2 if n == 3 else cfg.M) if cfg.step_condition and not cfg.second_stage else cfg.M
        b = ctx.local_batch_size
        res, ch = self.data.resolution, self.data.channels
        eps = draw_normal(ctx, b, ch, res, res, stream="latents").to(self.device)
        labels = draw_labels(ctx, b, int(getattr(self.teacher, "label_dim", 0) or 0), stream="labels")
        labels = None if labels is None else labels.to(self.device)
        t_steps = sfd_schedule(n, rec["sigma_min"], cfg.sigma_max, rec["rho"], device=self.device).float()
        n_tea, tea_slice = sfd_teacher_levels(n, M)
        tea_levels = sfd_schedule(n_tea, rec["sigma_min"], cfg.sigma_max, rec["rho"], device=self.device).float()
        x = eps * t_steps[0]
        if cfg.second_stage:
            teacher_net = self.teacher
            if rec["step_condition"]:
                teacher_net = lambda x_, s_, y_: self.teacher(x_, s_, y_, step_condition=n_tea)  # noqa: E731
            solver, tea_afs = "euler", rec["afs"]
        else:
            teacher_net, solver, tea_afs = self.teacher, cfg.teacher_solver, False
        with ctx.autocast():
            traj = sfd_teacher_trajectory(teacher_net, x, tea_levels, tea_slice, solver, afs=tea_afs,
                                          max_order=cfg.max_order, lower_order_final=cfg.lower_order_final,
                                          dynamic_threshold=cfg.dynamic_threshold and solver == "dpm_solver_pp_3m",
                                          class_labels=labels).float()
        student_kwargs = {"step_condition": n} if rec["step_condition"] else {}
        losses = []
        for k in range(n - 1):
            untrained = cfg.afs and k == 0
            if untrained:
                x_next = sfd_student_step(x, t_steps[k], t_steps[k + 1])
            else:
                with ctx.autocast():
                    den = self.student(x, t_steps[k], labels, **student_kwargs)
                x_next = sfd_student_step(x, t_steps[k], t_steps[k + 1], den.float())
                if cfg.second_stage:
                    per_elem = sfd_second_stage_loss(x_next, traj[k], self.stage2_distance, k == n - 2) \
                        if self.stage2_distance is not None else sfd_segment_loss(x_next, traj[k])
                else:
                    per_elem = sfd_segment_loss(x_next, traj[k], cfg.loss, self.distance)
                loss = sfd_total(per_elem, b)
                loss.backward()
                ctx.optimizer_step(self.opt, self.student, clip=NAN_TO_NUM)
                losses.append(float(loss.detach()))
            x = x_next.detach()
        pixels = ch * res * res
        return {"loss": sum(losses) / max(len(losses), 1) / pixels, "num_steps": float(n), "lr": lr}


# --- the solver-only rows of paper 004's tables --------------------------------------------
@dataclass
class TeacherSolverConfig:
    solver: str = "dpm_solver_pp_3m"  # euler (DDIM) | heun | dpm_solver_2 | dpm_solver_pp_3m
    steps: int = 5  # solver steps: num_steps = steps + 1 levels (diff-sampler)
    sigma_min: float = 0.002  # diff-sampler's default for the baselines (EDM)
    sigma_max: float = 80.0
    rho: float = 7.0
    afs: bool = False
    options: dict = field(default_factory=dict)  # extra solver options (max_order, lower_order_final, r, ...)


_ONE_STEP = {"batch_size": 1, "total_kimg": 0.001, "ema_halflife_kimg": 500.0, "ema_rampup_ratio": 0.05,
             "precision": "fp32"}


@register_method
class TeacherSolver(Method):
    """The teacher under one of its solvers, in diff-sampler's convention (polynomial schedule
    of steps + 1 levels ending at sigma_min without a final denoise): nothing is trained (one
    no-op update, so the run goes through the one training loop, store and evaluation)."""

    name = "teacher_solver"
    Config = TeacherSolverConfig
    needs_real_data = False
    presets = {"smoke": {"method": {"solver": "dpm_solver_pp_3m", "steps": 2}, "loop": dict(_ONE_STEP)},
               **{f"{s}-{n}": {"method": {"solver": s, "steps": n}, "loop": dict(_ONE_STEP)}
                  for s in ("euler", "heun", "dpm_solver_2", "dpm_solver_pp_3m") for n in (5, 10)},
               "euler-50": {"method": {"solver": "euler", "steps": 50}, "loop": dict(_ONE_STEP)}}

    def __init__(self, config: TeacherSolverConfig, teacher: nn.Module | None, data: DataSpec, device: torch.device):
        super().__init__(config, teacher, data, device)
        if teacher is None:
            raise ConfigError("teacher_solver needs a teacher (an EDM denoiser)")
        self.teacher = teacher.to(device).eval().requires_grad_(False)
        self.build_generator({})  # validates solver, steps and options now

    @property
    def generator(self) -> nn.Module:
        return self.build_generator({})

    def build_generator(self, ema_modules: dict[str, nn.Module]) -> nn.Module:
        c = self.config
        return SFDGenerator(self.teacher, c.steps + 1, c.sigma_min, c.sigma_max, c.rho, afs=c.afs, solver=c.solver,
                            **c.options)

    def modules(self) -> dict[str, nn.Module]:
        return {}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {}

    def ema_modules(self) -> dict[str, nn.Module]:
        return {}

    def step(self, batch: Batch, ctx: TrainContext) -> dict[str, float]:
        return {}
