"""The one training loop: every method trains through `train`.

It owns what all methods share (docs/ARCHITECTURE.md "Training loop"): real-data batches
sharded over ranks, the TrainContext (seeded randomness, gradient averaging, clipping,
autocast), EMA, evaluation hooks with best-snapshot keeping, EMA generator snapshots,
atomic resume checkpoints, a JSONL log and a progress line. Only rank 0 writes files.

Files in `run_dir`:
    resume.pt                  latest resume checkpoint (atomic; config hash inside)
    log.jsonl                  {"kind": "tick"|"eval"|"resume"|"done", ...} one JSON per line
    snapshots/snapshot-NNNNNNNNNN  EMA generator after NNNNNNNNNN images (save_generator format)
    best/generator             best EMA generator by `best_metric` (+ best.json)
    final/generator            EMA generator at the end; final.json: summary of the run
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from onestep.environments import distributed as dist_env
from onestep.methods.checkpoints import CheckpointError, load_resume_state, save_resume_state
from onestep.methods.core.atomic import atomic_write_json, atomic_write_text
from onestep.methods.core.config import canonical_json, config_hash, to_dict
from onestep.methods.plugin import Batch, Method

from .config import LoopConfig
from .context import LoopContext
from .data import ShardedBatches
from .ema import EMA, ema_beta

RESUME_FILE = "resume.pt"
LOG_FILE = "log.jsonl"
FINAL_FILE = "final.json"
Evaluate = Callable[[nn.Module, int], dict]


class ResumeMismatchError(CheckpointError):
    """The run directory holds a checkpoint of a different configuration."""


@dataclass
class TrainResult:
    method: Method
    ema: dict[str, nn.Module]  # EMA copies of method.ema_modules()
    generator: nn.Module  # method.build_generator(ema): what is sampled and evaluated
    run_dir: Path
    config_hash: str
    step: int  # updates done
    cur_nimg: int  # images seen
    evaluations: list[dict] = field(default_factory=list)
    best: dict | None = None  # the best evaluation by loop_config.best_metric
    seconds: float = 0.0  # wall time of this call
    train_seconds: float = 0.0  # wall time of training over all calls (resumes included)
    resumed_from_step: int | None = None
    files: dict[str, str] = field(default_factory=dict)


def run_identity(method: Method, loop_config: LoopConfig, dataset: Any = None, extra: dict | None = None) -> dict:
    """What a resume checkpoint must agree with: method, its config, the trajectory-relevant
    loop fields, the data's content hash and anything the caller adds (e.g. a teacher checksum)."""
    data_hash = dataset.content_hash() if hasattr(dataset, "content_hash") else None
    return {
        "method": method.name,
        "method_config": to_dict(method.config),
        "loop": {k: getattr(loop_config, k) for k in LoopConfig.TRAJECTORY_FIELDS},
        "data": data_hash,
        "extra": to_dict(extra or {}),
    }


class _TickStats:
    """Losses averaged over a tick and throughput since the previous tick."""

    def __init__(self):
        self.reset(time.perf_counter(), 0)

    def reset(self, t: float, nimg: int) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0
        self.t0, self.nimg0 = t, nimg
        self.step_time = 0.0

    def add(self, losses: dict[str, float]) -> None:
        for k, v in losses.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
        self.count += 1

    def means(self) -> dict[str, float]:
        return {k: v / max(self.count, 1) for k, v in self.sums.items()}


def _due(step_done: int, every: int | None) -> bool:
    return every is not None and step_done % every == 0


def _is_better(value: float, best: float | None, mode: str) -> bool:
    return best is None or (value < best if mode == "min" else value > best)


def _write_generator(path: Path, generator: nn.Module, metadata: dict) -> Path:
    from onestep.methods.solvers import save_generator

    return save_generator(path, generator, metadata)


def _rewrite_log(path: Path, keep_through_step: int) -> None:
    """Drop log records written after the checkpoint being resumed (they will be redone)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash
        if rec.get("step", 0) <= keep_through_step:
            kept.append(line)
    atomic_write_text(path, "".join(l + "\n" for l in kept))


def train(
    method: Method,
    dataset: Any,
    loop_config: LoopConfig,
    run_dir: str | os.PathLike,
    evaluate: Evaluate | None = None,
    device: torch.device | str | None = None,
    resume: bool = True,
    identity_extra: dict | None = None,
    on_step: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train `method` for `loop_config.total_kimg` thousand images; returns a TrainResult.

    dataset: uint8 image dataset (ArrayImageDataset), or None for methods without real data.
    evaluate(generator, cur_nimg) -> {metric: value}: called every `eval_kimg` and at the end
        on every rank with the EMA generator; rank 0's result is recorded.
    resume: continue from `run_dir/resume.pt` if present (refused if its config hash differs);
        False starts from scratch and overwrites the run directory's checkpoint.
    identity_extra: more facts the resume identity must match (e.g. the teacher's checksum).
    on_step(step_done, cur_nimg): called after every update (tests use it to interrupt runs).
    """
    t_start = time.perf_counter()
    run_dir = Path(run_dir)
    device = torch.device(device) if device is not None else torch.device(method.device)
    rank, world = dist_env.rank(), dist_env.world_size()
    is_main = rank == 0
    say = log or (lambda s: print(s, file=sys.stderr, flush=True))
    if not is_main:
        say = lambda s: None  # noqa: E731
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)

    if method.needs_real_data and dataset is None:
        raise ValueError(f"method '{method.name}' trains on real data but no dataset was given")
    identity = run_identity(method, loop_config, dataset, identity_extra)
    run_hash = config_hash(identity)
    total_steps = loop_config.total_steps
    batches = None
    if dataset is not None and method.needs_real_data:
        batches = ShardedBatches(dataset, loop_config.batch_size, loop_config.seed, rank, world, device)
    ctx = LoopContext(loop_config.seed, loop_config.batch_size, device, loop_config.precision,
                      loop_config.grad_clip, method.name)
    ctx.total_nimg = total_steps * loop_config.batch_size  # methods with a schedule over the run (SFD's lr drop)

    method.prepare(ctx)
    ema = EMA(method.ema_modules())
    step, evaluations, best, seconds_before = 0, [], None, 0.0
    resume_path = run_dir / RESUME_FILE
    resumed_from = None
    if resume and resume_path.is_file():
        state = load_resume_state(resume_path, map_location=device)
        if state.get("config_hash") != run_hash:
            raise ResumeMismatchError(
                f"'{resume_path}' was written by a run with config hash {state.get('config_hash')}, but this run's "
                f"config hash is {run_hash}; use another run directory, or pass resume=False to start over.\n"
                f"  checkpoint: {state.get('identity')}\n  this run:   {canonical_json(identity)}")
        method.load_state_dict(state["method"])
        ema.load_state_dict(state["ema"])
        step = int(state["step"])
        evaluations = json.loads(state.get("evaluations", "[]"))
        best = json.loads(state.get("best", "null"))
        seconds_before = float(state.get("train_seconds", 0.0))
        resumed_from = step
        if is_main:
            _rewrite_log(run_dir / LOG_FILE, step)
    dist_env.barrier()

    def write_log(record: dict) -> None:
        if is_main:
            with open(run_dir / LOG_FILE, "a", encoding="utf-8") as f:
                f.write(json.dumps(record, sort_keys=True) + "\n")

    def nimg(s: int) -> int:
        return s * loop_config.batch_size

    def generator_now() -> nn.Module:
        return method.build_generator(ema.modules)

    def save_checkpoint() -> None:
        if is_main:
            save_resume_state(resume_path, {
                "config_hash": run_hash, "identity": canonical_json(identity), "step": step, "cur_nimg": nimg(step),
                "method": method.state_dict(), "ema": ema.state_dict(),
                "evaluations": json.dumps(evaluations), "best": json.dumps(best), "world_size": world,
                "train_seconds": seconds_before + time.perf_counter() - t_start,
            })
        dist_env.barrier()

    def run_evaluation() -> None:
        nonlocal best
        G = generator_now()
        was_training = G.training
        G.eval()
        metrics = dist_env.broadcast_object(dict(evaluate(G, nimg(step)) or {}))
        G.train(was_training)
        record = {"kind": "eval", "step": step, "kimg": nimg(step) / 1000, **metrics}
        evaluations.append(record)
        write_log(record)
        # An evaluate hook may flag its values as computed with untrained feature weights
        # ({"untrained": True}); the line then carries the UNTRAINED tag the README promises.
        shown = {k: v for k, v in metrics.items() if k != "untrained"}
        say(f"eval  kimg {nimg(step) / 1000:9.1f}  " + "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                                              for k, v in shown.items())
            + ("  UNTRAINED" if metrics.get("untrained") else ""))
        name = loop_config.best_metric
        if name is not None:
            if name not in metrics:
                raise KeyError(f"best_metric '{name}' is not among the evaluation's metrics {sorted(metrics)}")
            if _is_better(float(metrics[name]), None if best is None else float(best[name]), loop_config.best_mode):
                best = record
                if is_main:
                    _write_generator(run_dir / "best" / "generator", G,
                                     {"kimg": nimg(step) / 1000, "config_hash": run_hash, name: metrics[name]})
                    atomic_write_json(run_dir / "best.json", best)

    def save_snapshot(path: Path) -> Path | None:
        if is_main:
            return _write_generator(path, generator_now(), {"kimg": nimg(step) / 1000, "step": step,
                                                           "config_hash": run_hash, "method": method.name})
        return None

    final_json = run_dir / FINAL_FILE
    if step >= total_steps and final_json.is_file():
        summary = json.loads(final_json.read_text())
        if summary.get("config_hash") == run_hash and summary.get("step") == step:
            say(f"{method.name}: run in {run_dir} is already complete ({step} steps)")
            return TrainResult(method, ema.modules, generator_now(), run_dir, run_hash, step, nimg(step),
                               evaluations, best, time.perf_counter() - t_start, summary.get("train_seconds", 0.0),
                               resumed_from, summary.get("files", {}))

    if step == 0:
        if is_main:  # a fresh start: forget records of any earlier attempt in this directory
            for stale in (LOG_FILE, FINAL_FILE, "best.json"):
                (run_dir / stale).unlink(missing_ok=True)
        write_log({"kind": "start", "step": 0, "config_hash": run_hash, "identity": identity, "world_size": world,
                   "loop": to_dict(loop_config)})
    else:
        write_log({"kind": "resume", "step": step, "kimg": nimg(step) / 1000})
        say(f"{method.name}: resuming {run_dir} at kimg {nimg(step) / 1000:.1f} (step {step} of {total_steps})")

    every_tick = loop_config.every_steps(loop_config.log_kimg)
    every_ckpt = loop_config.every_steps(loop_config.checkpoint_kimg)
    every_eval = loop_config.every_steps(loop_config.eval_kimg) if evaluate is not None else None
    every_snap = loop_config.every_steps(loop_config.snapshot_kimg)
    stats = _TickStats()
    stats.reset(time.perf_counter(), nimg(step))
    for module in method.modules().values():
        module.train()

    while step < total_steps:
        ctx.begin_step(step, nimg(step))
        batch = batches.batch(step, getattr(method, "data_batches_per_step", 1)) if batches is not None else Batch(None, None)
        losses = method.step(batch, ctx)
        ema.update(ema_beta(nimg(step), loop_config.batch_size, loop_config.ema_halflife_kimg,
                            loop_config.ema_rampup_ratio))
        step += 1
        stats.add(losses or {})
        done = step >= total_steps

        if _due(step, every_tick) or done:
            now = time.perf_counter()
            rate = (nimg(step) - stats.nimg0) / max(now - stats.t0, 1e-9)
            means = stats.means()
            write_log({"kind": "tick", "step": step, "kimg": nimg(step) / 1000, "images_per_s": rate,
                       "seconds": now - t_start, **means})
            say(f"{method.name}  kimg {nimg(step) / 1000:9.1f}/{loop_config.total_kimg:g}  step {step:7d}  "
                f"{rate:8.1f} img/s  " + "  ".join(f"{k} {v:.4g}" for k, v in means.items()))
            stats.reset(time.perf_counter(), nimg(step))
        evaluated = evaluate is not None and (_due(step, every_eval) or done)
        if evaluated:
            run_evaluation()
        if _due(step, every_snap) and not done:
            save_snapshot(run_dir / "snapshots" / f"snapshot-{nimg(step):010d}")
        # Also after every evaluation: short runs (smoke presets) whose checkpoint interval
        # exceeds their length would otherwise checkpoint only at the end.
        if _due(step, every_ckpt) or done or evaluated:
            save_checkpoint()
        if on_step is not None:
            on_step(step, nimg(step))

    files = {"resume": str(resume_path)}
    final_path = save_snapshot(run_dir / "final" / "generator")
    if final_path is not None:
        files["generator"] = str(final_path)
    if best is not None:
        files["best"] = str(run_dir / "best" / "generator.json")
    seconds = time.perf_counter() - t_start
    summary = {"config_hash": run_hash, "method": method.name, "step": step, "kimg": nimg(step) / 1000,
               "evaluations": evaluations, "best": best, "files": files, "world_size": world,
               "seconds_this_call": seconds, "train_seconds": seconds_before + seconds}
    if is_main:
        write_log({"kind": "done", "step": step, "kimg": nimg(step) / 1000, "seconds": seconds})
        atomic_write_json(final_json, summary)
    dist_env.barrier()
    return TrainResult(method, ema.modules, generator_now(), run_dir, run_hash, step, nimg(step), evaluations, best,
                       seconds, seconds_before + seconds, resumed_from, files)
