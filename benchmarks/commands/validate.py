"""`onestep validate SUITE`: check a suite without running anything."""
from __future__ import annotations

import sys

NAME = "validate"
HELP = "check a suite (keys, methods, presets, sweep axes, files, resources) without running it"


def add_arguments(parser) -> None:
    parser.add_argument("suite", nargs="+", help="suite name(s) or YAML path(s)")
    parser.add_argument("--profile", default=None, help="check resources against this profile (default: the suite's)")
    parser.add_argument("--no-files", action="store_true", help="skip checks of weights and data files")


def run(args) -> int:
    from onestep.benchmarks.suites import load_suite, validate_suite
    from onestep.methods.core.config import ConfigError

    bad = 0
    for name in args.suite:
        try:
            suite = load_suite(name)
        except ConfigError as e:
            print(f"{name}: INVALID\n  error: {e}")
            bad += 1
            continue
        runs, errors, warnings = validate_suite(suite, check_files=not args.no_files, profile=args.profile)
        print(f"{suite.name}: {'INVALID' if errors else 'ok'} ({len(runs)} run(s), profile {args.profile or suite.resources.profile})")
        for e in errors:
            print(f"  error: {e}")
        for w in warnings:
            print(f"  warning: {w}")
        bad += bool(errors)
    if bad:
        print(f"{bad} suite(s) invalid", file=sys.stderr)
    return 1 if bad else 0
