"""Suites: schema errors with suggestions, `methods: all`, sweep grids, validation, published numbers."""
from __future__ import annotations


import pytest
import yaml

from onestep.benchmarks.suites import (
    SUITE_DIR, available_suites, expand_runs, load_suite, validate_suite,
)
from onestep.methods import plugin
from onestep.methods.core.config import ConfigError



def _suite(**kw):
    base = {"name": "t", "teacher": "digits", "methods": [{"method": "gdd", "preset": "smoke"}], "preset": "smoke"}
    base.update(kw)
    return load_suite(base)


def test_smoke_suite_is_every_method_with_a_smoke_preset():
    runs = expand_runs(load_suite("smoke"))
    expected = {name for name, cls in plugin.available_methods().items() if "smoke" in cls.presets}
    assert expected and {r.method for r in runs} == expected
    raw = yaml.safe_load((SUITE_DIR / "smoke.yaml").read_text())
    # every method at its smoke preset, except D2O, which runs D2O-F (freezing) there
    assert raw["method_presets"] == {"d2o": "smoke-f"}
    assert all(r.preset == raw["method_presets"].get(r.method, "smoke") for r in runs)
    assert raw["methods"] == "all", "the smoke suite must not list methods explicitly"


def test_a_method_registered_later_joins_the_smoke_suite(monkeypatch):
    monkeypatch.setattr(plugin.REGISTRY, "_classes", dict(plugin.REGISTRY._classes))
    gdd = plugin.get_method("gdd")

    @plugin.register_method
    class LateMethod(gdd):
        name = "late-method"
        presets = {"smoke": gdd.presets["smoke"]}

    runs = expand_runs(load_suite("smoke"))
    assert "late-method" in {r.method for r in runs}


def test_unknown_keys_methods_presets_get_suggestions():
    with pytest.raises(ConfigError, match="unknown config key 'evaluaton'.*did you mean 'evaluation'"):
        _suite(evaluaton={})
    with pytest.raises(ConfigError, match="unknown config key 'n_sample'.*did you mean 'n_samples'"):
        _suite(evaluation={"n_sample": 10})
    with pytest.raises(ConfigError, match="unknown method 'gddd'.*did you mean 'gdd'"):
        expand_runs(_suite(methods=[{"method": "gddd"}]))
    with pytest.raises(ConfigError, match="no preset 'smok'.*did you mean 'smoke'"):
        expand_runs(_suite(methods=[{"method": "gdd", "preset": "smok"}]))
    with pytest.raises(ConfigError, match="unknown config key 'g_lrr'.*did you mean 'g_lr'"):
        expand_runs(_suite(methods=[{"method": "gdd", "method_overrides": {"g_lrr": 1.0}}]))


def test_sweep_axis_over_a_missing_key_is_refused():
    with pytest.raises(ConfigError, match="'freez' is not a field of GDDConfig.*did you mean 'freeze'"):
        expand_runs(_suite(sweep={"method.freez": ["none", "conv"]}))
    with pytest.raises(ConfigError, match="'total_kimgs' is not a field of LoopConfig.*did you mean 'total_kimg'"):
        expand_runs(_suite(sweep={"loop.total_kimgs": [1, 2]}))
    with pytest.raises(ConfigError, match="must be 'method.<Config field>' or 'loop.<LoopConfig field>'"):
        expand_runs(_suite(sweep={"freeze": ["none"]}))
    with pytest.raises(ConfigError, match="non-empty list"):
        _suite(sweep={"method.freeze": []})
    _, errors, _ = validate_suite(_suite(sweep={"method.freez": ["none"]}), check_files=False)
    assert any("did you mean 'freeze'" in e for e in errors)


def test_sweep_expands_to_the_grid_with_distinct_stable_ids():
    suite = _suite(sweep={"method.freeze": ["none", "conv"], "loop.batch_size": [32, 64]})
    runs = expand_runs(suite)
    grid = {(r.method_config["freeze"], r.loop_config["batch_size"]) for r in runs}
    assert grid == {("none", 32), ("none", 64), ("conv", 32), ("conv", 64)}
    assert len({r.run_id for r in runs}) == 4
    assert [r.run_id for r in runs] == [r.run_id for r in expand_runs(suite)], "ids are a pure function of the config"
    # Untouched fields come from the preset.
    assert all(r.method_config["g_lr"] == plugin.get_method("gdd").presets["smoke"]["method"]["g_lr"] for r in runs)
    # The same run named by two suites (different names/labels) shares its directory.
    other = _suite(name="other", methods=[{"method": "gdd", "preset": "smoke", "label": "x"}],
                   sweep={"method.freeze": ["conv"], "loop.batch_size": [64]})
    assert expand_runs(other)[0].run_id in {r.run_id for r in runs}


def test_validate_checks_files_and_resources(tmp_path):
    _, errors, _ = validate_suite(_suite(teacher=str(tmp_path / "missing.pkl")))
    assert any("teacher checkpoint" in e and "does not exist" in e for e in errors)
    _, errors, _ = validate_suite(_suite(teacher="edm-cifar10-32x32-uncond-vee"))
    assert any("did you mean 'edm-cifar10-32x32-uncond-ve'" in e for e in errors)
    _, errors, _ = validate_suite(_suite(dataset={"name": "cifar10", "resolution": 32, "channels": 3, "path": str(tmp_path / "nope")}))
    assert any("does not exist" in e for e in errors)
    _, errors, _ = validate_suite(_suite(resources={"profile": "local", "gpus": 8}))
    assert any("asks for 8 GPU(s) per run but profile 'local' gives 0" in e for e in errors)
    _, errors, _ = validate_suite(_suite(resources={"profile": "lcoal"}))
    assert any("did you mean 'local'" in e for e in errors)
    runs, errors, _ = validate_suite(load_suite("smoke"))
    assert not errors and runs


@pytest.mark.parametrize("name", [n for n in available_suites()])
def test_every_shipped_suite_resolves(name):
    suite = load_suite(name)
    runs, errors, _ = validate_suite(suite, check_files=False)
    assert not errors, errors
    assert runs
    if suite.teacher != "digits":  # digits suites (smoke, analyses) are the embedded default, not paper suites
        assert suite.published, "a paper suite records the published numbers it reproduces"
        assert suite.resources.gpus == 8 and suite.resources.profile == "a100-8gpu"
        labels = {r.label.split("[")[0] for r in runs}
        for p in suite.published:
            assert p.label in labels
            if p.where:  # the sweep point exists
                assert any(all(r.sweep_point.get(k) == v for k, v in p.where.items()) for r in runs if r.label.startswith(p.label))


def test_published_numbers_come_from_the_paper_tables():
    """Every published entry resolves to paper-table cells (benchmarks/paper_tables/, checked
    against the papers' text by test_paper_tables.py); the number is never written twice."""
    from onestep.benchmarks.paper_tables import load
    from onestep.benchmarks.suites import published_entries

    keys = {c.key: c for c in load().cells}
    checked = 0
    for name in available_suites():
        for e in published_entries(load_suite(name)):
            assert keys[e["cell"]].value == e["value"]
            checked += 1
    assert checked >= 20
