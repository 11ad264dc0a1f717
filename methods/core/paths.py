"""Where caches live: $ONESTEP_CACHE, else ~/.cache/onestep. Never inside the git tree."""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    root = os.environ.get("ONESTEP_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "onestep")
    return Path(root)


def cache_dir(*parts: str) -> Path:
    """A subdirectory of the cache root, created if missing."""
    path = cache_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
