"""`onestep dmd-pairs`: build DMD's paired dataset {z, teacher Heun output} ahead of training,
optionally split over a job array (each task takes every N-th chunk; the last to finish merges)."""
from __future__ import annotations

import os

NAME = "dmd-pairs"
HELP = "generate (part of) DMD's cached paired dataset, e.g. one task of a Slurm job array"
DESCRIPTION = """The dataset a `dmd` preset's training would build in prepare(), under the same
cache key ($ONESTEP_CACHE/methods/dmd/pairs/<key>), so a later run finds it complete.

  onestep dmd-pairs --teacher edm-cifar10-32x32-uncond-vp --preset cifar10-uncond --device cuda
  sbatch --array=0-7 --wrap 'onestep dmd-pairs --teacher ... --preset cifar10-uncond --device cuda'
        (task index/count default to SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT)
"""


def add_arguments(parser) -> None:
    parser.add_argument("--teacher", required=True, help="teacher: digits name, EDM .pkl, checkpoint or preset")
    parser.add_argument("--preset", default="smoke", help="dmd preset whose pair settings to use (default: smoke)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="dotted override of the dmd config, e.g. method.pairs=1000 (repeatable)")
    parser.add_argument("--task-index", type=int, default=int(os.environ.get("SLURM_ARRAY_TASK_ID", 0)))
    parser.add_argument("--task-count", type=int, default=int(os.environ.get("SLURM_ARRAY_TASK_COUNT", 1)))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=None, help="teacher sampler batch (default: the config's pair_batch)")


def run(args) -> int:
    from onestep.benchmarks.commands.teacher import _parse_sets
    from onestep.benchmarks.teachers import load_teacher
    from onestep.benchmarks.training.build import resolve_config
    from onestep.methods.core.config import build_config
    from onestep.methods.plugin import get_method
    from onestep.methods.plugins.dmd import pair_spec_for, pairs_root
    from onestep.methods.teacher_pairs import TeacherPairs

    resolved = resolve_config("dmd", args.preset, _parse_sets(args.set))
    cfg = build_config(get_method("dmd").Config, resolved.method, where="dmd.method")
    teacher = load_teacher(args.teacher, args.device)
    pairs = TeacherPairs(pair_spec_for(cfg, teacher), pairs_root())
    done = pairs.build(teacher, args.device, args.batch or cfg.pair_batch, args.task_index, args.task_count)
    left = len(pairs.missing_chunks()) if not done else 0
    print(f"{pairs.dir}: {'complete' if done else f'{left} chunks left for other tasks'}")
    return 0
