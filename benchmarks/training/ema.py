"""Exponential moving average of parameters with EDM's half-life schedule.

EDM (training_loop.py), also used by GDD/D2O (paper 000/001 appendix: half-life 0.5 Mimg,
ramp-up ratio 0.05):
    halflife_nimg = halflife_kimg * 1000, capped at cur_nimg * rampup_ratio when a ratio is set
    beta = 0.5 ** (batch_size / max(halflife_nimg, 1e-8))
    ema = lerp(param, ema, beta)   i.e. ema = beta*ema + (1-beta)*param
where cur_nimg counts the images seen *before* this update, so the first update copies.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


def ema_beta(cur_nimg: int, batch_size: int, halflife_kimg: float, rampup_ratio: float | None) -> float:
    halflife_nimg = halflife_kimg * 1000
    if rampup_ratio is not None:
        halflife_nimg = min(halflife_nimg, cur_nimg * rampup_ratio)
    return 0.5 ** (batch_size / max(halflife_nimg, 1e-8))


class EMA:
    """Frozen deep copies of `modules`; `update(beta)` moves them towards the live weights."""

    def __init__(self, modules: dict[str, nn.Module]):
        self.live = dict(modules)
        self.modules: dict[str, nn.Module] = {}
        for name, m in self.live.items():
            e = copy.deepcopy(m).eval()
            e.requires_grad_(False)
            self.modules[name] = e

    @torch.no_grad()
    def update(self, beta: float) -> None:
        for name, live in self.live.items():
            ema = self.modules[name]
            for p_ema, p in zip(ema.parameters(), live.parameters()):
                p_ema.copy_(p.detach().lerp(p_ema, beta))
            for b_ema, b in zip(ema.buffers(), live.buffers()):
                b_ema.copy_(b)

    def state_dict(self) -> dict:
        return {k: m.state_dict() for k, m in self.modules.items()}

    def load_state_dict(self, state: dict) -> None:
        if set(state) != set(self.modules):
            raise ValueError(f"EMA checkpoint has modules {sorted(state)}, the method has {sorted(self.modules)}")
        for k, m in self.modules.items():
            m.load_state_dict(state[k])
