"""Overhead of the training loop over the bare `method.step`, and teacher training throughput.

    python -m onestep.benchmarks.perf.loop_overhead                 # edm digits preset, 60 steps
    python -m onestep.benchmarks.perf.loop_overhead --steps 100 --repeats 3 --json out.json

Bare: ctx.begin_step + real batch + method.step, nothing else. Full: `train(...)` for the
same number of steps of the same preset: EMA every step, a JSONL log tick and progress line,
resume checkpoints and the final EMA snapshot (all amortized over the run). Runs alternate
bare/full so load from other processes hits both alike; medians and minima (the least
disturbed runs) are reported. Target: full /
bare < 1.05.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time

import torch


def _setup(method_name: str, preset: str, steps: int, overrides: dict):
    from onestep.benchmarks.datasets import load_digits
    from onestep.benchmarks.training import data_spec_of, instantiate_method

    data = load_digits()
    method, loop = instantiate_method(method_name, preset, overrides, data_spec=data_spec_of(data))
    loop.total_kimg = steps * loop.batch_size / 1000
    return method, loop, data


def bare_seconds_per_step(method_name, preset, steps, overrides) -> float:
    from onestep.benchmarks.training import LoopContext, ShardedBatches

    method, loop, data = _setup(method_name, preset, steps, overrides)
    ctx = LoopContext(loop.seed, loop.batch_size, torch.device("cpu"), loop.precision, loop.grad_clip, method.name)
    method.prepare(ctx)
    batches = ShardedBatches(data, loop.batch_size, loop.seed)
    t0 = time.perf_counter()
    for step in range(steps):
        ctx.begin_step(step, step * loop.batch_size)
        method.step(batches.batch(step), ctx)
    return (time.perf_counter() - t0) / steps


def full_seconds_per_step(method_name, preset, steps, overrides) -> float:
    from onestep.benchmarks.training import train

    method, loop, data = _setup(method_name, preset, steps, overrides)
    with tempfile.TemporaryDirectory() as run_dir:
        t0 = time.perf_counter()
        train(method, data, loop, run_dir, log=lambda s: None)
        return (time.perf_counter() - t0) / steps


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", default="edm")
    p.add_argument("--preset", default="digits")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from onestep.methods.plugin import get_method

    # Keep the preset's checkpoint/log intervals: that is the amortization a real run sees.
    overrides: dict = {}
    bare, full = [], []
    for r in range(args.repeats):
        bare.append(bare_seconds_per_step(args.method, args.preset, args.steps, overrides))
        full.append(full_seconds_per_step(args.method, args.preset, args.steps, overrides))
        print(f"repeat {r + 1}/{args.repeats}: bare {bare[-1] * 1000:8.1f} ms/step   full loop {full[-1] * 1000:8.1f} "
              f"ms/step", file=sys.stderr, flush=True)
    b, f = statistics.median(bare), statistics.median(full)
    b_min, f_min = min(bare), min(full)  # the least-disturbed runs: the best estimate on a shared machine
    batch = get_method(args.method).presets[args.preset]["loop"]["batch_size"]
    result = {"method": args.method, "preset": args.preset, "steps": args.steps, "repeats": args.repeats,
              "threads": torch.get_num_threads(), "bare_ms_per_step": b * 1000, "full_ms_per_step": f * 1000,
              "ratio_full_over_bare": f / b, "bare_ms_min": b_min * 1000, "full_ms_min": f_min * 1000,
              "ratio_of_minima": f_min / b_min, "target_ratio": 1.05, "batch_size": batch,
              "training_images_per_s": batch / f}
    print(f"{'':24s}{'bare step':>14s}{'full loop':>14s}{'ratio':>8s}")
    print(f"{args.method + ' ' + args.preset + ' median':24s}{b * 1000:11.1f} ms{f * 1000:11.1f} ms{f / b:8.3f}  (target < 1.05)")
    print(f"{args.method + ' ' + args.preset + ' best':24s}{b_min * 1000:11.1f} ms{f_min * 1000:11.1f} ms{f_min / b_min:8.3f}")
    print(f"teacher training throughput: {batch / f:.1f} images/s ({torch.get_num_threads()} threads, batch {batch})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
