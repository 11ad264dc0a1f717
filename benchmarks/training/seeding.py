"""Seeds derived from (run seed, step, stream): the same on every rank and after any resume."""
from __future__ import annotations

import hashlib


def derive_seed(*parts) -> int:
    """A 63-bit seed from any tuple of ints/strings (stable across processes and Python runs)."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & ((1 << 63) - 1)
