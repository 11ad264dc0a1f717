"""onestep.benchmarks: the harness (datasets, generation, metrics, training loop, suites,
results store, CLI). Depends on onestep.methods and onestep.environments."""
