"""What several analyses share: the teacher and data, GAN training through the GDD plugin and
the one training loop, and measurements through the one metrics harness. Nothing here is a
second copy: it only wires those parts together."""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from torch import nn

from onestep.methods.core.config import ConfigError
from onestep.methods.solvers.generator import SolverGenerator
from onestep.methods.solvers.schedules import RHO, SIGMA_MAX, SIGMA_MIN


def load_teacher(name: str, device, log=print) -> nn.Module:
    from onestep.benchmarks.teachers import load_teacher as _load

    return _load(name, device=device, log=log)


def load_data(dataset: Mapping[str, Any], split: str = "train"):
    """The training data (ArrayImageDataset) an analysis trains and measures against."""
    if dataset.get("name", "digits") != "digits":
        from onestep.benchmarks import datasets

        if not dataset.get("path"):
            raise ConfigError(f"dataset {dataset['name']}: give dataset.path (only 'digits' is embedded)")
        return datasets.load_dataset(dataset["path"], resolution=dataset["resolution"])
    from onestep.benchmarks.datasets import load_digits

    return load_digits(dataset.get("resolution", 8), dataset.get("channels", 1), split=split,
                       conditional=dataset.get("conditional", True))


# --- few-step generators in the progressive-distillation manner (paper 000 section 2.2) ------
def rho_for_midpoint(sigma_mid: float, sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX) -> float:
    """The rho whose 3-level EDM schedule is [sigma_max, sigma_mid, sigma_min].

    The middle level ((sigma_max^(1/rho) + sigma_min^(1/rho)) / 2)^rho falls monotonically
    from sigma_max (rho -> 0) to sqrt(sigma_min sigma_max) (rho -> inf), so every sigma_mid in
    between has exactly one rho; this lets the two-step teacher of Figure 2B be an ordinary
    SolverGenerator (saved, reloaded and sampled like any other)."""
    lo_bound = math.sqrt(sigma_min * sigma_max)
    if not lo_bound < sigma_mid < sigma_max:
        raise ConfigError(f"intermediate sigma {sigma_mid} must lie in ({lo_bound:.4g}, {sigma_max}) for a "
                          f"two-step schedule from {sigma_max} to {sigma_min}")

    def mid(log_rho: float) -> float:
        r = math.exp(log_rho)
        return ((sigma_max ** (1 / r) + sigma_min ** (1 / r)) / 2) ** r

    a, b = math.log(1e-3), math.log(1e4)  # mid(a) ~ sigma_max, mid(b) ~ sqrt(sigma_min sigma_max)
    for _ in range(200):
        m = (a + b) / 2
        if mid(m) > sigma_mid:
            a = m
        else:
            b = m
    rho = math.exp((a + b) / 2)
    # Close to sigma_max, rho is so small that sigma_min^(1/rho) vanishes next to sigma_max^(1/rho) in
    # EDM's formula (float64 cancellation): refuse rather than sample a different schedule.
    from onestep.methods.solvers.schedules import edm_sigmas

    got = edm_sigmas(3, sigma_min, sigma_max, rho, trailing_zero=False).tolist()
    if not all(math.isclose(g, w, rel_tol=1e-6) for g, w in zip(got, (sigma_max, sigma_mid, sigma_min))):
        raise ConfigError(f"intermediate sigma {sigma_mid} is too close to sigma_max={sigma_max}: the EDM schedule "
                          f"loses sigma_min to float64 cancellation at rho={rho:.3g} (got {got}); use a smaller intermediate sigma "
                          f"(up to about {0.65 * sigma_max:g})")
    return rho


class PDGenerator(SolverGenerator):
    """H = F(...F(F(x_tk, t_k, t_{k-1}), t_{k-1}, t_{k-2})..., t_1, t_0) with t_i = T(i, k):
    k deterministic (Euler = DDIM) steps of the consistency-parameterized network F, then the
    schedule's trailing 0, which is the identity for OneStepPrecond (D(x; eps) = x exactly), so
    the NFE that matter are k. A SolverGenerator with `k + 1` EDM levels and rho chosen by the
    caller, returning z's dtype (the GAN discriminator runs in float32); differentiable, so the
    GDD plugin trains it like its one-step generator."""

    def forward(self, z: torch.Tensor, class_labels: torch.Tensor | None = None, randn_like=None) -> torch.Tensor:
        return super().forward(z, class_labels, randn_like).to(z.dtype)


def pd_generator(denoiser: nn.Module, steps: int, sigma_mid: float | None = None) -> PDGenerator:
    """The k-step PD teacher on T(i, k) (rho 7), or the two-step one with a given intermediate sigma."""
    if sigma_mid is None:
        return PDGenerator(denoiser, "euler", steps + 1, rho=RHO)
    if steps != 2:
        raise ConfigError("an intermediate sigma defines a two-step teacher only")
    return PDGenerator(denoiser, "euler", 3, rho=rho_for_midpoint(sigma_mid, denoiser.sigma_min, denoiser.sigma_max))


def train_gdd(ctx, key: str, teacher: nn.Module, data, preset: str, method_overrides: Mapping[str, Any] | None = None,
              loop_overrides: Mapping[str, Any] | None = None, steps: int = 1, sigma_mid: float | None = None,
              method_name: str = "gdd"):
    """Train a generator with the GDD plugin's GAN objective through the one training loop.

    steps = 1: the plugin's own one-step student. steps > 1: the same plugin (same losses,
    discriminator, optimizers, R1), its generator replaced by a PDGenerator around the same
    network, so the only difference is the number of network passes. Checkpoints live in
    ctx.checkpoint_dir(key): an interrupted training resumes. Returns the EMA generator."""
    from onestep.benchmarks.training import data_spec_of, resolve_config, build_loop_config, train
    from onestep.benchmarks.training.seeding import derive_seed
    from onestep.methods.core.config import build_config
    from onestep.methods.plugin import get_method

    overrides = {f"method.{k}": v for k, v in (method_overrides or {}).items()}
    overrides.update({f"loop.{k}": v for k, v in (loop_overrides or {}).items()})
    resolved = resolve_config(method_name, preset, overrides)
    base = get_method(method_name)
    cls = base if steps == 1 and sigma_mid is None else _pd_method(base, steps, sigma_mid)
    config = build_config(base.Config, resolved.method, where=f"{method_name}.method")
    loop = build_loop_config(resolved.loop)
    torch.manual_seed(derive_seed(loop.seed, "init"))  # as instantiate_method: initial weights are part of the run
    method = cls(config, teacher, data_spec_of(data), ctx.device)
    result = train(method, data, loop, ctx.checkpoint_dir(key), device=ctx.device,
                   identity_extra={"teacher_steps": steps, "sigma_mid": sigma_mid}, log=lambda s: None)
    ctx.log(f"  trained {key}: {result.step} steps, {result.cur_nimg / 1000:g} kimg ({result.seconds:.1f}s)")
    return result.generator.eval()


def _pd_method(base: type, steps: int, sigma_mid: float | None) -> type:
    class PDTeacher(base):  # the GDD plugin, generator swapped (its public interface has no hook for it)
        name = f"{base.name}-pd"

        def __init__(self, config, teacher, data, device):
            super().__init__(config, teacher, data, device)
            # The optimizer already holds this network's parameters; only the wrapper changes.
            self._gen = pd_generator(self._gen.denoiser, steps, sigma_mid)

    return PDTeacher


# --- measurements ------------------------------------------------------------------------------
def measure(generator, reference, metric: str, n: int, seeds: list[int], device, batch_size: int = 250,
            data_floor: bool = False) -> dict:
    """One metric of a generator against a dataset (abs) or another generator (rel-, same seeds)."""
    from onestep.benchmarks.metrics.evaluate import evaluate

    res = evaluate(generator, reference, [metric], num_samples=n, seeds=seeds, batch_size=batch_size, device=device,
                   progress=False, data_floor=data_floor)
    rec = res.records[0]
    return {"metric": rec.metric, "value": float(rec.value), "n": rec.n, "untrained": bool(rec.untrained),
            "floor": rec.floor, "floor_n": rec.floor_n}


def spearman(x, y) -> float:
    """Rank correlation (ties get mean ranks); NaN when either side is constant."""
    import numpy as np
    from scipy.stats import spearmanr

    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    return float(spearmanr(x, y).statistic)
