"""`onestep run SUITE`: run a suite's runs here, one after another, with progress."""
from __future__ import annotations

import sys
import time

from ._suite_args import add_suite_arguments, load_suite_args, store_root

NAME = "run"
HELP = "run a suite locally (sequentially): train -> sample -> evaluate -> record"
DESCRIPTION = """Run every run of SUITE in this process. Complete runs are skipped, interrupted ones
resume from their checkpoints, failed ones are skipped unless --rerun-failed; --force re-runs
everything from scratch. Results land in the store (--store); a summary table is printed and
written to STORE/summaries/SUITE.csv.

CI regression gate:  onestep run smoke --check benchmarks/baselines/smoke.json
(exit 1 when a method's metric is worse than the baseline by more than its tolerance);
--update-baseline rewrites the baseline file from this run's results."""


def add_arguments(parser) -> None:
    add_suite_arguments(parser)
    parser.add_argument("--force", action="store_true", help="re-run complete runs from scratch")
    parser.add_argument("--rerun-failed", action="store_true", help="re-run runs that failed before")
    parser.add_argument("--device", default=None, help="cpu | cuda (default: cuda if available)")
    parser.add_argument("--check", metavar="BASELINE", default=None, help="compare final metrics with a baseline JSON")
    parser.add_argument("--update-baseline", action="store_true", help="rewrite the --check file from these results")


def run(args) -> int:
    from onestep.benchmarks import gate
    from onestep.benchmarks.runner import Pipeline, format_table, provenance, run_suite, suite_table
    from onestep.benchmarks.store import ResultsStore, StoreError
    from onestep.benchmarks.runner import resolve_device, setup_problems
    from onestep.benchmarks.suites import expand_runs

    if args.update_baseline and not args.check:
        print("onestep run: --update-baseline needs --check BASELINE (the file to write)", file=sys.stderr)
        return 2
    suite = load_suite_args(args.suite, args)
    runs = expand_runs(suite, args.methods)
    resolve_device(args.device)  # --device cuda on a CPU host: one line, before any work
    problems = setup_problems(suite)  # e.g. fewer seeds than n_samples: found before training
    if problems:
        for p in problems:
            print(f"onestep run: error: {p}", file=sys.stderr)
        return 2
    baseline = gate.load_baseline(args.check) if args.check and not args.update_baseline else None
    store = ResultsStore(store_root(args))
    try:
        store.check_writable()  # before any work starts
    except StoreError as e:
        print(f"onestep run: error: {e}", file=sys.stderr)
        return 2
    t0 = time.time()
    print(f"suite {suite.name}: {len(runs)} run(s) -> {store.root}", flush=True)
    outcome = run_suite(runs, store, Pipeline(args.device), force=args.force, rerun_failed=args.rerun_failed,
                        suite_name=suite.name, suite_spec=suite)
    table = suite_table(runs, store)
    print(f"\nsuite {suite.name} finished in {time.time() - t0:.1f}s; summary: {outcome.summary_csv}")
    print(format_table(table))
    elsewhere = [r for r in runs if outcome.states.get(r.run_id) == "running"]
    if elsewhere:
        print(f"onestep run: note: {len(elsewhere)} run(s) are being run by another process "
              f"({', '.join(r.label for r in elsewhere)}); they were not run here. The summary above is the "
              f"store's state now; `onestep status {suite.name}` shows it later (the last run to finish rewrites "
              f"the summary)", file=sys.stderr)
    code = 1 if outcome.failed else 0
    if args.check:
        if args.update_baseline:
            if outcome.failed or len(outcome.results) < len(runs):
                print("onestep run: not updating the baseline: some runs did not complete", file=sys.stderr)
                return 1
            prev = None
            try:
                prev = gate.load_baseline(args.check)
            except Exception:
                prev = None
            prov = provenance(runs[0]) if runs else {}
            prov = {k: prov[k] for k in ("git", "packages", "hardware")}
            prov["runs"] = {}
            for spec in runs:
                fin = store.run(spec.run_id).final() or {}
                prov["runs"][spec.label] = {"run_id": spec.run_id, "duration_s": fin.get("duration_s"), "ended": fin.get("ended")}
            new = gate.make_baseline(outcome.results, prev, prov, suite=suite.name)
            gate.write_baseline(args.check, new)
            print(f"baseline written: {args.check}")
        else:
            rows = gate.compare(outcome.results, baseline)
            print("\nregression gate vs " + str(args.check))
            print(gate.format_table(rows))
            bad = [r for r in rows if r.failed]
            if bad:
                print(f"GATE FAILED: {len(bad)} regressed or missing metric(s)", file=sys.stderr)
                code = 1
            else:
                print("gate passed")
    return code
