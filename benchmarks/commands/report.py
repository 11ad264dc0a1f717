"""`onestep report`: render the results store as a static HTML leaderboard (+ CSV/JSON)."""
from __future__ import annotations

import sys
from pathlib import Path

NAME = "report"
HELP = "render the results store as an HTML leaderboard with plots, sample grids, CSV and JSON"
DESCRIPTION = """Render every run in the store (or only those of --suite) as OUT/index.html, with
convergence plots and sample grids next to it and the same leaderboard as OUT/leaderboard.csv
and OUT/leaderboard.json. Published numbers come from the suites' `published:` sections and
are shown next to the reproduced ones with the difference and any protocol mismatch; metrics
from untrained (random) feature networks are marked UNTRAINED everywhere.

  onestep report                          # ./results -> ./results/report
  onestep report --store /shared/results --suite gdd_cifar10 --out /www/gdd"""


def add_arguments(parser) -> None:
    parser.add_argument("--store", type=Path, default=None, help="results store directory (default: $ONESTEP_STORE or ./results)")
    parser.add_argument("--suite", action="append", dest="suites", metavar="SUITE",
                        help="only this suite (name or YAML path; repeatable); default: every suite in the store")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: STORE/report)")


def _suite_info(name_or_path: str, expand: bool) -> tuple[str, dict]:
    """(suite name, {description, published, metrics, expected}) from a suite file. The
    expected runs (to show those not started yet) need the method registry; without it the
    report still lists the runs found in the store."""
    from onestep.benchmarks.suites import expand_runs, load_suite
    from onestep.methods.core.config import ConfigError, to_dict

    suite = load_suite(name_or_path)
    info = {
        "description": suite.description,
        "published": [to_dict(p) for p in suite.published],
        "metrics": list(suite.evaluation.metrics),
    }
    if expand:
        try:
            info["expected"] = [
                {"run_id": r.run_id, "label": r.label, "method": r.method, "preset": r.preset,
                 "sweep_point": r.sweep_point, "dataset": _dataset_text(r.dataset)}
                for r in expand_runs(suite)
            ]
        except (ConfigError, ImportError) as e:
            info["missing_file"] = f"runs of this suite not started yet cannot be listed: {e}"
    return suite.name, info


def _dataset_text(ds: dict) -> str:
    from onestep.reports.leaderboard import dataset_name

    return dataset_name({"dataset": ds})


def _direction(metric: str) -> str | None:
    """'lower' | 'higher' by the regression gate's rule; None when the name does not say."""
    from onestep.benchmarks.gate import better_direction
    from onestep.methods.core.config import ConfigError

    try:
        return better_direction(metric)
    except ConfigError:
        return None


def run(args) -> int:
    from onestep.benchmarks.runner import default_store_root
    from onestep.benchmarks.store import ResultsStore
    from onestep.methods.core.config import ConfigError
    from onestep.reports import ReportError, build_report

    root = Path(args.store) if args.store else default_store_root()
    store = ResultsStore(root)
    if not root.is_dir():
        print(f"onestep report: error: results store {root} does not exist; pass --store DIR "
              f"(the folder `onestep run` / `onestep sweep` wrote to)", file=sys.stderr)
        return 2
    # Published numbers: from the suites named on the command line, else from the suite files
    # of every suite that has runs in the store (a suite without a file has none).
    suites: dict[str, dict] = {}
    only = None
    if args.suites:
        only = []
        for s in args.suites:
            name, info = _suite_info(s, expand=True)  # an unknown suite: ConfigError -> exit 2
            suites[name] = info
            only.append(name)
    else:
        configs = [store.run(i).config() for i in store.run_ids()]
        names = sorted({c.get("suite") for c in configs if isinstance(c, dict) and isinstance(c.get("suite"), str)})
        for name in names:
            try:
                suites.update([_suite_info(name, expand=False)])
            except ConfigError:
                suites[name] = {"missing_file": f"no suite file for '{name}': no published numbers to compare with"}
    states = {s.run_id: (s.state, s.detail) for s in store.states()}
    try:
        result = build_report(root, args.out, suites=suites, only_suites=only, states=states, better=_direction, log=print)
    except ReportError as e:
        print(f"onestep report: error: {e}", file=sys.stderr)
        return 2
    if result.message:
        print(result.message)
    print(f"report: {result.html}")
    return 0
