"""`onestep sweep SUITE --profile NAME`: submit a suite's runs as one job array, without waiting."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from ._suite_args import add_suite_arguments, load_suite_args, store_root

NAME = "sweep"
HELP = "submit a suite's runs as a job array (Slurm/local/debug profile); prints job ids"
DESCRIPTION = """Expand SUITE into runs, skip those already complete in the store, snapshot the code
into the sweep folder (jobs import from the snapshot, so later edits do not change queued runs)
and submit one job array with the executor of --profile. Returns at once; follow progress with
`onestep status SUITE`."""


def add_arguments(parser) -> None:
    add_suite_arguments(parser)
    parser.add_argument("--profile", default=None, help="environments/profiles/NAME.yaml or a path (default: the suite's)")
    parser.add_argument("--folder", type=Path, default=None, help="sweep folder for logs and the code snapshot (default: STORE/sweeps/SUITE-TIME)")
    parser.add_argument("--force", action="store_true", help="submit complete runs too (they are re-run from scratch)")
    parser.add_argument("--device", default=None, help="device inside the jobs (default: cuda if available)")
    parser.add_argument("--no-files", action="store_true",
                        help="skip the pre-flight checks of weights and data files (they must exist where the jobs run)")


def run(args) -> int:
    from onestep.benchmarks.runner import submit_runs
    from onestep.benchmarks.store import ResultsStore, StoreError
    from onestep.benchmarks.suites import validate_suite

    suite = load_suite_args(args.suite, args)
    profile = args.profile or suite.resources.profile
    runs, errors, warnings = validate_suite(suite, check_files=not args.no_files, profile=profile)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    if errors:
        for e in errors:
            print(f"onestep sweep: error: {e}", file=sys.stderr)
        if not args.no_files:
            print("onestep sweep: nothing submitted. Files that exist only where the jobs run: pass --no-files; "
                  f"`onestep validate --dry-run {args.suite}` checks the rest here", file=sys.stderr)
        return 2
    if args.methods:
        runs = [r for r in runs if r.method in args.methods]
    store = ResultsStore(store_root(args))
    try:
        store.check_writable()
    except StoreError as e:
        print(f"onestep sweep: error: {e}", file=sys.stderr)
        return 2
    if args.force:
        for r in runs:
            store.run(r.run_id).wipe()
    todo = [r for r in runs if store.run(r.run_id).state().state not in ("complete", "running")]
    skipped = len(runs) - len(todo)
    if not todo:
        print(f"suite {suite.name}: all {len(runs)} run(s) complete or running; nothing to submit")
        return 0
    folder = Path(args.folder or store.root / "sweeps" / f"{suite.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    existed = folder.exists()
    try:
        jobs = submit_runs(todo, store.root, profile, folder, device=args.device)
    except BaseException:
        if not existed:  # a refused submission leaves no sweep folder behind
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
        raise
    print(f"suite {suite.name}: submitted {len(jobs)} run(s) ({skipped} skipped) with profile {profile}; folder {folder}")
    for job, spec in zip(jobs, todo):
        print(f"{job.job_id}\t{spec.run_id}\t{spec.label}")
    from onestep.environments.executors import load_profile

    if load_profile(profile).executor == "debug":
        # The debug executor runs a job only when its result is asked for: run them now, here.
        failed = 0
        for job, spec in zip(jobs, todo):
            try:
                job.result()
            except Exception as e:  # recorded in the run directory
                failed += 1
                print(f"{spec.label}: failed: {e}", file=sys.stderr)
        return 1 if failed else 0
    return 0
