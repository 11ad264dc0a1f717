"""Whether a process is alive, as the store (run ownership) and the local Slurm (shutdown) ask it."""
from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True if `pid` runs (or cannot be ruled out); a zombie counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True  # no /proc: kill(0) succeeded, so assume it runs
