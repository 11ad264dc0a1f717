"""`onestep analyze NAME`: run an analysis plugin into the results store."""
from __future__ import annotations

import json

NAME = "analyze"
HELP = "run a mechanism analysis (rel-FID, frequency, activations, freezing) into the results store"


def _description() -> str:
    try:
        from onestep.benchmarks.analyses import available_analyses

        listing = "\n".join(f"  {n:<12} {cls.title}\n  {'':<12} presets: {', '.join(cls.presets)}"
                            for n, cls in available_analyses().items())
    except Exception as e:  # the help must still print
        listing = f"  (analyses could not be listed: {e})"
    return f"""Run an analysis plugin (onestep.benchmarks.analyses) into a run directory of the store:
figures (PNG), data (CSV) and final.json (kind "analysis": title, summary, claims, files).
A complete analysis is skipped; an interrupted one resumes from its finished stages and the
trainings' checkpoints.

Analyses:
{listing}

  onestep analyze relfid --preset smoke
  onestep analyze frequency --preset digits --store results
  onestep analyze freezing --set n_samples=500
"""


DESCRIPTION = "Run an analysis plugin into the results store; `onestep analyze --help` lists them."


def add_arguments(parser) -> None:
    import sys

    if "analyze" in sys.argv[1:3]:  # the listing imports the plugins (torch): only for this command
        parser.description = _description()
    parser.add_argument("name", nargs="?", help="the analysis to run (omit to list them)")
    parser.add_argument("--preset", default="smoke", help="preset of the analysis (default: smoke)")
    parser.add_argument("--store", default=None, help="results store directory (default: $ONESTEP_STORE or ./results)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a Config field (VALUE is JSON, else a string); repeatable")
    parser.add_argument("--device", default=None, help="cpu / cuda (default: cuda if available)")
    parser.add_argument("--force", action="store_true", help="discard a previous run of the same config")


def _parse_set(items: list[str]) -> dict:
    from onestep.methods.core.config import ConfigError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected FIELD=VALUE, e.g. --set n_samples=500")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def run(args) -> int:
    from onestep.benchmarks.analyses import available_analyses, execute_analysis
    from onestep.benchmarks.runner import default_store_root

    if not args.name:
        for n, cls in available_analyses().items():
            print(f"{n:<12} {cls.title}  [presets: {', '.join(cls.presets)}]")
        return 0
    state, run = execute_analysis(args.name, args.preset, _parse_set(args.set), args.store or default_store_root(),
                                  device=args.device, force=args.force)
    print(f"{state}: {run.path}")
    return 0 if state == "complete" else 1
