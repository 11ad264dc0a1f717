"""Arguments shared by the suite commands (run, sweep, status, validate)."""
from __future__ import annotations

from pathlib import Path


def add_suite_arguments(parser, store: bool = True) -> None:
    parser.add_argument("suite", help="suite name (benchmarks/suites/NAME.yaml) or path to a suite YAML")
    parser.add_argument("--method", action="append", dest="methods", metavar="NAME",
                        help="only this method (repeatable)")
    if store:
        parser.add_argument("--store", type=Path, default=None,
                            help="results store directory (default: $ONESTEP_STORE or ./results)")


def store_root(args) -> Path:
    from onestep.benchmarks.runner import default_store_root

    return Path(args.store) if args.store else default_store_root()
