"""Resume state: everything needed to continue a run (optimizers, EMA, RNG states, counters).

Written with torch.save through an atomic rename, so an interrupted write never leaves a
truncated file behind; read with `weights_only=True`, so loading runs no code from the file.
The state is nested dicts/lists of tensors, ints, floats, bools, strings and None (RNG states
are uint8 tensors), which is exactly what the weights-only unpickler accepts.
"""
from __future__ import annotations

import collections
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..core.atomic import atomic_write
from .errors import CheckpointError

# Exactly the types torch.load(weights_only=True) rebuilds; subclasses such as namedtuples,
# defaultdicts or numpy scalars/arrays would save fine and then fail to load, so they are refused
# when saving, where the message can still name the offending entry.
_LEAF_TYPES = (int, float, bool, complex, str, bytes, bytearray, type(None), torch.dtype, torch.device)
_SEQUENCE_TYPES = (list, tuple, set, frozenset, torch.Size)
_MAPPING_TYPES = (dict, collections.OrderedDict)


def _check_state(obj: Any, where: str) -> None:
    """Refuse at save time what `weights_only` loading would refuse later (e.g. a module object)."""
    if type(obj) in _MAPPING_TYPES:
        for key, value in obj.items():
            if type(key) not in (str, int):
                raise TypeError(f"resume state: key {key!r} at {where} must be a str or int")
            _check_state(value, f"{where}.{key}")
    elif type(obj) in _SEQUENCE_TYPES:
        for i, value in enumerate(obj):
            _check_state(value, f"{where}[{i}]")
    elif not (isinstance(obj, torch.Tensor) or type(obj) in _LEAF_TYPES):
        raise TypeError(
            f"resume state: {where} is a {type(obj).__name__}; only tensors, numbers, strings, None and "
            "dicts/lists of them are allowed (store module/optimizer *state_dict()s*, not the objects; "
            "convert numpy values with .item() or torch.from_numpy)"
        )


def save_resume_state(path: str | os.PathLike, state: dict) -> Path:
    """Write `state` atomically with torch.save; tensors are moved to the CPU first."""
    if not isinstance(state, dict):
        raise TypeError(f"resume state must be a dict, got {type(state).__name__}")
    _check_state(state, "state")
    cpu_state = _to_cpu(state)
    return atomic_write(path, lambda f: torch.save(cpu_state, f))


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return type(obj)((k, _to_cpu(v)) for k, v in obj.items())
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    if isinstance(obj, tuple) and not isinstance(obj, torch.Size):
        return tuple(_to_cpu(v) for v in obj)
    return obj


def _unpickler_reason(error: Exception) -> str:
    """The specific line of torch's weights-only error (its preamble suggests weights_only=False)."""
    text = " ".join(str(error).split())
    marker = "WeightsUnpickler error:"
    if marker in text:
        reason = text.split(marker, 1)[1].split("Please use", 1)[0].split("Check the documentation", 1)[0]
        return reason.strip() or "unreadable"
    return text[:200]


def load_resume_state(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a file written by `save_resume_state` (weights-only: no code from the file runs)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"resume state '{path}' does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"resume state '{path}' holds objects other than tensors/numbers/strings, or is not a torch.save "
            f"file; refusing to load it ({_unpickler_reason(e)})"
        ) from e
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(
            f"resume state '{path}' is corrupt or truncated ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            "delete it to restart from the previous snapshot"
        ) from e
    if not isinstance(state, dict):
        raise CheckpointError(f"resume state '{path}' holds a {type(state).__name__}, expected a dict")
    return state
