"""One plugin registry for every kind of plugin (methods, analyses).

A registry holds classes by their `name`, checks what every plugin of its kind must have,
imports the built-in modules of one package and the classes of one entry-point group on first
use, and answers look-ups with a suggestion for typos.
"""
from __future__ import annotations

import dataclasses
from importlib import import_module, metadata
import pkgutil
from typing import Any, Callable, Generic, Iterable, TypeVar

from .config import ConfigError, suggest

T = TypeVar("T", bound=type)


class PluginRegistry(Generic[T]):
    def __init__(self, kind: str, base: type, package: str, entry_point_group: str,
                 skip_modules: Iterable[str] = (), check: Callable[[type], None] | None = None):
        self.kind, self.base, self.package, self.group = kind, base, package, entry_point_group
        self.skip_modules, self.check = set(skip_modules), check
        self._classes: dict[str, T] = {}
        self._loaded = False

    def register(self, cls: T) -> T:
        """Class decorator: make a plugin available by its `name`."""
        name = getattr(cls, "name", None)
        if not name:
            raise TypeError(f"{cls.__name__} needs a class attribute `name` to be registered")
        if not dataclasses.is_dataclass(getattr(cls, "Config", None)):
            raise TypeError(f"{self.kind} {name}: `Config` must be a dataclass")
        if self.check is not None:
            self.check(cls)
        existing = self._classes.get(name)
        if existing is not None and existing is not cls and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"{self.kind} name '{name}' is registered twice: {existing.__module__} and {cls.__module__}")
        self._classes[name] = cls
        return cls

    def _load_all(self) -> None:
        """Import the built-in modules of `package` and the entry points' classes, once."""
        if self._loaded:
            return
        self._loaded = True
        package = import_module(self.package)
        for info in pkgutil.iter_modules(package.__path__):
            if info.name not in self.skip_modules and not info.name.startswith("_"):
                import_module(f"{self.package}.{info.name}")
        for ep in metadata.entry_points(group=self.group):
            obj = ep.load()
            if isinstance(obj, type) and issubclass(obj, self.base):
                self.register(obj)

    def available(self) -> dict[str, T]:
        self._load_all()
        return dict(sorted(self._classes.items()))

    def get(self, name: str) -> T:
        found = self.available()
        if name not in found:
            raise ConfigError(f"unknown {self.kind} '{name}'{suggest(name, found)}; available: {', '.join(found)}")
        return found[name]

    def preset(self, cls: type, preset: str) -> Any:
        if preset not in cls.presets:
            raise ConfigError(f"{self.kind} '{cls.name}' has no preset '{preset}'{suggest(preset, cls.presets)}; "
                              f"available: {', '.join(cls.presets) or 'none'}")
        return cls.presets[preset]
