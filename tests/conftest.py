"""Shared test set-up.

- Caches (trained digits teacher, digits feature network, reference statistics) go to
  $ONESTEP_TEST_CACHE if set (reuse across runs while developing), else to a fresh temporary
  directory for the session, so tests never read or poison a user's ~/.cache/onestep.
- Fixture modules live in tests/fixtures/ and are loaded here as pytest plugins.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

_FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(Path(__file__).parent))
pytest_plugins = sorted(f"fixtures.{p.stem}" for p in _FIXTURES.glob("*.py") if not p.stem.startswith("_"))


def pytest_configure(config):
    cache = os.environ.get("ONESTEP_TEST_CACHE") or tempfile.mkdtemp(prefix="onestep-test-cache-")
    os.environ["ONESTEP_CACHE"] = cache
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    # Two cores here: keep intra-op threads bounded so parallel helpers/tests do not thrash.
    torch.set_num_threads(int(os.environ.get("ONESTEP_TEST_THREADS", "2")))


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
