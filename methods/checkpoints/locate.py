"""Find the file of a published checkpoint named by a zoo preset.

Search order: the directories in $ONESTEP_CHECKPOINTS (os.pathsep-separated), then the cache
`cache_dir('checkpoints')`. If absent, download the preset's URL into the cache where a
network exists (short connection timeout; set ONESTEP_OFFLINE=1 to never try); otherwise raise
an error naming the file and where to put it.
"""
from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..core.atomic import atomic_write
from ..core.paths import cache_dir
from .errors import CheckpointError

CHECKPOINTS_ENV = "ONESTEP_CHECKPOINTS"
OFFLINE_ENV = "ONESTEP_OFFLINE"
CONNECT_TIMEOUT_S = 10.0
_CHUNK = 1 << 20


def checkpoint_dirs() -> list[Path]:
    """Where published checkpoints are looked for, in order."""
    dirs = [Path(p).expanduser() for p in os.environ.get(CHECKPOINTS_ENV, "").split(os.pathsep) if p]
    return dirs + [cache_dir("checkpoints")]


def locate_checkpoint(preset_name: str, download: bool | None = None, timeout: float = CONNECT_TIMEOUT_S) -> Path:
    """Path of the published checkpoint file of zoo preset `preset_name`.

    `download=None` downloads unless $ONESTEP_OFFLINE is set.
    """
    from .. import zoo

    preset = zoo.get_preset(preset_name)
    if not preset.checkpoint:
        raise CheckpointError(f"preset '{preset_name}' names no published checkpoint; build it with "
                              f"zoo.build_network('{preset_name}') and train it, or pass a checkpoint file")
    dirs = checkpoint_dirs()
    for d in dirs:
        candidate = d / preset.checkpoint
        if candidate.is_file():
            return candidate
    if download is None:
        download = not os.environ.get(OFFLINE_ENV)
    target = dirs[-1] / preset.checkpoint
    where = " or ".join(f"'{d}'" for d in dirs)
    if download and preset.url:
        try:
            return download_file(preset.url, target, timeout=timeout)
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            reason = f"downloading {preset.url} failed ({getattr(e, 'reason', e)})"
    else:
        reason = "downloads are disabled" if preset.url else "the preset has no download URL"
    raise CheckpointError(
        f"checkpoint '{preset.checkpoint}' of preset '{preset_name}' was not found in {where}, and {reason}. "
        f"Download it{' from ' + preset.url if preset.url else ''} on a machine with a network and put it in one of "
        f"those directories (or set ${CHECKPOINTS_ENV} to the directory that holds it)"
    )


def download_file(url: str, target: Path, timeout: float = CONNECT_TIMEOUT_S, progress: bool = True) -> Path:
    """Stream `url` to `target` atomically (a partial download never appears under its name)."""
    target = Path(target)
    with urllib.request.urlopen(url, timeout=timeout) as response:
        total = int(response.headers.get("Content-Length") or 0)

        def write(f):
            done, last = 0, 0.0
            while chunk := response.read(_CHUNK):
                f.write(chunk)
                done += len(chunk)
                if progress and time.monotonic() - last > 1.0:
                    last = time.monotonic()
                    size = f"/{total / 2**20:.1f}" if total else ""
                    print(f"\rdownloading {target.name}: {done / 2**20:.1f}{size} MiB", end="", file=sys.stderr, flush=True)
            if total and done != total:
                raise OSError(f"connection closed after {done} of {total} bytes")
            if progress:
                print(f"\rdownloaded {target.name}: {done / 2**20:.1f} MiB", file=sys.stderr, flush=True)

        return atomic_write(target, write)
