"""Maps the design card's top-level folders under the single import root `onestep`.

pyproject.toml holds the metadata; this file only lists the packages, because setuptools'
automatic discovery cannot rename folders (methods/ -> onestep.methods).
"""
from setuptools import find_packages, setup

ROOTS = ("methods", "benchmarks", "reports", "environments")
packages = [f"onestep.{p}" for p in find_packages(include=[f"{r}*" for r in ROOTS]) if p.split(".")[0] in ROOTS]
setup(packages=packages)
