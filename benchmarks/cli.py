"""The `onestep` command line.

Each subcommand is one module in onestep.benchmarks.commands defining
  NAME (str), HELP (one line), DESCRIPTION (optional, longer),
  add_arguments(parser) and run(args) -> int (exit code).
Modules are discovered, so adding a command never edits this file.
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from onestep.methods.core.config import ConfigError


def _command_modules():
    from . import commands

    mods = []
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{commands.__name__}.{info.name}")
        if hasattr(mod, "NAME") and hasattr(mod, "run"):
            mods.append(mod)
    return mods


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onestep",
        description="onestep-bench: train, distill, sample and evaluate one-step diffusion generators.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules():
        p = sub.add_parser(
            mod.NAME,
            help=mod.HELP,
            description=getattr(mod, "DESCRIPTION", mod.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if hasattr(mod, "add_arguments"):
            mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except ConfigError as e:
        print(f"onestep {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # ctrl-C: one line, the shell's code for SIGINT; runs in progress were marked interrupted
        # and resume from their checkpoints on the next `onestep run`.
        print(f"\nonestep {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`onestep ... | head`): not an error of ours. Point stdout at
        # devnull so the interpreter's final flush does not raise again.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0


if __name__ == "__main__":
    sys.exit(main())
