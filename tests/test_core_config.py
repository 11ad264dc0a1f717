from dataclasses import dataclass, field

import pytest

from onestep.methods.core.config import ConfigError, build_config, config_hash, override


@dataclass
class Inner:
    lr: float = 1e-4
    betas: tuple[float, float] = (0.0, 0.99)


@dataclass
class Outer:
    name: str = "x"
    batch: int = 8
    inner: Inner = field(default_factory=Inner)


def test_unknown_key_names_it_and_suggests():
    with pytest.raises(ConfigError) as e:
        build_config(Outer, {"bacth": 4})
    assert "'bacth'" in str(e.value) and "did you mean 'batch'" in str(e.value)
    with pytest.raises(ConfigError) as e:
        build_config(Outer, {"inner": {"lrr": 1}})
    assert "Outer.inner" in str(e.value) and "'lr'" in str(e.value)


def test_types_are_checked_and_coerced():
    cfg = build_config(Outer, {"batch": 4.0, "inner": {"lr": 1, "betas": [0.5, 0.9]}})
    assert cfg.batch == 4 and isinstance(cfg.inner.lr, float) and cfg.inner.betas == (0.5, 0.9)
    with pytest.raises(ConfigError, match="expected int"):
        build_config(Outer, {"batch": "four"})


def test_override_and_hash():
    a = build_config(Outer, {})
    b = override(a, {"inner.lr": 2e-4})
    assert b.inner.lr == 2e-4 and a.inner.lr == 1e-4
    assert config_hash(a) != config_hash(b)
    assert config_hash(a) == config_hash(build_config(Outer, {}))
    with pytest.raises(ConfigError, match="did you mean 'inner.lr'|did you mean 'lr'"):
        override(a, {"inner.lrr": 1})
