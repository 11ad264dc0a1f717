"""Arguments shared by the suite commands (run, sweep, status, validate)."""
from __future__ import annotations

from pathlib import Path


def add_suite_arguments(parser, store: bool = True) -> None:
    parser.add_argument("suite", help="suite name (benchmarks/suites/NAME.yaml) or path to a suite YAML")
    parser.add_argument("--method", action="append", dest="methods", metavar="NAME",
                        help="only this method (repeatable)")
    add_dataset_argument(parser)
    if store:
        parser.add_argument("--store", type=Path, default=None,
                            help="results store directory (default: $ONESTEP_STORE or ./results)")


def add_dataset_argument(parser) -> None:
    parser.add_argument("--dataset", default=None, metavar="PATH",
                        help="the suite dataset's files (folder, zip or .npz), overriding dataset.path; without it "
                             "a suite's null path is looked up by name in $ONESTEP_DATASETS. Part of the run "
                             "identity: give the same --dataset to run, sweep and status")


def load_suite_args(name: str, args):
    """The suite with the command line's --dataset applied (ConfigError when it does not exist)."""
    from onestep.benchmarks.suites import load_suite
    from onestep.methods.core.config import ConfigError

    suite = load_suite(name)
    path = getattr(args, "dataset", None)
    if path:
        if suite.dataset.name == "digits":
            raise ConfigError(f"--dataset: suite {suite.name} uses the embedded digits dataset, which takes no path")
        if not Path(path).expanduser().exists():
            raise ConfigError(f"--dataset {path}: no such file or folder; give the dataset's image folder, zip or .npz")
        suite.dataset.path = str(Path(path).expanduser().resolve())
    return suite


def store_root(args) -> Path:
    from onestep.benchmarks.runner import default_store_root

    return Path(args.store) if args.store else default_store_root()
