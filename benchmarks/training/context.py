"""The loop's implementation of onestep.methods.plugin.TrainContext."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterable

import torch
from torch import nn

from onestep.environments import distributed as dist_env
from onestep.methods.core.paths import cache_dir as _cache_dir
from onestep.methods.plugin import GradClip

from .seeding import derive_seed


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 on CUDA devices that support it (auto/bf16), else None (fp32)."""
    if precision == "fp32":
        return None
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if precision == "bf16":
        if device.type == "cpu":
            return torch.bfloat16  # asked for explicitly: CPU autocast supports bf16 (slow, but honest)
        raise ValueError(f"precision 'bf16' requested but device {device} does not support bf16")
    return None


class LoopContext:
    """Per-run context handed to `Method.prepare` and `Method.step`.

    Random draws: `randn(local_batch, ...)` draws the *global* tensor (first dimension
    multiplied by world_size) from a generator seeded by (seed, step, stream) and returns this
    rank's rows. Repeated draws from one stream within a step continue that stream's generator.
    """

    def __init__(self, seed: int, batch_size: int, device: torch.device, precision: str = "auto",
                 grad_clip: float | None = None, method_name: str = "method"):
        self.seed = seed
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.rank = dist_env.rank()
        self.world_size = dist_env.world_size()
        if batch_size % self.world_size:
            raise ValueError(f"global batch {batch_size} is not divisible by {self.world_size} processes")
        self.local_batch_size = batch_size // self.world_size
        self.grad_clip = grad_clip
        self._amp_dtype = autocast_dtype(precision, self.device)
        self._method_name = method_name
        self.step = 0
        self.cur_nimg = 0
        self._streams: dict[str, torch.Generator] = {}
        self.last_grad_norm: float | None = None

    def begin_step(self, step: int, cur_nimg: int) -> None:
        self.step, self.cur_nimg = step, cur_nimg
        self._streams = {}
        # Global RNG (dropout, methods that ignore ctx): reseeded per step and rank, so a resumed
        # run continues identically without saving RNG state.
        torch.manual_seed(derive_seed(self.seed, "global", step, self.rank))

    # --- precision ------------------------------------------------------------------------
    def autocast(self):
        if self._amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self._amp_dtype)

    # --- randomness -----------------------------------------------------------------------
    def _generator(self, stream: str) -> torch.Generator:
        g = self._streams.get(stream)
        if g is None:
            g = torch.Generator(self.device).manual_seed(derive_seed(self.seed, "ctx", self.step, stream))
            self._streams[stream] = g
        return g

    def _global_shape(self, shape) -> list[int]:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list, torch.Size)):
            shape = tuple(shape[0])
        if not shape:
            raise ValueError("ctx random draws need a shape whose first dimension is the local batch size")
        return [int(shape[0]) * self.world_size, *map(int, shape[1:])]

    def _slice(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0] // self.world_size
        return x[self.rank * n:(self.rank + 1) * n]

    def randn(self, *shape, stream: str = "default") -> torch.Tensor:
        return self._slice(torch.randn(self._global_shape(shape), generator=self._generator(stream), device=self.device))

    def rand(self, *shape, stream: str = "default") -> torch.Tensor:
        return self._slice(torch.rand(self._global_shape(shape), generator=self._generator(stream), device=self.device))

    def randint(self, high: int, *shape, stream: str = "default") -> torch.Tensor:
        return self._slice(torch.randint(int(high), self._global_shape(shape), generator=self._generator(stream),
                                         device=self.device))

    # --- optimisation ---------------------------------------------------------------------
    def all_reduce_mean(self, tensor: torch.Tensor) -> torch.Tensor:
        return dist_env.all_reduce_mean(tensor)

    def optimizer_step(self, optimizer: torch.optim.Optimizer, params: Iterable[nn.Parameter] | nn.Module,
                       clip: GradClip | None = None) -> None:
        """Average gradients over ranks, apply the clipping rule, step, zero the gradients.

        `clip=None` is the loop's rule: norm clipping at `grad_clip` when it is set."""
        if isinstance(params, nn.Module):
            params = params.parameters()
        params = [p for p in params if p.requires_grad]
        grads = [p.grad for p in params if p.grad is not None]
        if self.world_size > 1 and grads:
            flat = torch.cat([g.reshape(-1) for g in grads])  # one collective instead of one per tensor
            dist_env.all_reduce_mean(flat)
            offset = 0
            for g in grads:
                g.copy_(flat[offset:offset + g.numel()].view_as(g))
                offset += g.numel()
        if clip is None:
            clip = GradClip(norm=self.grad_clip)
        if grads:
            if clip.nan_to_num:
                for g in grads:
                    torch.nan_to_num(g, nan=0.0, posinf=1e5, neginf=-1e5, out=g)
            if clip.value is not None:
                torch.nn.utils.clip_grad_value_([p for p in params if p.grad is not None], clip.value)
            if clip.norm is not None:
                self.last_grad_norm = float(torch.nn.utils.clip_grad_norm_(
                    [p for p in params if p.grad is not None], clip.norm))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def cache_dir(self) -> Path:
        return _cache_dir("methods", self._method_name)
