"""EMA half-life arithmetic (EDM's formula) against hand-computed values, and the EMA update."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from onestep.benchmarks.training import EMA, LoopConfig, build_loop_config, ema_beta
from onestep.methods.core.config import ConfigError


def test_ema_beta_hand_computed():
    # Paper 000/001: half-life 500 kimg, ramp-up 0.05, batch 2048.
    # Early: cur_nimg = 1,000,000 -> half-life min(500000, 50000) = 50000 images;
    # beta = 0.5 ** (2048 / 50000) = exp(-ln2 * 0.04096) = 0.971999...
    assert ema_beta(1_000_000, 2048, 500, 0.05) == pytest.approx(math.exp(-math.log(2) * 0.04096), rel=1e-12)
    assert ema_beta(1_000_000, 2048, 500, 0.05) == pytest.approx(0.9720, abs=1e-4)
    # Late: cur_nimg = 20,000,000 -> 0.05 * 2e7 = 1e6 > 5e5, so the 500 kimg half-life applies.
    assert ema_beta(20_000_000, 2048, 500, 0.05) == pytest.approx(0.5 ** (2048 / 500_000), rel=1e-12)
    # No ramp-up: the half-life is fixed from the start.
    assert ema_beta(0, 128, 10, None) == pytest.approx(0.5 ** (128 / 10_000), rel=1e-12)
    # First update (nothing seen yet) with ramp-up: half-life 0 -> beta 0 -> the EMA copies.
    assert ema_beta(0, 128, 500, 0.05) == 0.0
    # After a whole half-life of images at a fixed half-life, the old weight is exactly 1/2.
    beta = ema_beta(0, 100, 1.0, None)  # 1000-image half-life, batches of 100
    assert beta ** 10 == pytest.approx(0.5, rel=1e-12)


def test_ema_update_moves_by_beta_and_copies_buffers():
    live = nn.BatchNorm1d(3)
    ema = EMA({"g": live})
    with torch.no_grad():
        live.weight.fill_(3.0)  # ema weight is still the initial 1.0
        live.running_mean.fill_(7.0)
    ema.update(0.25)
    assert torch.allclose(ema.modules["g"].weight, torch.full((3,), 0.25 * 1.0 + 0.75 * 3.0))
    assert torch.equal(ema.modules["g"].running_mean, torch.full((3,), 7.0))
    assert not any(p.requires_grad for p in ema.modules["g"].parameters())
    ema.update(0.0)
    assert torch.equal(ema.modules["g"].weight, live.weight)


def test_loop_config_errors_and_lengths():
    cfg = build_loop_config({"total_kimg": 1.0, "batch_size": 128})
    assert cfg.total_steps == 8  # ceil(1000 / 128)
    assert build_loop_config({"total_kimg": 1.024, "batch_size": 128}).total_steps == 8
    with pytest.raises(ConfigError, match="did you mean 'ema_halflife_kimg'"):
        build_loop_config({"ema_halflife_kmig": 5})
    with pytest.raises(ConfigError, match="precision"):
        LoopConfig(precision="fp16")
