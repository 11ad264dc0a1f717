"""Speed measurements, run by hand (never timed assertions in tests): each script prints
side-by-side ratios against a baseline, e.g. `python -m onestep.benchmarks.perf.loop_overhead`."""
