"""The one training loop (docs/ARCHITECTURE.md "Training loop").

    from onestep.benchmarks.training import instantiate_method, train, data_spec_of
    method, loop = instantiate_method("edm", "digits", data_spec=data_spec_of(ds))
    result = train(method, ds, loop, run_dir)          # resumes from run_dir/resume.pt
"""
from .build import ResolvedConfig, build_loop_config, data_spec_of, instantiate_method, resolve_config
from .config import LoopConfig
from .context import LoopContext, autocast_dtype
from .data import ShardedBatches
from .ema import EMA, ema_beta
from .loop import RESUME_FILE, ResumeMismatchError, TrainResult, run_identity, train
from .seeding import derive_seed

__all__ = [
    "LoopConfig", "train", "TrainResult", "ResumeMismatchError", "run_identity", "RESUME_FILE",
    "instantiate_method", "resolve_config", "ResolvedConfig", "build_loop_config", "data_spec_of",
    "LoopContext", "autocast_dtype", "ShardedBatches", "EMA", "ema_beta", "derive_seed",
]
