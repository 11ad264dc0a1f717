"""Checks the commands make before any work: output paths writable, counts positive."""
from __future__ import annotations

import os
from pathlib import Path

from onestep.methods.core.config import ConfigError


def check_output_file(path, flag: str) -> None:
    """Refuse (ConfigError) an output file that cannot be written, before anything is computed.
    Nothing is created: the nearest existing folder must be writable (a missing folder would be
    made there)."""
    if not path:
        return
    p = Path(path).expanduser()
    if p.is_dir():
        raise ConfigError(f"{flag} {path}: is a folder; give a file name (e.g. {p / 'out.json'})")
    if p.exists() and not os.access(p, os.W_OK):
        raise ConfigError(f"{flag} {path}: the file exists and is not writable; choose another path")
    _check_parent(p, flag, path)


def check_output_dir(path, flag: str) -> None:
    """Refuse an output folder that cannot be created or written, before any work."""
    if not path:
        return
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{flag} {path}: exists and is not a folder; choose another path")
    if p.is_dir():
        if not os.access(p, os.W_OK | os.X_OK):
            raise ConfigError(f"{flag} {path}: the folder is not writable; choose another path or fix its permissions")
        return
    _check_parent(p, flag, path)


def _check_parent(p: Path, flag: str, shown) -> None:
    base = p.parent
    while not base.exists():
        if base.parent == base:
            break
        base = base.parent
    if not base.is_dir():
        raise ConfigError(f"{flag} {shown}: {base} is a file, not a folder; choose another path")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {shown}: cannot create it, {base} is not writable; choose another path")


def check_positive(value, flag: str, what: str = "") -> None:
    if value is not None and value <= 0:
        raise ConfigError(f"{flag} must be a positive number{what}, got {value}")
