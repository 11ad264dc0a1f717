"""`onestep report`: render the results store as a static HTML leaderboard (+ CSV/JSON)."""
from __future__ import annotations

import sys
from pathlib import Path

NAME = "report"
HELP = "render the results store as an HTML leaderboard with plots, sample grids, CSV and JSON"
DESCRIPTION = """Render the store as one self-contained OUT/index.html (images embedded; opens from
file:// without network): the leaderboard per dataset x conditioning x metric with verdicts,
every table of the five papers (benchmarks/paper_tables/) with each reproduced cell beside
its published value and the command that would run the rest, per-suite tables with
convergence plots and sample grids, and the runs' provenance. Every table is also written as
OUT/tables/<id>.{csv,json,tex}; the per-run leaderboard as OUT/leaderboard.{csv,json}. Metrics
from untrained (random) feature networks are marked UNTRAINED everywhere and get no verdict.

  onestep report                          # ./results -> ./results/report
  onestep report --verdict fid=3%,0.05    # a stricter FID rule
  onestep report --store /shared/results --suite gdd_cifar10 --out /www/gdd"""


def add_arguments(parser) -> None:
    parser.add_argument("--store", type=Path, default=None, help="results store directory (default: $ONESTEP_STORE or ./results)")
    parser.add_argument("--suite", action="append", dest="suites", metavar="SUITE",
                        help="only this suite (name or YAML path; repeatable); default: every suite in the store")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: STORE/report)")
    parser.add_argument("--verdict", action="append", default=[], metavar="METRIC=REL%,ABS",
                        help="verdict rule for a metric, e.g. fid=5%%,0.1 (within 5%% or 0.1); repeatable")


def _suite_info(name_or_path: str, expand: bool) -> tuple[str, dict]:
    """(suite name, {description, published, metrics, expected}) from a suite file. The
    expected runs (to show those not started yet) need the method registry; without it the
    report still lists the runs found in the store."""
    from onestep.benchmarks.suites import expand_runs, load_suite
    from onestep.methods.core.config import ConfigError

    from onestep.benchmarks.suites import published_entries

    suite = load_suite(name_or_path)
    info = {
        "description": suite.description,
        "published": published_entries(suite),  # a bad selector: ConfigError, named with the suite
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
            except ConfigError as e:
                suites[name] = {"missing_file": f"suite '{name}': {e}; no published numbers to compare with"}
    # Every suite file's published cells, so a paper cell no run reproduces yet names its suite.
    from onestep.benchmarks.paper_tables import load as load_paper_tables
    from onestep.benchmarks.suites import available_suites
    from onestep.reports.verdicts import RuleError, parse_rule

    all_suites = dict(suites)
    for name in available_suites():
        if name not in all_suites:
            try:
                all_suites.update([_suite_info(name, expand=False)])
            except ConfigError as e:
                print(f"onestep report: warning: suite {name}: {e}", file=sys.stderr)
    try:
        rules = dict(parse_rule(r) for r in args.verdict)
    except RuleError as e:
        print(f"onestep report: error: --verdict: {e}", file=sys.stderr)
        return 2
    states = {s.run_id: (s.state, s.detail) for s in store.states()}
    try:
        result = build_report(root, args.out, suites=suites, only_suites=only, states=states, better=_direction, log=print,
                              paper_tables=load_paper_tables(), rules=rules, all_suites=all_suites)
    except ReportError as e:
        print(f"onestep report: error: {e}", file=sys.stderr)
        return 2
    if result.message:
        print(result.message)
    print(f"report: {result.html}")
    return 0
