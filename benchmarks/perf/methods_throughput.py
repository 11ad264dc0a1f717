"""Throughput of the distillation plugins (gdd, gdd-i, gdd+cd, cd, cd-i, sid, sida, dmd, dmd2).

Prints, per method and scale, images/s of one `step` (the loop's LoopContext, real batches) and
the step time as a multiple of one generator forward+backward at the same batch:

    python -m onestep.benchmarks.perf.methods_throughput --scale smoke
    python -m onestep.benchmarks.perf.methods_throughput --scale cifar10 --steps 2 --json out.json

Scales:
  smoke    digits 8x8 network-A teacher (random weights unless --teacher), digits feature net
           discriminator (the embedded default), batch 64.
  cifar10  EDM's 56M DDPM++ CIFAR-10 layout (random weights: timing only), VGG16-BN +
           EfficientNet-lite0 projected discriminator at 224 (random weights), LPIPS with a
           random backbone for CD, batch 8 on CPU.
  sid/sida at both scales: their own smoke preset at smoke scale (batch 64, micro-batch 32); at
           cifar10 scale batch 4 (one micro-batch), the 56M DDPM++ as teacher, fake score and G.
           sida is timed in its third phase (fake score + D, then SiD + adversarial generator loss).
           Peak memory: the process's peak RSS (each row measured in its own forked process).
Random weights change nothing about the cost; no quality number is produced here.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import time

import torch

from onestep.benchmarks.training import LoopContext, instantiate_method
from onestep.methods.plugin import Batch, DataSpec
from onestep.methods.zoo import build_network

VARIANTS = {  # label: (method, preset overrides)
    "gdd": ("gdd", {}),
    "gdd-i": ("gdd", {"method.freeze": "conv"}),
    "gdd+cd": ("gdd", {"method.cd_weight": 1.0}),
    "cd": ("cd", {}),
    "cd-i": ("cd", {"method.freeze": "conv"}),
    "sid": ("sid", {}),
    "sida": ("sida", {"method.fake_only_nimg": 0, "method.sid_only_nimg": 0}),  # phase 3 from the first step
    # DMD: a tiny paired dataset (built once by prepare, cached; its size does not change a step's cost)
    "dmd": ("dmd", {"method.pairs": 64, "method.pair_steps": 2, "method.pair_chunk": 64}),
    "dmd2": ("dmd2", {"method.fake_updates_per_generator": 5}),  # G on 1 step in 5: time >= 5 steps
}
SID_BATCH = {"smoke": 64, "cifar10": 4}  # issue 12: CIFAR-10 scale on CPU at batch 4


def _scale(name: str, random_features: bool):
    if name == "smoke":
        teacher = build_network("digits-8x8-cond")
        spec = DataSpec(8, 1, 10)
        common = {"method.teacher": "digits-8x8-cond"}
        cd_dist = "l2"
        gdd = {"method.discriminator.feature_networks": ["digits"], "method.discriminator.width_scale": 0.25}
        batch = 64
    else:
        teacher = build_network("edm-cifar10-32x32-uncond-vp")
        spec = DataSpec(32, 3, 0)
        common = {"method.teacher": "edm-cifar10-32x32-uncond-vp"}
        cd_dist = "lpips"
        gdd = {"method.discriminator.feature_networks": ["vgg16_bn", "efficientnet_lite0"],
               "method.discriminator.random_weights": random_features, "method.discriminator.width_scale": 1.0}
        batch = 8
    teacher.eval().requires_grad_(False)
    return teacher, spec, common, gdd, cd_dist, batch


def _ctx(batch: int, step: int) -> LoopContext:
    ctx = LoopContext(0, batch, torch.device("cpu"), "fp32", None, "perf")
    ctx.begin_step(step, step * batch)
    return ctx


def _generator_fwd_bwd(gen, spec: DataSpec, batch: int, repeats: int) -> float:
    z = torch.randn(batch, spec.channels, spec.resolution, spec.resolution)
    c = torch.nn.functional.one_hot(torch.arange(batch) % spec.label_dim, spec.label_dim).float() if spec.label_dim else None
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        gen(z, c).float().square().mean().backward()
        times.append(time.perf_counter() - t0)
    for p in gen.parameters():
        p.grad = None
    return min(times[1:]) if repeats else times[0]


def measure(scale: str, variants: list[str], steps: int, random_features: bool = True, log=print) -> list[dict]:
    teacher, spec, common, gdd_over, cd_dist, batch = _scale(scale, random_features)
    images = torch.rand(batch, spec.channels, spec.resolution, spec.resolution) * 2 - 1
    labels = torch.nn.functional.one_hot(torch.arange(batch) % spec.label_dim, spec.label_dim).float() if spec.label_dim else None
    rows = []
    for label in variants:
        name, extra = VARIANTS[label]
        b = SID_BATCH[scale] if name in ("sid", "sida") else batch
        over = {**common, **extra, "loop.batch_size": b}
        if name in ("sid", "sida"):
            over["method.batch_gpu"] = min(32, b)
        if name == "gdd":
            over.update(gdd_over)
        if name == "cd" or "cd_weight" in str(extra):
            key = "method.loss.distance" if name == "cd" else "method.cd.distance"
            over[key] = cd_dist
            over[key.replace("distance", "lpips_backbone")] = "random"
        if name == "dmd":
            over.update({"method.reg_distance": "lpips_piq" if cd_dist == "lpips" else cd_dist, "method.lpips_backbone": "random"})
        row = _in_child(_measure_one, name, over, teacher, spec, b, images[:b], None if labels is None else labels[:b],
                        steps)
        step_time, gen_time = row.pop("step_time"), row.pop("gen_time")
        row = {"scale": scale, "method": label, "batch": b, "steps": steps, "step_s": round(step_time, 4),
               "images_per_s": round(b / step_time, 2), "gen_fwd_bwd_s": round(gen_time, 4), **row,
               "step_over_gen_fwd_bwd": round(step_time / gen_time, 2),
               "weights": "random (timing only)"}
        rows.append(row)
        log(f"{scale:8s} {label:8s} batch {b:3d}  {row['images_per_s']:8.2f} img/s  step {step_time:7.3f}s  "
            f"= {row['step_over_gen_fwd_bwd']:5.2f} x G fwd+bwd ({gen_time:.3f}s)  peak RSS {row['peak_rss_mb']:.0f} MB")
    return rows


def _measure_one(name, over, teacher, spec, batch, images, labels, steps) -> dict:
    method, _ = instantiate_method(name, "smoke", over, teacher=teacher, data_spec=spec)
    method.prepare(_ctx(batch, 0))  # DMD's paired dataset; a no-op for the others
    gen_time = _generator_fwd_bwd(method.generator, spec, batch, repeats=max(1, steps - 1))
    data = Batch(images, labels, more=(Batch(images.flip(0), None if labels is None else labels.flip(0)),))
    times = []
    for s in range(steps + 1):  # first step is a warm-up (allocations, lazy init) and is dropped
        ctx = _ctx(batch, s)
        t0 = time.perf_counter()
        method.step(data, ctx)
        times.append(time.perf_counter() - t0)
    return {"step_time": sum(times[1:]) / steps, "gen_time": gen_time,
            "trainable_share": method.describe().get("trainable_share"),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _child(queue, fn, args):
    queue.put(fn(*args))


def _in_child(fn, *args) -> dict:
    """Run fn in a forked process so that its peak RSS is its own (ru_maxrss never decreases)."""
    mp = multiprocessing.get_context("fork")
    queue = mp.Queue()
    proc = mp.Process(target=_child, args=(queue, fn, args))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scale", choices=("smoke", "cifar10", "all"), default="smoke")
    p.add_argument("--methods", default=",".join(VARIANTS), help=f"comma list of {list(VARIANTS)}")
    p.add_argument("--steps", type=int, default=3, help="timed steps per method (after one warm-up step)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None, help="write the rows to this JSON file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = [v for v in args.methods.split(",") if v]
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        p.error(f"unknown method {bad[0]!r}; choose from {list(VARIANTS)}")
    rows = []
    for scale in (("smoke", "cifar10") if args.scale == "all" else (args.scale,)):
        rows += measure(scale, variants, args.steps)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
