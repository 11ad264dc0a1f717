"""The one error type for unreadable, corrupt or mismatched checkpoint files."""
from __future__ import annotations


class CheckpointError(ValueError):
    """A checkpoint file cannot be used; the message names the file, the problem and the fix."""
