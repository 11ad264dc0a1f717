"""`onestep teacher`: train (or reuse) an embedded digits teacher and look at its samples."""
from __future__ import annotations

import json
import sys
import time

NAME = "teacher"
HELP = "train or reuse a cached digits teacher and write a Heun sample grid"
DESCRIPTION = """Digits teachers are trained by the suite itself (the `edm` method presets) and
cached under $ONESTEP_CACHE/teachers/<name>-<config hash>/; a second call reuses them.

  onestep teacher train --preset digits          # ~2 min on 2 CPU cores the first time
  onestep teacher train --preset digits --set loop.total_kimg=51.2
  onestep teacher list
"""


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    t = sub.add_parser("train", help="train (or reuse) a digits teacher and write a sample grid")
    t.add_argument("--preset", default="digits", help="digits teacher name (see `onestep teacher list`)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override, e.g. loop.total_kimg=51.2 or method.lr=1e-3 (repeatable; value is JSON)")
    t.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    t.add_argument("--grid", default=None, help="sample grid PNG path (default: <teacher dir>/samples-heun18.png)")
    t.add_argument("--steps", type=int, default=18, help="Heun steps for the grid (default: 18, EDM's)")
    sub.add_parser("list", help="list the digits teachers and whether they are cached")


def _parse_sets(items: list[str]) -> dict:
    from onestep.methods.core.config import ConfigError

    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE, got '{item}'")
        key, raw = item.split("=", 1)
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def run(args) -> int:
    from onestep.benchmarks import teachers
    from onestep.methods.checkpoints import load_network

    if args.action == "list":
        for name, spec in teachers.DIGITS_TEACHERS.items():
            plan = teachers.plan_digits_teacher(name)
            cached = teachers.teacher_checkpoint(plan).with_suffix(".json").is_file()
            print(f"{name:15s} preset {spec.preset:14s} {spec.resolution}x{spec.resolution} "
                  f"{'cond' if spec.conditional else 'uncond':6s} {'cached' if cached else 'not trained'}  {plan.directory}")
        return 0
    overrides = _parse_sets(args.set)
    t0 = time.perf_counter()
    ckpt, info = teachers.train_digits_teacher(args.preset, overrides, device=args.device)
    took = time.perf_counter() - t0
    state = "reused cached teacher" if info.get("cached") else "trained teacher"
    print(f"{state} '{args.preset}' in {took:.1f} s (training took {info.get('train_seconds', 0):.1f} s, "
          f"{info.get('steps')} steps, {info.get('kimg')} kimg): {info['path']}")
    net = load_network(ckpt, args.device)
    grid = args.grid or str(ckpt.parent / f"samples-heun{args.steps}.png")
    t1 = time.perf_counter()
    path = teachers.sample_grid(net, grid, steps=args.steps, device=args.device)
    print(f"Heun-{args.steps} sample grid ({time.perf_counter() - t1:.1f} s): {path}")
    sys.stdout.flush()
    return 0
