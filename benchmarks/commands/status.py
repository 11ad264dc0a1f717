"""`onestep status SUITE`: state of each run of a suite in the store."""
from __future__ import annotations

import json

from ._suite_args import add_suite_arguments, store_root

NAME = "status"
HELP = "show each run of a suite: complete / running / failed / interrupted / pending"


def add_arguments(parser) -> None:
    add_suite_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print JSON records instead of a table")


def run(args) -> int:
    from onestep.benchmarks.runner import suite_table
    from onestep.benchmarks.store import ResultsStore
    from onestep.benchmarks.suites import expand_runs, load_suite

    suite = load_suite(args.suite)
    runs = expand_runs(suite, args.methods)
    store = ResultsStore(store_root(args))
    table = suite_table(runs, store)
    if args.json:
        print(json.dumps(json.loads(table.to_json(orient="records")), indent=2))
        return 0
    counts = table["state"].value_counts().to_dict() if len(table) else {}
    print(f"suite {suite.name} in {store.root}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    print(table.to_string(index=False))
    return 0
