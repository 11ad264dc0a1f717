"""Teachers: the embedded digits teachers (trained once by the suite, cached) or any checkpoint.

    teacher = load_teacher("digits")                     # trains ~2 min the first time, then cached
    teacher = load_teacher("edm-cifar10-32x32-cond-vp")  # published checkpoint via load_network
    teacher = load_teacher("/path/net.pkl")              # EDM pickle or our checkpoint

A digits teacher is trained by the one training loop with the `edm` method preset of the same
name and cached under $ONESTEP_CACHE/teachers/<name>-<key>/, where the key is the hash of
everything that determines its weights (method config, loop config, data content). A file lock
makes concurrent processes (parallel tests, array tasks) train it once; an interrupted training
resumes from its checkpoint.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from onestep.methods.core.config import ConfigError, build_config, config_hash, suggest, to_dict
from onestep.methods.core.paths import cache_dir

TEACHER_FORMAT = 2  # bump when the cached layout or how weights come out changes (2: seeded init)


@dataclass(frozen=True)
class DigitsTeacherSpec:
    """Which `edm` preset on which digits data (digits-default.md: all 1,797 images)."""

    preset: str
    resolution: int = 8
    channels: int = 1
    split: str = "all"
    conditional: bool = True


DIGITS_TEACHERS: dict[str, DigitsTeacherSpec] = {
    "digits": DigitsTeacherSpec("digits"),
    "digits-uncond": DigitsTeacherSpec("digits-uncond", conditional=False),
    "digits-16x16": DigitsTeacherSpec("digits-16x16", resolution=16),
    "digits-test": DigitsTeacherSpec("digits-test"),  # the test suite's fast teacher (~300 steps)
    "smoke": DigitsTeacherSpec("smoke"),  # seconds; only for exercising code paths
}


@dataclass
class DigitsTeacherPlan:
    name: str
    spec: DigitsTeacherSpec
    key: str
    directory: Path
    overrides: dict


def _dataset(spec: DigitsTeacherSpec):
    from .datasets import load_digits

    return load_digits(spec.resolution, spec.channels, spec.split, spec.conditional)


def plan_digits_teacher(name: str, overrides: dict | None = None) -> DigitsTeacherPlan:
    """Where teacher `name` (with dotted `overrides`, e.g. {"loop.total_kimg": 50}) is cached."""
    from onestep.methods.plugin import get_method

    from .training import LoopConfig, resolve_config

    if name not in DIGITS_TEACHERS:
        raise ConfigError(f"unknown digits teacher '{name}'{suggest(name, DIGITS_TEACHERS)}; "
                          f"available: {', '.join(DIGITS_TEACHERS)}")
    spec = DIGITS_TEACHERS[name]
    overrides = dict(overrides or {})
    resolved = resolve_config("edm", spec.preset, overrides)
    method_cfg = build_config(get_method("edm").Config, resolved.method, where="edm.method")
    loop_cfg = build_config(LoopConfig, resolved.loop, where="loop")
    key = config_hash({"format": TEACHER_FORMAT, "method": to_dict(method_cfg), "loop": to_dict(loop_cfg),
                       "data": {**to_dict(spec), "content": _dataset(spec).content_hash()}})
    return DigitsTeacherPlan(name, spec, key, cache_dir("teachers", f"{name}-{key}"), overrides)


@contextlib.contextmanager
def _file_lock(path: Path):
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def teacher_checkpoint(plan: DigitsTeacherPlan) -> Path:
    return plan.directory / "teacher"  # teacher.safetensors + teacher.json (save_network format)


def train_digits_teacher(name: str = "digits", overrides: dict | None = None, device: torch.device | str = "cpu",
                         log: Callable[[str], None] | None = None) -> tuple[Path, dict]:
    """Train (or find) digits teacher `name`; returns (checkpoint path, info dict)."""
    from onestep.methods.checkpoints import read_network_info, save_network

    from .training import data_spec_of, instantiate_method, train

    plan = plan_digits_teacher(name, overrides)
    ckpt = teacher_checkpoint(plan)
    json_path = ckpt.with_name(ckpt.name + ".json")
    with _file_lock(plan.directory / ".lock"):
        if json_path.is_file():
            return ckpt, {**read_network_info(ckpt)["metadata"], "cached": True, "path": str(json_path)}
        dataset = _dataset(plan.spec)
        method, loop = instantiate_method("edm", plan.spec.preset, plan.overrides, data_spec=data_spec_of(dataset),
                                          device=device)
        result = train(method, dataset, loop, plan.directory / "run", device=device, log=log)
        info = {"teacher": name, "key": plan.key, "preset": plan.spec.preset, "overrides": plan.overrides,
                "kimg": result.cur_nimg / 1000, "steps": result.step, "train_seconds": result.train_seconds,
                "dataset": dataset.name, "data_hash": dataset.content_hash()}
        save_network(ckpt, result.ema["generator"], info)  # the EMA denoiser; atomic
    return ckpt, {**info, "cached": False, "path": str(json_path)}


def load_teacher(spec: str | os.PathLike, device: torch.device | str = "cpu",
                 log: Callable[[str], None] | None = None) -> nn.Module:
    """A frozen teacher denoiser (eval mode, requires_grad False) on `device`.

    `spec` is a digits teacher name (trained once and cached), or anything
    onestep.methods.checkpoints.load_network accepts (EDM .pkl, our checkpoint, preset name).
    """
    from onestep.methods.checkpoints import load_network

    if isinstance(spec, str) and spec in DIGITS_TEACHERS:
        ckpt, _ = train_digits_teacher(spec, device=device, log=log)
        return load_network(ckpt, device)
    return load_network(spec, device)


# Names the suites/runner accept as digits teachers.
TEACHERS = DIGITS_TEACHERS


def sample_grid(denoiser: nn.Module, path: str | os.PathLike, per_class: int = 10, steps: int = 18,
                device: torch.device | str = "cpu") -> Path:
    """A PNG of Heun samples: row c holds class c (conditional; seeds c*per_class..), else a
    square grid of seeds 0..per_class^2-1. One solver call for the whole grid (small batches
    are slow on a CPU); latents and labels per seed as in onestep.benchmarks.sampling."""
    from onestep.methods.solvers import SolverGenerator

    from .generate import save_image_grid
    from .sampling import quantize, seeded_inputs

    G = SolverGenerator(denoiser, "heun", steps).to(device)
    shape = (G.img_channels, G.img_resolution, G.img_resolution)
    label_dim = G.label_dim
    zs, labels = [], []
    for c in range(label_dim or 1):
        seeds = range(c * per_class, (c + 1) * per_class) if label_dim else range(per_class * per_class)
        z, lab, _ = seeded_inputs(list(seeds), shape, label_dim, device, c if label_dim else None)
        zs.append(z)
        labels.append(lab)
    with torch.no_grad():
        x = G(torch.cat(zs), torch.cat(labels) if label_dim else None)
    images = quantize(x).cpu()
    # Nearest-neighbour upscaling so an 8x8 grid is legible in a viewer.
    scale = max(1, 64 // images.shape[-1])
    images = images.repeat_interleave(scale, -1).repeat_interleave(scale, -2)
    return save_image_grid(images, path, nrow=per_class, padding=2)
