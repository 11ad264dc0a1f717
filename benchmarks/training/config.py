"""LoopConfig: everything the one training loop needs to know besides the method itself."""
from __future__ import annotations

import math
from dataclasses import dataclass

from onestep.methods.core.config import ConfigError

PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class LoopConfig:
    # Training length in images (thousands), as in EDM/GDD: steps = ceil(total_kimg*1000 / batch_size).
    total_kimg: float = 200.0
    batch_size: int = 128  # global, over all ranks
    # EMA (EDM training_loop.py): halflife_nimg = min(halflife_kimg*1000, cur_nimg*rampup_ratio);
    # beta = 0.5 ** (batch / max(halflife_nimg, 1e-8)). Paper 000/001 appendix: half-life 500 kimg.
    ema_halflife_kimg: float = 500.0
    ema_rampup_ratio: float | None = 0.05
    grad_clip: float | None = None  # max global gradient norm; None = no clipping
    precision: str = "auto"  # auto = bf16 autocast on CUDA with bf16 support, fp32 on CPU
    seed: int = 0
    snapshot_kimg: float | None = None  # EMA generator snapshots; None = only the final one
    checkpoint_kimg: float = 50.0  # atomic resume checkpoints
    eval_kimg: float | None = None  # evaluation interval (also always at the end if `evaluate` given)
    best_metric: str | None = None  # keep the snapshot with the best value of this metric
    best_mode: str = "min"  # min (FID-like) or max (IS-like)
    log_kimg: float = 4.0  # progress line + JSONL loss record every tick

    def __post_init__(self):
        if self.batch_size <= 0:
            raise ConfigError(f"LoopConfig.batch_size must be positive, got {self.batch_size}")
        if not self.total_kimg > 0:
            raise ConfigError(f"LoopConfig.total_kimg must be positive, got {self.total_kimg}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"LoopConfig.precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.best_mode not in ("min", "max"):
            raise ConfigError(f"LoopConfig.best_mode must be 'min' or 'max', got {self.best_mode!r}")
        for name in ("snapshot_kimg", "checkpoint_kimg", "eval_kimg", "log_kimg", "ema_halflife_kimg"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise ConfigError(f"LoopConfig.{name} must be positive (or null where allowed), got {v}")
        if self.ema_rampup_ratio is not None and not self.ema_rampup_ratio > 0:
            raise ConfigError(f"LoopConfig.ema_rampup_ratio must be positive or null, got {self.ema_rampup_ratio}")

    @property
    def total_steps(self) -> int:
        return math.ceil(self.total_kimg * 1000 / self.batch_size - 1e-9)

    def every_steps(self, kimg: float | None) -> int | None:
        """An interval in kimg as a whole number of steps (at least 1)."""
        if kimg is None:
            return None
        return max(1, round(kimg * 1000 / self.batch_size))

    # Fields that change the training trajectory (part of the resume identity). Lengths and
    # intervals are not: a run may be extended or checkpointed more often and still resume.
    TRAJECTORY_FIELDS = ("batch_size", "ema_halflife_kimg", "ema_rampup_ratio", "grad_clip", "precision", "seed")
