"""`python -m onestep.benchmarks ...` is the same as the `onestep` console script."""
from .cli import main

raise SystemExit(main())
