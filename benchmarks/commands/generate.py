"""`onestep generate`: images from a network, one per seed (a drop-in for EDM's generate.py)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

NAME = "generate"
HELP = "generate images (one per seed) from a denoiser with a solver, or from a one-step generator"
DESCRIPTION = """\
Generate images from --network: an EDM pickle (.pkl), an onestep checkpoint (NAME, NAME.json or
NAME.safetensors) or a network preset. A denoiser is sampled with --solver/--steps (default
EDM's Heun sampler, 18 steps, 35 NFE); a saved one-step generator is called once per image.
Image i depends only on seed i, so any batch size gives identical files.

examples:
  onestep generate --network edm-cifar10-32x32-cond-vp --seeds 0-49999 --outdir out --subdirs
  onestep generate --network runs/gdd/generator.json --seeds 0-999 --format npz --outdir samples.npz
  onestep generate --network teacher.json --seeds 0-63 --solver dpm_solver_pp_3m --steps 10 --afs \\
      --outdir out --grid grid.png
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--network", required=True, metavar="PATH_OR_PRESET", help="network checkpoint or preset name")
    p.add_argument("--seeds", default="0-63", help="seeds, e.g. 0-49999 or 0,5,7-9 (default: 0-63)")
    p.add_argument("--outdir", required=True, help="output folder (png), or FILE.npz / folder for --format npz")
    p.add_argument("--steps", type=int, default=None, help="solver steps (noise levels; default 18)")
    p.add_argument("--solver", default=None, help="euler, heun (default), dpm_solver_2, dpm_solver_pp_3m")
    p.add_argument("--class", dest="class_idx", type=int, default=None, metavar="N", help="generate class N only")
    p.add_argument("--subdirs", action="store_true", help="group files by thousands of seeds (EDM layout)")
    p.add_argument("--batch", type=int, default=64, help="maximum batch size (default 64)")
    p.add_argument("--format", dest="fmt", choices=("png", "npz"), default="png", help="output format (default png)")
    p.add_argument("--grid", default=None, metavar="FILE.png", help="also write a grid of the first images")
    p.add_argument("--grid-nrow", type=int, default=None, help="images per grid row (default: square)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--afs", action="store_true", default=None, help="analytical first step (paper 004): one NFE less")
    p.add_argument("--S-churn", dest="S_churn", type=float, default=None, help="EDM stochasticity (heun only)")
    p.add_argument("--S-min", dest="S_min", type=float, default=None)
    p.add_argument("--S-max", dest="S_max", type=float, default=None)
    p.add_argument("--S-noise", dest="S_noise", type=float, default=None)
    p.add_argument("--summary", default=None, metavar="FILE.json", help="write the run summary as JSON")
    p.add_argument("--json", action="store_true", help="print the run summary as one JSON line on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress line")


GRID_MAX = 256  # images in a --grid at most


def run(args: argparse.Namespace) -> int:
    from onestep.benchmarks.runner import resolve_device
    from onestep.environments import distributed as dist

    from ._checks import check_output_dir, check_output_file, check_positive

    # Refused here, before the network is loaded or an image generated.
    resolve_device(args.device)
    check_positive(args.batch, "--batch", " of images per batch")
    check_positive(args.grid_nrow, "--grid-nrow")
    if args.fmt == "npz" and Path(args.outdir).suffix == ".npz":
        check_output_file(args.outdir, "--outdir")
    else:
        check_output_dir(args.outdir, "--outdir")
    check_output_file(args.grid, "--grid")
    check_output_file(args.summary, "--summary")
    args.network = resolve_network_name(args.network)

    # Under torchrun/srun with several tasks every rank takes every world_size-th batch (EDM).
    with dist.distributed(args.device) as (env, device):
        return _generate(args, device, env.rank, env.world_size)


def _generate(args: argparse.Namespace, device, rank: int, world_size: int) -> int:
    from onestep.benchmarks.generate import generate_images, load_png_images, save_image_grid
    from onestep.benchmarks.sampling import parse_seeds
    from onestep.environments import distributed as dist
    from onestep.methods.checkpoints import CheckpointError
    from onestep.methods.core.atomic import atomic_write_json
    from onestep.methods.solvers import load_generator

    options = {k: getattr(args, k) for k in ("afs", "S_churn", "S_min", "S_max", "S_noise") if getattr(args, k) is not None}
    quiet = args.quiet or rank != 0
    try:
        seeds = parse_seeds(args.seeds)
        G = load_generator(args.network, solver=args.solver, steps=args.steps, device=device, **options)
        out = Path(args.outdir)
        npz_path = out if (args.fmt == "npz" and out.suffix == ".npz") else None
        if not quiet:
            print(f"generating {len(seeds)} images from '{args.network}' ({type(G).__name__}, "
                  f"{getattr(G, 'nfe', '?')} NFE) to '{out}'" + (f" on {world_size} processes" if world_size > 1 else ""),
                  file=sys.stderr)
        local_grid = args.grid if world_size == 1 else None
        summary = generate_images(G, seeds, out, fmt=args.fmt, npz_path=npz_path, subdirs=args.subdirs,
                                  batch_size=args.batch, device=device, class_idx=args.class_idx, grid=local_grid,
                                  grid_nrow=args.grid_nrow, progress=not quiet, rank=rank, world_size=world_size)
        dist.barrier()
        if world_size > 1 and args.grid and rank == 0:
            summary["grid"] = str(save_image_grid(load_png_images(out, seeds[:GRID_MAX], args.subdirs), args.grid,
                                                  args.grid_nrow))
    except (CheckpointError, ValueError, TypeError, FileNotFoundError, FloatingPointError) as e:
        print(f"onestep generate: error: {e}", file=sys.stderr)
        return 2
    if rank != 0:
        return 0
    summary.update(network=str(args.network), generator=getattr(G, "record", lambda: {"kind": "network"})(),
                   seeds=args.seeds, num_images=len(seeds), world_size=world_size)
    if args.summary:
        atomic_write_json(args.summary, summary)
    if args.json:
        print(json.dumps(summary, sort_keys=True, default=str))
    elif not quiet:
        print(f"wrote {summary['num_images']} images to {summary.get('npz') or summary.get('outdir')}"
              + (f"; grid {summary['grid']}" if summary.get("grid") else ""), file=sys.stderr)
    return 0


def resolve_network_name(name: str) -> str:
    """A digits teacher name (`--network digits`) -> its cached checkpoint; anything else unchanged.
    ConfigError when that teacher is not trained yet, with the command that trains it."""
    from onestep.benchmarks import teachers
    from onestep.methods.core.config import ConfigError

    if name not in teachers.DIGITS_TEACHERS or Path(name).exists():
        return name
    ckpt = teachers.teacher_checkpoint(teachers.plan_digits_teacher(name))
    if not ckpt.with_suffix(".json").is_file():
        raise ConfigError(f"--network {name}: the digits teacher '{name}' is not trained yet here; train it with "
                          f"`onestep teacher train --preset {name}` (about 2 minutes on a CPU), or give a checkpoint path")
    return str(ckpt.with_suffix(".json"))
