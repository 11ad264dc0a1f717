"""`onestep validate SUITE`: check a suite without running anything."""
from __future__ import annotations

import sys

NAME = "validate"
HELP = "check a suite (keys, methods, presets, sweep axes, files, resources) without running it"
DESCRIPTION = """Check suites without running them: keys, methods, presets, sweep axes, evaluation
seeds, the teacher/dataset/metric/discriminator weight files, and resources against a profile.

--dry-run also builds every run at its real architecture and takes one training step of each
method at a tiny batch (random weights stand in for missing files; each stand-in is listed),
so a shape error in a paper preset shows here, not after a cluster job starts. Missing files
are then warnings, not errors. --dry-run-device meta builds on PyTorch's meta device (shapes
only, no memory) for architectures too large for this machine's CPU.

  onestep validate gdd_cifar10 --dataset /data/cifar10-32x32.zip
  onestep validate --dry-run gdd_cifar10 gdd_imagenet64
"""


def add_arguments(parser) -> None:
    from ._suite_args import add_dataset_argument

    parser.add_argument("suite", nargs="+", help="suite name(s) or YAML path(s)")
    parser.add_argument("--profile", default=None, help="check resources against this profile (default: the suite's)")
    parser.add_argument("--no-files", action="store_true", help="skip checks of weights and data files")
    add_dataset_argument(parser)
    parser.add_argument("--dry-run", action="store_true",
                        help="also build every run at real architecture and take one training step per method")
    parser.add_argument("--dry-run-device", default="cpu", help="device of the dry run: cpu (default) or meta")
    parser.add_argument("--dry-run-batch", type=int, default=2, help="batch of the dry run's step (default 2)")


def run(args) -> int:
    from onestep.benchmarks.suites import validate_suite
    from onestep.methods.core.config import ConfigError

    from ._suite_args import load_suite_args

    if args.dry_run_batch <= 0:
        raise ConfigError(f"--dry-run-batch must be positive, got {args.dry_run_batch}")
    if args.dry_run_device not in ("cpu", "meta"):
        from onestep.benchmarks.runner import resolve_device

        resolve_device(args.dry_run_device)
    bad = 0
    for name in args.suite:
        try:
            suite = load_suite_args(name, args)
        except ConfigError as e:
            print(f"{name}: INVALID\n  error: {e}")
            bad += 1
            continue
        runs, errors, warnings = validate_suite(suite, check_files=not args.no_files, profile=args.profile)
        if args.dry_run and runs:
            # Missing files are stood in for by the dry run: report them, do not fail on them.
            files = [e for e in errors if _is_missing_file(e)]
            errors = [e for e in errors if e not in files]
            warnings = warnings + [f"(stood in for by the dry run) {e}" for e in files]
        print(f"{suite.name}: {'INVALID' if errors else 'ok'} ({len(runs)} run(s), profile {args.profile or suite.resources.profile})")
        for e in errors:
            print(f"  error: {e}")
        for w in warnings:
            print(f"  warning: {w}")
        if args.dry_run and runs and not _config_errors(errors):
            from onestep.benchmarks.dryrun import dry_run

            results = dry_run(runs, device=args.dry_run_device, batch=args.dry_run_batch,
                              log=lambda s: print(s, flush=True))
            failed = [r for r in results if not r.ok]
            if failed:
                print(f"  error: dry run failed for {len(failed)} of {len(results)} run(s): "
                      + ", ".join(r.label for r in failed))
                errors = errors + ["dry run"]
        bad += bool(errors)
    if bad:
        print(f"{bad} suite(s) invalid", file=sys.stderr)
    return 1 if bad else 0


_FILE_MARKERS = ("weights missing", "not found", "does not exist", "no path given", "weights file")


def _is_missing_file(error: str) -> bool:
    return any(m in error for m in _FILE_MARKERS)


def _config_errors(errors: list[str]) -> list[str]:
    """Errors that make building the runs pointless (the rest: resources, published entries)."""
    return [e for e in errors if "GPU(s)" not in e and "published entry" not in e]
