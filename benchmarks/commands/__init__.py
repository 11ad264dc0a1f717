"""One module per `onestep` subcommand (see onestep.benchmarks.cli)."""
