"""Generators (docs/ARCHITECTURE.md, "Generator") built from denoisers, and how they are saved.

- `SolverGenerator(denoiser, solver, num_steps)`: a multi-step teacher as G(z, labels):
  x_T = z * sigma_max, then an ODE solve down to 0 (EDM's generate.py with its defaults).
- `OneStepGenerator(denoiser, sigma)`: G(z, labels) = D(z * sigma; sigma), the one-step
  students of GDD/D2O (sigma = sigma_max = 80 with OneStepPrecond) and SiD (sigma_init = 2.5).
- `SFDGenerator(denoiser, num_steps)`: a distilled few-step student of paper 004 (SFD / SFD-v):
  Euler over the polynomial schedule of `num_steps` levels ending at t_min (0.006), the
  analytical first step, no final denoise (NFE = num_steps - 2 with AFS).
- `as_generator(obj)`: denoiser -> SolverGenerator, generator -> itself.
- `save_generator` / `load_generator`: a generator is stored as its inner network (our
  checkpoint format, `onestep.methods.checkpoints.save_network`) plus a `generator` record in
  the metadata saying how to wrap it again; anything without a record (an EDM pickle, a plain
  denoiser checkpoint, a preset) loads as a SolverGenerator.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from .samplers import check_solver_options, count_nfe, get_solver, solve
from .schedules import RHO, SIGMA_MAX, SIGMA_MIN, make_sigmas

DEFAULT_SOLVER = "heun"
DEFAULT_STEPS = 18  # EDM Algorithm 2 / generate.py default (35 NFE with Heun)
GENERATOR_KINDS = ("one_step", "solver", "network", "sfd")


def is_denoiser(obj: Any) -> bool:
    """A Denoiser (EDM convention) has a noise range and round_sigma; a Generator has not."""
    return callable(obj) and hasattr(obj, "round_sigma") and hasattr(obj, "sigma_max")


def _check_generator_attrs(obj: Any, what: str) -> None:
    missing = [a for a in ("img_resolution", "img_channels") if not hasattr(obj, a)]
    if missing or not callable(obj):
        raise TypeError(f"{what} ({type(obj).__name__}) is neither a Denoiser nor a Generator: it lacks "
                        f"{missing or ['__call__']}; see docs/ARCHITECTURE.md 'Shared contracts'")


class SolverGenerator(nn.Module):
    """A denoiser sampled by an ODE solver, seen as G(z, class_labels) -> images in [-1, 1].

    Matches EDM's `edm_sampler`: the noise range is clipped to what the network supports,
    levels go through its `round_sigma`, latents are scaled to sigma_max in float64, and the
    output is float64 (quantize it with onestep.benchmarks.sampling.quantize). `options` are
    the solver's keyword options (afs, S_churn, S_min, S_max, S_noise, r, lower_order_final...).
    """

    def __init__(self, denoiser: nn.Module, solver: str = DEFAULT_SOLVER, num_steps: int = DEFAULT_STEPS,
                 sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX, rho: float = RHO,
                 schedule: str = "edm", **options):
        super().__init__()
        if not is_denoiser(denoiser):
            raise TypeError(f"SolverGenerator needs a Denoiser (with sigma_min/sigma_max/round_sigma), got "
                            f"{type(denoiser).__name__}; a one-step generator is sampled directly")
        get_solver(solver)  # unknown names fail here, with a suggestion
        check_solver_options(solver, options)
        if "randn_like" in options:
            raise TypeError("SolverGenerator: pass randn_like to the call, not the constructor (noise is per seed)")
        self.denoiser = denoiser
        self.solver, self.num_steps, self.schedule, self.rho = solver, int(num_steps), schedule, float(rho)
        # EDM generate.py: "Adjust noise levels based on what's supported by the network."
        self.sigma_min = max(float(sigma_min), float(getattr(denoiser, "sigma_min", 0.0)))
        self.sigma_max = min(float(sigma_max), float(getattr(denoiser, "sigma_max", float("inf"))))
        self.options = dict(options)
        self.img_resolution = denoiser.img_resolution
        self.img_channels = denoiser.img_channels
        self.label_dim = int(getattr(denoiser, "label_dim", 0) or 0)
        self.uses_per_seed_noise = float(options.get("S_churn", 0) or 0) > 0
        self.sigmas()  # validate the schedule now rather than at the first batch
        with torch.device("cpu"):  # values, also inside a meta build (dry runs)
            self.nfe = count_nfe(solver, self.sigmas(), **self.options)

    def sigmas(self, device: torch.device | str | None = None) -> torch.Tensor:
        return make_sigmas(self.schedule, self.num_steps, self.sigma_min, self.sigma_max, self.rho,
                           round_sigma=self.denoiser.round_sigma, trailing_zero=True, device=device)

    def forward(self, z: torch.Tensor, class_labels: torch.Tensor | None = None, randn_like=None) -> torch.Tensor:
        sigmas = self.sigmas(z.device)
        options = dict(self.options)
        if self.uses_per_seed_noise:
            options["randn_like"] = randn_like if randn_like is not None else torch.randn_like
        x = z.to(torch.float64) * sigmas[0]
        return solve(self.solver, self.denoiser, x, sigmas, class_labels, **options).x

    def record(self) -> dict:
        """The `generator` metadata record that rebuilds this wrapper around its denoiser."""
        return {"kind": "solver", "solver": self.solver, "steps": self.num_steps, "schedule": self.schedule,
                "sigma_min": self.sigma_min, "sigma_max": self.sigma_max, "rho": self.rho, "options": dict(self.options),
                "nfe": self.nfe}

    def extra_repr(self) -> str:
        return f"solver={self.solver}, num_steps={self.num_steps}, nfe={self.nfe}, options={self.options}"


class OneStepGenerator(nn.Module):
    """G(z, labels) = D(z * sigma; sigma, labels): one network call at a fixed noise level.

    GDD/D2O (papers 000/001): OneStepPrecond at sigma_max = 80; SiD/SiDA (paper 002): EDMPrecond
    at sigma_init = 2.5. Gradients flow (the training loop differentiates through it).
    """

    nfe = 1

    def __init__(self, denoiser: nn.Module, sigma: float | None = None):
        super().__init__()
        if sigma is None:
            sigma = float(getattr(denoiser, "sigma_max", float("inf")))
        if not (0 < float(sigma) < float("inf")):
            raise ValueError(f"OneStepGenerator: sigma must be a finite positive noise level, got {sigma}")
        _check_generator_attrs(denoiser, "OneStepGenerator's denoiser")
        self.denoiser = denoiser
        self.sigma = float(sigma)
        self.img_resolution = denoiser.img_resolution
        self.img_channels = denoiser.img_channels
        self.label_dim = int(getattr(denoiser, "label_dim", 0) or 0)

    def forward(self, z: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        sigma = torch.full((z.shape[0],), self.sigma, dtype=z.dtype, device=z.device)
        return self.denoiser(z * self.sigma, sigma, class_labels)

    def record(self) -> dict:
        return {"kind": "one_step", "sigma": self.sigma}

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}"


class SFDGenerator(nn.Module):
    """diff-sampler's sampling convention (sample.py:123-143, solvers.py): x = sigma_max z, a
    solve over the polynomial schedule of `num_steps` levels ending at sigma_min WITHOUT a final
    denoise. SFD's students (paper 004): solver 'euler', sigma_min = t_min 0.006, the first step
    analytical (`afs`), so NFE = num_steps - 2. With `step_condition` (SFD-v) the network is told
    N = num_steps (the number of levels, not the NFE), so one network samples at every N it was
    trained for. The solver-only baselines of paper 004's tables use the same convention with the
    teacher's solvers (sigma_min 0.002, no AFS)."""

    def __init__(self, denoiser: nn.Module, num_steps: int, sigma_min: float = 0.006, sigma_max: float = SIGMA_MAX,
                 rho: float = RHO, afs: bool = True, step_condition: bool = False, solver: str = "euler",
                 **options):
        super().__init__()
        _check_generator_attrs(denoiser, "SFDGenerator's denoiser")
        if int(num_steps) != num_steps or num_steps < 2 or (afs and solver == "euler" and num_steps < 3):
            raise ValueError(f"SFDGenerator: num_steps (levels) must be >= 2 (>= 3 for Euler with AFS, else no "
                             f"network call), got {num_steps}")
        get_solver(solver)
        check_solver_options(solver, {"afs": afs, **options})
        self.denoiser = denoiser
        self.num_steps, self.sigma_min, self.sigma_max, self.rho = int(num_steps), float(sigma_min), float(sigma_max), float(rho)
        self.afs, self.step_condition, self.solver, self.options = bool(afs), bool(step_condition), solver, dict(options)
        self.img_resolution = denoiser.img_resolution
        self.img_channels = denoiser.img_channels
        self.label_dim = int(getattr(denoiser, "label_dim", 0) or 0)
        with torch.device("cpu"):  # values, also inside a meta build (dry runs)
            self.nfe = count_nfe(solver, self.sigmas(), afs=self.afs, **self.options)

    def sigmas(self, device=None) -> torch.Tensor:
        from ..losses.sfd import sfd_schedule

        return sfd_schedule(self.num_steps, self.sigma_min, self.sigma_max, self.rho, device=device)

    def forward(self, z: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        sigmas = self.sigmas(z.device).to(torch.float32)
        net = self.denoiser
        if self.step_condition:
            n = self.num_steps
            denoise = lambda x, sigma, labels: net(x, sigma, labels, step_condition=n)  # noqa: E731
        else:
            denoise = lambda x, sigma, labels: net(x, sigma, labels)  # noqa: E731
        return solve(self.solver, denoise, z.to(torch.float32) * sigmas[0], sigmas, class_labels, afs=self.afs,
                     **self.options).x

    def record(self) -> dict:
        return {"kind": "sfd", "steps": self.num_steps, "sigma_min": self.sigma_min, "sigma_max": self.sigma_max,
                "rho": self.rho, "afs": self.afs, "step_condition": self.step_condition, "solver": self.solver,
                "options": dict(self.options), "nfe": self.nfe}

    def extra_repr(self) -> str:
        return (f"solver={self.solver}, num_steps={self.num_steps}, nfe={self.nfe}, afs={self.afs}, "
                f"step_condition={self.step_condition}")


def as_generator(obj: nn.Module, solver: str | None = None, steps: int | None = None, **options) -> nn.Module:
    """A Generator from what a checkpoint held: denoisers are wrapped in a SolverGenerator
    (default Heun, 18 steps), generators pass through unchanged."""
    if isinstance(obj, (SolverGenerator, OneStepGenerator, SFDGenerator)) or (callable(obj) and not is_denoiser(obj)):
        _check_generator_attrs(obj, "as_generator's input")
        if solver is not None or steps is not None or options:
            raise ValueError(f"{type(obj).__name__} is already a generator; solver/steps options do not apply to it")
        return obj
    return SolverGenerator(obj, solver or DEFAULT_SOLVER, DEFAULT_STEPS if steps is None else steps, **options)


def generator_record(G: nn.Module) -> tuple[nn.Module, dict]:
    """(network to save, `generator` record) for a Generator."""
    if isinstance(G, (SolverGenerator, OneStepGenerator, SFDGenerator)):
        return G.denoiser, G.record()
    if is_denoiser(G):
        raise TypeError(f"save_generator got a bare denoiser ({type(G).__name__}); wrap it first "
                        "(OneStepGenerator(net, sigma) or SolverGenerator(net, solver, steps)) or save it with save_network")
    _check_generator_attrs(G, "save_generator's input")
    return G, {"kind": "network"}


def save_generator(path: str | os.PathLike, G: nn.Module, metadata: Mapping[str, Any] | None = None) -> Path:
    """Save a Generator in our checkpoint format (NAME.safetensors + NAME.json) with a
    `generator` metadata record; returns the JSON path."""
    from ..checkpoints import save_network

    net, record = generator_record(G)
    metadata = dict(metadata or {})
    if "generator" in metadata:
        raise ValueError("save_generator: metadata key 'generator' is reserved for the generator record")
    metadata["generator"] = record
    return save_network(path, net, metadata)


def read_generator_record(path_or_preset: str | os.PathLike) -> dict | None:
    """The `generator` record of our checkpoint, or None (EDM pickles, presets, plain denoisers)."""
    from ..checkpoints import checkpoint_paths, read_network_info

    text = os.fspath(path_or_preset)
    if Path(text).suffix == ".pkl" or not checkpoint_paths(text)[1].is_file():
        return None
    record = read_network_info(text).get("metadata", {}).get("generator")
    if record is None:
        return None
    valid = isinstance(record, dict) and record.get("kind") in GENERATOR_KINDS
    if valid and record["kind"] == "one_step":
        valid = isinstance(record.get("sigma"), (int, float)) and 0 < record["sigma"] < float("inf")
    if not valid:
        from ..checkpoints import CheckpointError

        raise CheckpointError(f"'{text}': its generator record {record!r} is not valid; expected a dict with "
                              f"kind in {GENERATOR_KINDS} (and a positive sigma for one_step), as save_generator "
                              "writes it; save the generator again")
    return record


def generator_from_record(net: nn.Module, record: Mapping[str, Any] | None, solver: str | None = None,
                          steps: int | None = None, **options) -> nn.Module:
    """Rebuild a Generator around `net` from its record; explicit solver/steps/options override
    a solver record, and are an error for a one-step generator."""
    kind = (record or {}).get("kind", "solver")
    if kind == "sfd":
        if solver is not None or options:
            raise ValueError("the checkpoint is an SFD-convention generator (its solver is part of what was "
                             "distilled); only --steps (the number of levels N; SFD: NFE = N - 2) applies to it")
        return SFDGenerator(net, steps if steps is not None else record["steps"], record["sigma_min"],
                            record["sigma_max"], record["rho"], record["afs"], record["step_condition"],
                            record.get("solver", "euler"), **record.get("options", {}))
    if kind in ("one_step", "network"):
        if solver is not None or steps is not None or options:
            raise ValueError(f"the checkpoint is a {kind.replace('_', '-')} generator; solver/steps options "
                             "(--solver, --steps, ...) do not apply to it")
        if kind == "one_step":
            return OneStepGenerator(net, record["sigma"])
        _check_generator_attrs(net, "the checkpoint's network")
        return net  # saved as a generator network: G(z, labels) itself
    record = dict(record or {})
    # The record's solver options (afs, S_churn, ...) belong to its solver: keep them unless
    # another solver is asked for.
    same_solver = solver is None or solver == record.get("solver", DEFAULT_SOLVER)
    merged = {**(record.get("options", {}) if same_solver else {}), **options}
    kwargs = {k: record[k] for k in ("sigma_min", "sigma_max", "rho", "schedule") if k in record}
    return SolverGenerator(net, solver or record.get("solver", DEFAULT_SOLVER),
                           steps if steps is not None else record.get("steps", DEFAULT_STEPS), **kwargs, **merged)


def load_generator(path_or_preset: str | os.PathLike, solver: str | None = None, steps: int | None = None,
                   device: torch.device | str = "cpu", **options) -> nn.Module:
    """Load the Generator in a checkpoint: a saved generator as recorded; a plain denoiser
    checkpoint, EDM pickle or preset as SolverGenerator(solver or heun, steps or 18)."""
    from ..checkpoints import load_network

    record = read_generator_record(path_or_preset)
    net = load_network(path_or_preset, device)
    return generator_from_record(net, record, solver, steps, **options).to(device)
