"""Freezing by parameter role: GDD-I (paper 000 section 4.2, Table 2) and D2O-F (paper 001
section 4.2, Table 3), and CD-I / CD-F (paper 000 section 4.3, paper 001 section 4.3).

Levels reproduce the ablation rows (roles from onestep.methods.zoo.roles):
  none            all tuned                       (GDD / D2O,  CIFAR-10 FID 1.66)
  conv            conv frozen                     (GDD-I / D2O-F default, FID 1.54)
  conv_qkv        conv + QKV frozen               (FID 1.60)
  conv_qkv_skip   conv + QKV + skip frozen        (FID 2.51)
Norm layers (incl. adaptive affine), the mapping network and input/output layers are always
tuned ("the group normalization layers, the input layer and the output layer ... tuned").
"""
from __future__ import annotations

from torch import nn

from .core.config import ConfigError, suggest
from .zoo.roles import ROLES, parameter_roles, role_counts

FREEZE_LEVELS: dict[str, tuple[str, ...]] = {
    "none": (),
    "conv": ("conv",),
    "conv_qkv": ("conv", "qkv"),
    "conv_qkv_skip": ("conv", "qkv", "skip"),
}
# Best row of paper 000 Table 2 / paper 001 Table 3: conv frozen, norm + QKV + skip tuned.
DEFAULT_FROZEN_LEVEL = "conv"


def frozen_roles(level: str) -> tuple[str, ...]:
    if level not in FREEZE_LEVELS:
        raise ConfigError(f"unknown freeze level {level!r}{suggest(level, FREEZE_LEVELS)}; "
                          f"choose one of {list(FREEZE_LEVELS)}")
    return FREEZE_LEVELS[level]


def apply_freeze_level(net: nn.Module, level: str) -> list[str]:
    """Set requires_grad per role; returns the names of the frozen parameters."""
    roles = frozen_roles(level)
    params = dict(net.named_parameters())
    frozen = []
    for name, role in parameter_roles(net).items():
        freeze = role in roles
        params[name].requires_grad_(not freeze)
        if freeze:
            frozen.append(name)
    return frozen


def freezing_summary(net: nn.Module, level: str) -> dict:
    """Shares of parameters per role and trainable counts, recorded in describe()."""
    counts = role_counts(net)
    total = sum(counts.values())
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    return {
        "freeze_level": level,
        "frozen_roles": list(frozen_roles(level)),
        "role_params": {r: counts[r] for r in ROLES if counts[r]},
        "role_shares": {r: round(counts[r] / total, 6) for r in ROLES if counts[r]},
        "params_total": total,
        "params_trainable": trainable,
        "trainable_share": round(trainable / total, 6) if total else 0.0,
    }
