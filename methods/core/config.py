"""Typed configuration from plain mappings (YAML/JSON/CLI) with errors that help.

Every config in the project is a dataclass; `build_config` turns a nested mapping into one,
refusing unknown keys with the closest valid key as a suggestion, and `config_hash` gives a
stable identity used for caches, run directories and resume checks.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import types
import typing
from typing import Any, Mapping, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message names it and the fix."""


def suggest(name: str, choices) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' if none is close."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _unwrap_optional(tp):
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _coerce(value: Any, tp: Any, where: str) -> Any:
    tp = _unwrap_optional(tp)
    if value is None:
        return None
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {type(value).__name__}")
        return build_config(tp, value, where=where)
    origin = typing.get_origin(tp)
    if origin in (list, tuple) and isinstance(value, (list, tuple)):
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        items = [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if tp in (int, float, str, bool) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r} ({type(value).__name__})")
    return value


def build_config(cls: type[T], mapping: Mapping[str, Any] | None = None, where: str | None = None) -> T:
    """Instantiate dataclass `cls` from `mapping`, recursing into nested dataclasses.

    Unknown keys raise ConfigError naming the key, where it was found and the closest valid key.
    """
    where = where or cls.__name__
    mapping = dict(mapping or {})
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    unknown = [k for k in mapping if k not in fields]
    if unknown:
        k = unknown[0]
        raise ConfigError(
            f"unknown config key '{k}' in {where}{suggest(k, fields)}; valid keys: {', '.join(sorted(fields))}"
        )
    kwargs = {k: _coerce(v, hints.get(k, Any), f"{where}.{k}") for k, v in mapping.items()}
    try:
        return cls(**kwargs)
    except TypeError as e:  # missing required fields
        raise ConfigError(f"{where}: {e}") from None


def override(obj: T, updates: Mapping[str, Any], where: str | None = None) -> T:
    """A copy of dataclass `obj` with dotted-key `updates` ('loop.batch': 64) applied and checked."""
    data = to_dict(obj)
    for dotted, value in updates.items():
        node = data
        parts = dotted.split(".")
        for i, part in enumerate(parts[:-1]):
            if not isinstance(node.get(part), dict):
                path = ".".join(parts[: i + 1])
                raise ConfigError(f"unknown config section '{path}' in {where or type(obj).__name__}{suggest(part, node)}")
            node = node[part]
        if parts[-1] not in node:
            raise ConfigError(
                f"unknown config key '{dotted}' in {where or type(obj).__name__}{suggest(parts[-1], node)}"
            )
        node[parts[-1]] = value
    return build_config(type(obj), data, where=where)


def to_dict(obj: Any) -> Any:
    """Plain JSON-able structure of a (nested) dataclass."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Mapping):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj


def canonical_json(obj: Any) -> str:
    return json.dumps(to_dict(obj), sort_keys=True, separators=(",", ":"), default=str)


def config_hash(obj: Any, length: int = 12) -> str:
    """Stable short hash of a config (dataclass or mapping): identical configs, identical hash."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]
