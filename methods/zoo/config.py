"""How a zoo network describes and rebuilds itself: `network_config` / `network_from_config`.

The config is plain JSON: {"class": precond or raw-net class name, "kwargs": {...},
"model_class": raw net class (preconditioners only), "model_kwargs": {...}}. Infinite
floats (EDMPrecond's default sigma_max) are written as the string "inf" so the JSON stays
standard.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

from torch import nn

from ..core.config import ConfigError, suggest
from .precond import MODEL_TYPES, PRECOND_TYPES, Precond, accepted_kwargs, model_class

CONFIG_KEYS = ("class", "kwargs", "model_class", "model_kwargs")


def _encode(value: Any) -> Any:
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _encode(v) for k, v in value.items()}
    return value


def _decode(value: Any) -> Any:
    if value in ("inf", "-inf"):
        return float(value)
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _decode(v) for k, v in value.items()}
    return value


def network_config(net: nn.Module) -> dict:
    """JSON-able description of a zoo network (preconditioner or raw U-Net)."""
    if isinstance(net, Precond):
        return {"class": type(net).__name__, "kwargs": _encode(net.precond_kwargs()),
                "model_class": type(net.model).__name__, "model_kwargs": _encode(net.model_kwargs())}
    if type(net) in MODEL_TYPES.values():
        return {"class": type(net).__name__, "kwargs": _encode(net.init_kwargs), "model_class": None, "model_kwargs": None}
    raise TypeError(f"network_config: {type(net).__name__} is not a zoo network; "
                    f"expected one of {sorted(PRECOND_TYPES) + sorted(MODEL_TYPES)}")


def network_from_config(config: Mapping[str, Any]) -> nn.Module:
    """Rebuild a network (random init) from `network_config` output."""
    if not isinstance(config, Mapping):
        raise ConfigError(f"network config must be a mapping, got {type(config).__name__}")
    unknown = set(config) - set(CONFIG_KEYS)
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(f"network config: unknown key {key!r}{suggest(key, CONFIG_KEYS)}; valid keys: {list(CONFIG_KEYS)}")
    if "class" not in config:
        raise ConfigError("network config: missing 'class' (a preconditioner or raw network class name)")
    name = config["class"]
    kwargs = dict(_decode(config.get("kwargs") or {}))
    if name in PRECOND_TYPES:
        model_name = config.get("model_class")
        if not model_name:
            raise ConfigError(f"network config: {name} needs 'model_class' (one of {sorted(MODEL_TYPES)})")
        model_class(model_name)  # validates the name with a suggestion
        model_kwargs = dict(_decode(config.get("model_kwargs") or {}))
        return _construct(PRECOND_TYPES[name], dict(kwargs, model_type=model_name, **model_kwargs))
    if name in MODEL_TYPES:
        return _construct(MODEL_TYPES[name], kwargs)
    choices = sorted(PRECOND_TYPES) + sorted(MODEL_TYPES)
    raise ConfigError(f"network config: unknown class {name!r}{suggest(name, choices)}; choose one of {choices}")


def _construct(cls, kwargs: dict) -> nn.Module:
    try:
        return cls(**kwargs)
    except TypeError as e:  # an unexpected keyword: name it with a suggestion
        params = set().union(*(accepted_kwargs(k) for k in (cls, *MODEL_TYPES.values())))
        bad = [k for k in kwargs if k not in params]
        if bad:
            raise ConfigError(f"network config for {cls.__name__}: unknown argument {bad[0]!r}{suggest(bad[0], params)}") from e
        raise ConfigError(f"network config for {cls.__name__}: {e}") from e
