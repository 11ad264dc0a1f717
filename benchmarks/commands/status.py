"""`onestep status SUITE`: state of each run of a suite in the store."""
from __future__ import annotations

import json

from ._suite_args import add_suite_arguments, load_suite_args, store_root

NAME = "status"
HELP = "show each run of a suite: complete / running / failed / interrupted / pending"


def add_arguments(parser) -> None:
    add_suite_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print JSON records instead of a table")


def run(args) -> int:
    from onestep.benchmarks.runner import format_table, suite_table
    from onestep.benchmarks.store import ResultsStore
    from onestep.benchmarks.suites import expand_runs
    from onestep.methods.core.config import ConfigError

    suite = load_suite_args(args.suite, args)
    runs = expand_runs(suite, args.methods)
    store = ResultsStore(store_root(args))
    if not store.runs_dir.is_dir():  # a typo in --store must not read as "every run pending"
        raise ConfigError(f"no results store at {store.root} (no {store.runs_dir.name}/ folder); pass --store DIR where "
                          f"`onestep run`/`sweep` wrote, or run the suite first (onestep run {suite.name})")
    table = suite_table(runs, store)
    if args.json:
        print(json.dumps(json.loads(table.to_json(orient="records")), indent=2))
        return 0
    counts = table["state"].value_counts().to_dict() if len(table) else {}
    print(f"suite {suite.name} in {store.root}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    print(format_table(table))
    return 0
