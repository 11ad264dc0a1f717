"""Method registry: built-ins, a plugin from another package found through the `onestep.methods`
entry-point group, clear errors for unknown names, presets and override keys."""
from __future__ import annotations

import importlib
import sys
import textwrap

import pytest
import torch

from onestep.methods import plugin
from onestep.methods.core.config import ConfigError
from onestep.methods.plugin import DataSpec

TOY_PACKAGE = textwrap.dedent('''
    """A method plugin living in another package, registered only through its entry point."""
    from dataclasses import dataclass
    import torch
    from onestep.methods.plugin import Method
    from onestep.methods.solvers import OneStepGenerator
    from onestep.methods.zoo import build_network

    @dataclass
    class ToyConfig:
        lr: float = 1e-2

    class ToyMethod(Method):
        """Regress one-step outputs onto real images (not a real method: exercises the interface)."""
        name = "toy-entry-point"
        Config = ToyConfig
        needs_teacher = False
        presets = {"smoke": {"method": {}, "loop": {"batch_size": 8, "total_kimg": 0.032, "log_kimg": 0.016}}}

        def __init__(self, config, teacher, data, device):
            super().__init__(config, teacher, data, device)
            self.net = build_network("digits-8x8-uncond", model_channels=8)
            self.opt = torch.optim.SGD(self.net.parameters(), lr=config.lr)

        @property
        def generator(self):
            return self.net

        def modules(self):
            return {"generator": self.net}

        def optimizers(self):
            return {"sgd": self.opt}

        def build_generator(self, ema_modules):
            return OneStepGenerator(ema_modules["generator"], 80.0)

        def step(self, batch, ctx):
            z = ctx.randn(*batch.images.shape, stream="z")
            with ctx.autocast():
                loss = ((self.net(z * 80, 80.0) - batch.images) ** 2).mean()
            loss.backward()
            ctx.optimizer_step(self.opt, self.net)
            return {"loss": float(loss.detach())}
''')


@pytest.fixture
def toy_distribution(tmp_path, monkeypatch):
    """A package + its *.dist-info (entry_points.txt) on a temporary sys.path entry."""
    (tmp_path / "onestep_toy_plugin").mkdir()
    (tmp_path / "onestep_toy_plugin" / "__init__.py").write_text(TOY_PACKAGE)
    info = tmp_path / "onestep_toy_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: onestep-toy-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[onestep.methods]\ntoy = onestep_toy_plugin:ToyMethod\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    # Rediscover with the new distribution visible; restore the registry afterwards.
    monkeypatch.setattr(plugin.REGISTRY, "_loaded", False)
    monkeypatch.setattr(plugin.REGISTRY, "_classes", dict(plugin.REGISTRY._classes))
    yield
    sys.modules.pop("onestep_toy_plugin", None)


def test_builtin_edm_is_registered():
    methods = plugin.available_methods()
    assert "edm" in methods and methods["edm"].__module__ == "onestep.methods.plugins.edm_pretrain"
    assert "toy-entry-point" not in methods


def test_entry_point_plugin_is_discovered_and_trains(toy_distribution, tmp_path):
    from onestep.benchmarks.datasets import load_digits
    from onestep.benchmarks.training import instantiate_method, train

    assert "toy-entry-point" in plugin.available_methods()
    cls = plugin.get_method("toy-entry-point")
    assert cls.__module__ == "onestep_toy_plugin"
    data = load_digits(8, 1, "all", conditional=False).subset(range(32))
    method, loop = instantiate_method("toy-entry-point", "smoke", {"method.lr": 0.05},
                                      data_spec=DataSpec(8, 1, 0))
    assert method.config.lr == 0.05
    result = train(method, data, loop, tmp_path / "run", log=lambda s: None)
    assert result.step == 4 and (tmp_path / "run" / "final" / "generator.json").is_file()
    x = result.generator(torch.randn(2, 1, 8, 8))
    assert x.shape == (2, 1, 8, 8) and torch.isfinite(x).all()


def test_unknown_names_and_keys_get_suggestions():
    from onestep.benchmarks.training import instantiate_method

    spec = DataSpec(8, 1, 10)
    with pytest.raises(ConfigError, match="unknown method 'edn'.*did you mean 'edm'"):
        instantiate_method("edn", "smoke", data_spec=spec)
    with pytest.raises(ConfigError, match="no preset 'digit'.*did you mean 'digits'"):
        instantiate_method("edm", "digit", data_spec=spec)
    with pytest.raises(ConfigError, match="unknown config key 'lrr'.*did you mean 'lr'"):
        instantiate_method("edm", "smoke", {"method.lrr": 1.0}, data_spec=spec)
    with pytest.raises(ConfigError, match="unknown config key 'total_kmig'.*did you mean 'total_kimg'"):
        instantiate_method("edm", "smoke", {"loop.total_kmig": 1.0}, data_spec=spec)
    with pytest.raises(ConfigError, match="'method.' or 'loop.'.*did you mean 'loop'"):
        instantiate_method("edm", "smoke", {"lop.total_kimg": 1.0}, data_spec=spec)
    with pytest.raises(ConfigError, match="img_resolution=8 but the data has 16"):
        instantiate_method("edm", "smoke", data_spec=DataSpec(16, 1, 10))


def test_registering_two_methods_under_one_name_fails():
    from dataclasses import dataclass

    @dataclass
    class C:
        pass

    existing = plugin.get_method("edm")
    Clash = type("Clash", (existing,), {"name": "edm", "Config": C, "__module__": "elsewhere"})
    with pytest.raises(ValueError, match="registered twice"):
        plugin.register_method(Clash)
