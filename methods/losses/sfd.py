"""SFD / SFD-v (paper 004; zju-pi/diff-sampler `sfd-main/`): the pure pieces of one iteration.

Contract: /work/shared/notes/score-and-trajectory-methods.md section 5. The student takes N-1
Euler steps on the polynomial (EDM rho) schedule from sigma_max to t_min (no final denoise); the
teacher's trajectory comes from ONE pass of its solver over (M+1)(N-1)+1 levels of the same
schedule, read at every (M+1)-th state; every student segment is matched to it with the
per-element L1 loss summed over pixels and divided by the batch (training/loss.py:57-128,
training_loop.py:269-295). The solvers themselves are the project's (onestep.methods.solvers).
"""
from __future__ import annotations

import random
from typing import Callable, Sequence

import torch
from torch.nn import functional as F

from ..solvers.samplers import afs_direction, dynamic_thresholding, solve
from ..solvers.schedules import edm_sigmas

__all__ = ["sfd_schedule", "sfd_teacher_levels", "afs_direction", "sfd_student_step", "sfd_teacher_trajectory",
           "dynamic_thresholding", "sfd_segment_loss", "sfd_second_stage_loss", "sfd_total", "sfd_v_num_steps",
           "SFD_LOSSES", "SFD_TEACHER_SOLVERS"]

SFD_LOSSES = ("l1", "l2", "pseudo_huber", "lpips")
# diff-sampler's --sampler_tea names -> the project's solvers (ipndm is not in the project).
SFD_TEACHER_SOLVERS = {"dpmpp": "dpm_solver_pp_3m", "dpm": "dpm_solver_2", "heun": "heun", "euler": "euler",
                       "dpm_solver_pp_3m": "dpm_solver_pp_3m", "dpm_solver_2": "dpm_solver_2"}


def sfd_schedule(num_steps: int, sigma_min: float = 0.006, sigma_max: float = 80.0, rho: float = 7.0,
                 device=None) -> torch.Tensor:
    """The polynomial schedule of `num_steps` levels, sigma_max ... sigma_min, no trailing 0
    (solver_utils.py get_schedule 'polynomial'). float64 here; diff-sampler computes it in
    float32 (differences ~1e-7 relative)."""
    if int(num_steps) != num_steps or num_steps < 2:
        raise ValueError(f"sfd_schedule: num_steps (levels) must be an integer >= 2, got {num_steps}")
    return edm_sigmas(int(num_steps), sigma_min, sigma_max, rho, trailing_zero=False, device=device)


def sfd_teacher_levels(num_steps: int, M: int) -> tuple[int, list[int]]:
    """(number of teacher levels, tea_slice): (M+1)(N-1)+1 and [i(M+1) for i in 1..N-1]
    (training/loss.py:95-97). The student's level t_k is the teacher's level k(M+1)."""
    if int(num_steps) != num_steps or num_steps < 2 or int(M) != M or M < 0:
        raise ValueError(f"sfd_teacher_levels: need integer num_steps >= 2 and M >= 0, got {num_steps}, {M}")
    return (M + 1) * (num_steps - 1) + 1, [i * (M + 1) for i in range(1, num_steps)]


def sfd_student_step(x: torch.Tensor, t_cur, t_next, denoised: torch.Tensor | None = None) -> torch.Tensor:
    """One Euler step of the student from t_cur to t_next: x + (t_next - t_cur) d with
    d = (x - denoised) / t_cur, or the analytical first step d = x / sqrt(1 + t_cur^2) when
    `denoised` is None (solvers.py:73-82)."""
    t_cur = torch.as_tensor(t_cur, dtype=x.dtype, device=x.device)
    t_next = torch.as_tensor(t_next, dtype=x.dtype, device=x.device)
    d = afs_direction(x, t_cur) if denoised is None else (x - denoised.to(x.dtype)) / t_cur
    return x + (t_next - t_cur) * d


def sfd_teacher_trajectory(denoiser: Callable, x_T: torch.Tensor, levels: torch.Tensor, tea_slice: Sequence[int],
                           solver: str = "dpm_solver_pp_3m", afs: bool = False, max_order: int = 3,
                           lower_order_final: bool = True, dynamic_threshold: bool = False,
                           class_labels=None) -> torch.Tensor:
    """The teacher states at `tea_slice`, (len(tea_slice), B, C, H, W), from ONE pass of `solver`
    over all `levels` starting at x_T (= sigma_max eps); state 0 = x_T. Under no_grad.

    solver: 'dpm_solver_pp_3m' (default; max_order, lower_order_final and dynamic_threshold
    apply), 'dpm_solver_2', 'heun', 'euler' (diff-sampler names dpmpp/dpm accepted). `afs` is
    the teacher's analytical first step (the second stage's Euler teacher)."""
    name = SFD_TEACHER_SOLVERS.get(solver)
    if name is None:
        from ..core.config import ConfigError, suggest

        raise ConfigError(f"unknown SFD teacher solver {solver!r}{suggest(solver, SFD_TEACHER_SOLVERS)}; "
                          f"choose one of {sorted(SFD_TEACHER_SOLVERS)}")
    options = {"afs": afs, "return_states": list(tea_slice)}
    if name == "dpm_solver_pp_3m":
        options.update(max_order=max_order, lower_order_final=lower_order_final, dynamic_threshold=dynamic_threshold)
    elif dynamic_threshold:
        raise ValueError("sfd_teacher_trajectory: dynamic_threshold applies to the DPM-Solver++ teacher only "
                         "(diff-sampler thresholds its data-prediction history)")
    with torch.no_grad():
        return solve(name, denoiser, x_T, levels, class_labels, **options).x


def sfd_segment_loss(student_out: torch.Tensor, teacher_out: torch.Tensor, loss: str = "l1",
                     distance: Callable | None = None) -> torch.Tensor:
    """The segment loss: 'l1' |s - t| per element (official, training/loss.py:86); 'l2' (s - t)^2
    per element; 'pseudo_huber' / 'lpips' a per-sample distance (B,1,1,1) from `distance`
    (onestep.methods.losses.make_distance). sfd_total(., B) then gives sum / batch for all."""
    diff = student_out - teacher_out.to(student_out.dtype)
    if loss == "l1":
        return diff.abs()
    if loss == "l2":
        return diff.square()
    if loss in ("pseudo_huber", "lpips"):
        if distance is None:
            raise ValueError(f"sfd_segment_loss: loss {loss!r} needs `distance` (make_distance({loss!r}))")
        return distance(student_out, teacher_out).reshape(-1, 1, 1, 1)
    from ..core.config import ConfigError, suggest

    raise ConfigError(f"unknown SFD loss {loss!r}{suggest(loss, SFD_LOSSES)}; choose one of {list(SFD_LOSSES)}")


def sfd_second_stage_loss(student_out: torch.Tensor, teacher_out: torch.Tensor, distance: Callable,
                          last_step: bool) -> torch.Tensor:
    """Second stage (training/loss.py:86-88, :130-135): |s - t| per element, plus at the last
    step the batch mean of distance(up224(s), up224(t)) added to EVERY element (so it enters
    sum / batch with weight C*H*W). Bilinear 224 resize, images in [-1, 1] not mapped to [0, 1]."""
    loss = (student_out - teacher_out.to(student_out.dtype)).abs()
    if last_step:
        up = lambda x: F.interpolate(x.float(), size=224, mode="bilinear")  # noqa: E731
        loss = loss + distance(up(student_out), up(teacher_out)).mean()
    return loss


def sfd_total(loss: torch.Tensor, batch_gpu: int) -> torch.Tensor:
    """loss.sum() / batch (training_loop.py:283)."""
    return loss.sum() / batch_gpu


def sfd_v_num_steps(num_draws: int, seed: int = 42, low: int = 4, high: int = 7) -> list[int]:
    """SFD-v's per-iteration number of student levels N: Python's random.randint(low, high)
    (inclusive) from a generator seeded once with 42 (training_loop.py:122-128, :239-244)."""
    rng = random.Random(seed)
    return [rng.randint(low, high) for _ in range(num_draws)]
