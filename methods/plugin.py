"""The method plugin interface and its registry.

A method is everything that differs between distillation papers: which networks exist, how
they are built from the teacher, and what one update does. Everything that is the same for
all of them (data batching and sharding, DDP gradient averaging, mixed precision, EMA,
checkpoints and resume, evaluation hooks, logging, progress) lives in the one training loop,
onestep.benchmarks.training.loop, which talks to a method only through this interface.

Contract for `Method.step`:
- It performs one update of the method (which may be several optimizer steps: a fake-score
  phase then a generator phase for SiD/SiDA, the reverse for DMD, several segments per trajectory for SFD,
  G then D for GAN methods) and returns named float losses for logging.
- Randomness comes only from `ctx` (`ctx.randn`, `ctx.rand`, `ctx.randint`): they draw the
  *global* batch from a generator seeded by (run seed, step, stream) and return this rank's
  slice, so N processes reproduce one process with the same global batch.
- Losses are means over the local batch; `ctx.optimizer_step(opt, params, clip=None)` averages
  gradients across ranks, applies a clipping rule, steps and zeroes the optimizer. `clip=None`
  means the loop's rule (norm clipping at `grad_clip`, if set); a method whose official code
  clips one optimizer differently passes its own `GradClip` for that call (SiDA's fake score:
  nan_to_num then value clipping at 1; DMD: norm 10). Methods never wrap modules in
  DistributedDataParallel themselves.
- Network evaluations go under `with ctx.autocast():` (bf16 where the device supports it).

State: `state_dict()` must capture everything needed to continue bit-identically (modules,
optimizers, counters such as a phase index); the loop adds EMA, RNG states and progress.
"""
from __future__ import annotations

import abc
import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, ContextManager, Iterable, Mapping, Protocol

import torch
from torch import nn

from .core.registry import PluginRegistry

ENTRY_POINT_GROUP = "onestep.methods"


@dataclass(frozen=True)
class DataSpec:
    """Shape of the data a method is trained on."""

    resolution: int
    channels: int
    label_dim: int = 0  # 0 = unconditional


@dataclass(frozen=True)
class GradClip:
    """How gradients are treated after the cross-rank average and before the optimizer step.

    Applied in this order: `nan_to_num` (NaN -> 0, +-inf -> +-1e5, as the official SiD/SiDA/SFD
    loops do), element-wise `value` clipping (torch.nn.utils.clip_grad_value_), then global
    L2 `norm` clipping (clip_grad_norm_). All off by default.
    """

    nan_to_num: bool = False
    value: float | None = None
    norm: float | None = None

    def __post_init__(self):
        for what in ("value", "norm"):
            v = getattr(self, what)
            if v is not None and not v > 0:
                raise ValueError(f"GradClip.{what} must be positive or None, got {v}")


@dataclass
class Batch:
    """This rank's slice of one global batch of real data (None when a method needs none)."""

    images: torch.Tensor | None  # float (B, C, H, W) in [-1, 1]
    labels: torch.Tensor | None  # float one-hot (B, label_dim), or None if unconditional
    # Further fresh batches of the same step, when the method asks for Method.data_batches_per_step > 1
    # (SiD/SiDA draw one batch for the fake-score update and a fresh one for the generator update).
    more: tuple["Batch", ...] = ()


class TrainContext(Protocol):
    """What the training loop offers a method during `prepare` and `step`."""

    device: torch.device
    step: int  # index of the update being performed (0-based)
    cur_nimg: int  # images (global) seen before this update
    total_nimg: int  # images (global) of the whole run (set by the loop; SFD drops its lr at half)
    batch_size: int  # global batch size
    local_batch_size: int
    rank: int
    world_size: int

    def autocast(self) -> ContextManager: ...
    def randn(self, *shape: int, stream: str = "default") -> torch.Tensor: ...
    def rand(self, *shape: int, stream: str = "default") -> torch.Tensor: ...
    def randint(self, high: int, *shape: int, stream: str = "default") -> torch.Tensor: ...
    def optimizer_step(self, optimizer: torch.optim.Optimizer, params: Iterable[nn.Parameter] | nn.Module,
                       clip: GradClip | None = None) -> None: ...
    def all_reduce_mean(self, tensor: torch.Tensor) -> torch.Tensor: ...
    def cache_dir(self) -> Any: ...  # pathlib.Path for method caches (e.g. DMD's paired dataset)


class Method(abc.ABC):
    """Base class of all method plugins. Subclasses set `name`, `Config` and `presets`."""

    name: ClassVar[str]
    Config: ClassVar[type]  # a dataclass; built with onestep.methods.core.config.build_config
    # Named presets: {preset: {"method": {...Config overrides}, "loop": {...loop overrides}}}.
    # Every method should provide "smoke" (digits, CPU, about a minute): the smoke suite runs it.
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    needs_real_data: ClassVar[bool] = True
    needs_teacher: ClassVar[bool] = True
    data_batches_per_step: ClassVar[int] = 1  # real-data batches per update (batch + batch.more)

    def __init__(self, config: Any, teacher: nn.Module | None, data: DataSpec, device: torch.device):
        self.config = config
        self.teacher = teacher
        self.data = data
        self.device = device

    # --- what the loop calls -------------------------------------------------------------
    def prepare(self, ctx: TrainContext) -> None:
        """One-time work before the first step (e.g. DMD's cached paired dataset). Must be
        idempotent: it runs again after a resume."""

    @abc.abstractmethod
    def step(self, batch: Batch, ctx: TrainContext) -> dict[str, float]:
        """One update; returns named losses (floats)."""

    @property
    @abc.abstractmethod
    def generator(self) -> nn.Module:
        """The network being trained to generate: G(z, class_labels) -> images in [-1, 1]."""

    @abc.abstractmethod
    def modules(self) -> dict[str, nn.Module]:
        """Every network with state to save (generator, discriminators, fake scores, ...)."""

    @abc.abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        ...

    def ema_modules(self) -> dict[str, nn.Module]:
        """Modules the loop keeps an EMA of (the generator by default)."""
        return {"generator": self.generator}

    def build_generator(self, ema_modules: dict[str, nn.Module]) -> nn.Module:
        """The Generator to sample and evaluate, built from (EMA copies of) `ema_modules()`.

        Default: the EMA generator itself. A teacher-training method returns a multi-step
        SolverGenerator around its EMA denoiser instead."""
        return ema_modules["generator"]

    def describe(self) -> dict[str, Any]:
        """Facts recorded with a run (parameter counts, frozen shares, ...)."""
        gen = self.generator
        return {
            "generator_params": sum(p.numel() for p in gen.parameters()),
            "generator_trainable": sum(p.numel() for p in gen.parameters() if p.requires_grad),
        }

    @classmethod
    def upstream_stand_ins(cls, config: Any, teacher: nn.Module, data: DataSpec, folder: Path) -> dict[str, tuple[Any, str]]:
        """For `validate --dry-run` only: {config key: (value, what it is)} standing in for the
        checkpoints of EARLIER runs that `config` names but that do not exist yet (a SiD2A run's
        SiD generator, an SFD second stage's first stage), written under `folder` from `teacher`
        (CPU, random or real weights). Default: the method needs no earlier run."""
        return {}

    # --- state -------------------------------------------------------------------------
    def extra_state(self) -> dict[str, Any]:
        """Counters or buffers outside modules/optimizers (tensors or plain values)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} got unexpected extra state keys {sorted(state)}")

    def state_dict(self) -> dict[str, Any]:
        return {
            "modules": {k: m.state_dict() for k, m in self.modules().items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers().items()},
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        mods, opts = self.modules(), self.optimizers()
        for kind, have, got in (("modules", mods, state["modules"]), ("optimizers", opts, state["optimizers"])):
            if set(have) != set(got):
                raise ValueError(f"checkpoint {kind} {sorted(got)} do not match method {self.name}'s {sorted(have)}")
        for k, m in mods.items():
            m.load_state_dict(state["modules"][k])
        for k, o in opts.items():
            o.load_state_dict(state["optimizers"][k])
        self.load_extra_state(state.get("extra", {}))


# --- registry -----------------------------------------------------------------------------
# Built-ins: every module of onestep.methods.plugins; other packages: the entry-point group.
REGISTRY: PluginRegistry[type[Method]] = PluginRegistry("method", Method, "onestep.methods.plugins", ENTRY_POINT_GROUP)


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: make a method available by its `name`."""
    return REGISTRY.register(cls)


def available_methods() -> dict[str, type[Method]]:
    return REGISTRY.available()


def get_method(name: str) -> type[Method]:
    return REGISTRY.get(name)


def resolve_preset(method: type[Method], preset: str) -> dict[str, Any]:
    return REGISTRY.preset(method, preset)


@contextlib.contextmanager
def frozen(module: nn.Module):
    """Temporarily set requires_grad=False on a module's parameters (e.g. D during the G step)."""
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p, f in zip(module.parameters(), flags):
            p.requires_grad_(f)
