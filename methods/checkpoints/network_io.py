"""Our network checkpoint format and `load_network`, the one way to load a network.

A network NAME is two files side by side:
- NAME.safetensors: the state dict (safetensors: no code, bounds-checked header);
- NAME.json: {"format", "format_version", "network_config" (zoo.network_config), "metadata",
  "state_sha256", "num_tensors"}. The checksum ties the pair together: a JSON that does not
  belong to its weights file is detected even when the shapes agree.
Both are written atomically; the weights first, so a JSON never points at missing weights.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core.atomic import atomic_write_bytes, atomic_write_json
from ..core.config import ConfigError, suggest
from .edm_pickle import load_edm_pickle, load_matching_state
from .errors import CheckpointError

FORMAT = "onestep-network"
FORMAT_VERSION = 1
WEIGHTS_SUFFIX = ".safetensors"
CONFIG_SUFFIX = ".json"
EDM_SUFFIX = ".pkl"
# Structural fields a published file must share with the preset it is found under.
_PRESET_CHECKED_KEYS = ("img_resolution", "img_channels", "label_dim")


def checkpoint_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(NAME.safetensors, NAME.json) for NAME, NAME.safetensors or NAME.json."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (WEIGHTS_SUFFIX, CONFIG_SUFFIX) else path
    return stem.with_name(stem.name + WEIGHTS_SUFFIX), stem.with_name(stem.name + CONFIG_SUFFIX)


def state_checksum(net_or_state: nn.Module | dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of a state dict: the weights' identity."""
    state = net_or_state.state_dict() if isinstance(net_or_state, nn.Module) else net_or_state
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _state_for_safetensors(net: nn.Module) -> dict[str, torch.Tensor]:
    # safetensors refuses tensors sharing memory; give each its own contiguous CPU copy where needed.
    out, seen = {}, set()
    for name, t in net.state_dict().items():
        t = t.detach().cpu().contiguous()
        key = (t.untyped_storage().data_ptr(), t.storage_offset())
        out[name] = t.clone() if key in seen else t
        seen.add(key)
    return out


def save_network(path: str | os.PathLike, net: nn.Module, metadata: dict | None = None) -> Path:
    """Write NAME.safetensors + NAME.json for a zoo network; returns the JSON path."""
    from safetensors.torch import save as st_save

    from .. import zoo

    metadata = dict(metadata or {})
    try:
        json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"save_network: metadata must be JSON-serializable (strings, numbers, lists, dicts): {e}") from e
    config = zoo.network_config(net)
    weights_path, json_path = checkpoint_paths(path)
    state = _state_for_safetensors(net)
    checksum = state_checksum(state)
    header = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "state_sha256": checksum}
    atomic_write_bytes(weights_path, st_save(state, metadata=header))
    atomic_write_json(json_path, {
        "format": FORMAT, "format_version": FORMAT_VERSION, "network_config": config, "metadata": metadata,
        "state_sha256": checksum, "num_tensors": len(state), "weights_file": weights_path.name,
    })
    return json_path


def read_network_info(path: str | os.PathLike) -> dict:
    """The validated JSON of our checkpoint NAME (config, metadata, checksum) without loading weights."""
    weights_path, json_path = checkpoint_paths(path)
    if not json_path.is_file():
        hint = (f"; '{weights_path.name}' exists, but its config file is missing: the JSON holds the architecture "
                "and is needed to rebuild the network") if weights_path.is_file() else ""
        raise CheckpointError(f"network checkpoint config '{json_path}' does not exist{hint}")
    try:
        info = json.loads(json_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"'{json_path}' is not valid JSON ({e}); the file is corrupt or truncated") from e
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise CheckpointError(f"'{json_path}' is not an onestep network config (expected \"format\": \"{FORMAT}\")")
    version = info.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"'{json_path}' has format_version {version!r}; this onestep reads versions up to "
                              f"{FORMAT_VERSION}: upgrade onestep")
    missing = [k for k in ("network_config", "state_sha256") if k not in info]
    if missing:
        raise CheckpointError(f"'{json_path}' lacks the key(s) {missing}")
    return info


def _load_ours(path: str | os.PathLike) -> nn.Module:
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    from .. import zoo

    weights_path, json_path = checkpoint_paths(path)
    info = read_network_info(path)
    try:
        net = zoo.network_from_config(info["network_config"])
    except (ConfigError, TypeError, ValueError) as e:
        raise CheckpointError(f"'{json_path}': its network_config cannot be built: {e}") from e
    if not weights_path.is_file():
        raise CheckpointError(f"weights file '{weights_path}' of '{json_path.name}' does not exist")
    try:
        tensors = st_load(weights_path.read_bytes())
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"'{weights_path}' is not a readable safetensors file ({e}); it is corrupt or "
                              "truncated: save the network again") from e
    load_matching_state(net, tensors, str(weights_path), f"the network described by '{json_path.name}'")
    if state_checksum(tensors) != info["state_sha256"]:
        raise CheckpointError(f"'{weights_path}' does not belong to '{json_path.name}': the weights' checksum differs "
                              "from the one recorded in the JSON (files from different saves were mixed); save again")
    return net


def _check_preset_match(net: nn.Module, preset: Any, file: Path) -> None:
    expected = dict(preset.precond_kwargs)
    found = {k: getattr(net, k, None) for k in _PRESET_CHECKED_KEYS}
    bad = [f"{k}={found[k]!r} (preset: {expected[k]!r})" for k in _PRESET_CHECKED_KEYS
           if k in expected and found[k] != expected[k]]
    if type(net).__name__ != preset.precond:
        bad.insert(0, f"class {type(net).__name__} (preset: {preset.precond})")
    if bad:
        raise CheckpointError(f"'{file}' was found for preset '{preset.name}' but holds another network: "
                              f"{', '.join(bad)}; replace it with the published '{preset.checkpoint}'")


def _load_file(path: Path) -> nn.Module:
    if path.suffix == EDM_SUFFIX:
        return load_edm_pickle(path)["ema"]
    return _load_ours(path).eval().requires_grad_(False)


def load_network(path_or_preset: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Load a network from an EDM pickle (.pkl), our checkpoint (.safetensors/.json or NAME) or
    a zoo preset naming a published checkpoint. Returns it on `device`, in eval mode, with
    `requires_grad=False` (a frozen teacher); call `.train().requires_grad_(True)` to train it."""
    from .. import zoo
    from .locate import locate_checkpoint

    text = os.fspath(path_or_preset)
    path = Path(text)
    if path.suffix in (EDM_SUFFIX, WEIGHTS_SUFFIX, CONFIG_SUFFIX):
        if not path.is_file():
            raise CheckpointError(f"checkpoint file '{path}' does not exist")
        net = _load_file(path)
    elif isinstance(path_or_preset, str) and text in zoo.PRESETS:
        preset = zoo.PRESETS[text]
        file = locate_checkpoint(text)
        net = _load_file(file)
        _check_preset_match(net, preset, file)
    elif checkpoint_paths(path)[1].is_file():
        net = _load_ours(path).eval().requires_grad_(False)
    else:
        raise CheckpointError(
            f"'{text}' is neither a checkpoint file (.pkl EDM pickle, .safetensors/.json onestep checkpoint) nor a "
            f"network preset{suggest(text, zoo.PRESETS)}; presets with published checkpoints: "
            f"{', '.join(n for n, p in zoo.PRESETS.items() if p.checkpoint)}"
        )
    return net.to(device)


__all__ = ["save_network", "load_network", "read_network_info", "state_checksum", "checkpoint_paths"]
