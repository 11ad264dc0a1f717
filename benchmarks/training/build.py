"""Method + loop configuration from a registered name, a preset and dotted overrides.

    method, loop = instantiate_method("edm", "digits", {"loop.total_kimg": 50, "method.lr": 1e-3},
                                      data_spec=DataSpec(8, 1, 10))

A preset is {"method": {...Config fields}, "loop": {...LoopConfig fields}}; overrides are
dotted keys whose first part is "method" or "loop". Unknown names, sections and keys fail with
the closest valid choice.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import nn

from onestep.methods.core.config import ConfigError, build_config, suggest
from onestep.methods.plugin import DataSpec, Method, get_method, resolve_preset

from .config import LoopConfig
from .seeding import derive_seed

SECTIONS = ("method", "loop")


@dataclass
class ResolvedConfig:
    method_name: str
    preset: str | None
    method: dict[str, Any]  # plain mapping of the method Config fields that were set
    loop: dict[str, Any]


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    if parts[0] not in SECTIONS or len(parts) < 2:
        raise ConfigError(f"override '{dotted}': keys start with 'method.' or 'loop.'{suggest(parts[0], SECTIONS)}, "
                          f"e.g. 'loop.total_kimg' or 'method.lr'")
    node = tree[parts[0]]
    for part in parts[1:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override '{dotted}': '{part}' is not a section")
    node[parts[-1]] = value


def resolve_config(name: str, preset: str | None = None, overrides: Mapping[str, Any] | None = None) -> ResolvedConfig:
    """Merge preset sections and dotted overrides (no objects built yet)."""
    cls = get_method(name)
    tree: dict[str, dict] = {"method": {}, "loop": {}}
    if preset is not None:
        sections = resolve_preset(cls, preset)
        unknown = [k for k in sections if k not in SECTIONS]
        if unknown:
            raise ConfigError(f"preset '{preset}' of method '{name}' has unknown section '{unknown[0]}'"
                              f"{suggest(unknown[0], SECTIONS)}; sections: {', '.join(SECTIONS)}")
        tree = {k: copy.deepcopy(dict(sections.get(k, {}))) for k in SECTIONS}
    for dotted, value in (overrides or {}).items():
        _set_dotted(tree, dotted, value)
    return ResolvedConfig(name, preset, tree["method"], tree["loop"])


def build_loop_config(mapping: Mapping[str, Any] | None = None) -> LoopConfig:
    return build_config(LoopConfig, mapping or {}, where="loop")


def instantiate_method(
    name: str,
    preset: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    teacher: nn.Module | None = None,
    data_spec: DataSpec | None = None,
    device: torch.device | str = "cpu",
) -> tuple[Method, LoopConfig]:
    """(method instance, LoopConfig) for method `name` with `preset` and dotted `overrides`."""
    resolved = resolve_config(name, preset, overrides)
    cls = get_method(name)
    config = build_config(cls.Config, resolved.method, where=f"{name}.method")
    loop = build_loop_config(resolved.loop)
    if cls.needs_teacher and teacher is None:
        raise ConfigError(f"method '{name}' distills a teacher: pass teacher= (see onestep.benchmarks.teachers.load_teacher)")
    if data_spec is None:
        raise ConfigError(f"method '{name}': data_spec (resolution, channels, label_dim) is required")
    # Initial weights are part of the run: seed the global RNG that module constructors use.
    torch.manual_seed(derive_seed(loop.seed, "init"))
    return cls(config, teacher, data_spec, torch.device(device)), loop


def data_spec_of(dataset) -> DataSpec:
    """The DataSpec of an ArrayImageDataset."""
    return DataSpec(resolution=int(dataset.resolution), channels=int(dataset.channels),
                    label_dim=int(getattr(dataset, "label_dim", 0) or 0))
