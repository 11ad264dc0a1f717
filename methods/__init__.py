"""onestep.methods: method plugins and the model zoo they share.

Knows nothing of Slurm, stores or HTML; benchmarks/ and environments/ build on it.
"""
