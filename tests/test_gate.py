"""Regression gate: directions, tolerances, missing results, baseline file errors, the CLI exit code."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from onestep.benchmarks import gate
from onestep.methods.core.config import ConfigError

BASE = {"methods": {
    "gdd": {"fd_digits": {"value": 10.0, "tolerance": 2.0, "better": "lower"}},
    "cd": {"fd_digits": {"value": 20.0, "tolerance": 1.0, "better": "lower"}, "label_acc": {"value": 0.9, "tolerance": 0.05, "better": "higher"}},
}}


def _status(rows):
    return {(r.method, r.metric): r.status for r in rows}


def test_directions_and_tolerances():
    rows = gate.compare({"gdd": {"fd_digits": 11.9}, "cd": {"fd_digits": 21.5, "label_acc": 0.96}}, BASE)
    assert _status(rows) == {("gdd", "fd_digits"): "ok", ("cd", "fd_digits"): "regressed", ("cd", "label_acc"): "improved"}
    rows = gate.compare({"gdd": {"fd_digits": 7.0}, "cd": {"fd_digits": 19.5, "label_acc": 0.84}}, BASE)
    assert _status(rows) == {("gdd", "fd_digits"): "improved", ("cd", "fd_digits"): "ok", ("cd", "label_acc"): "regressed"}
    assert [r.failed for r in rows] == [False, True, False] or sum(r.failed for r in rows) == 1


def test_missing_nan_and_new_results():
    rows = gate.compare({"gdd": {"fd_digits": math.nan}, "newm": {"fd_digits": 3.0}}, BASE)
    st = _status(rows)
    assert st[("gdd", "fd_digits")] == "missing" and st[("cd", "fd_digits")] == "missing"
    assert st[("newm", "fd_digits")] == "new"
    table = gate.format_table(rows)
    assert "MISSING" in table and "new" in table


def test_baseline_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist.*--update-baseline"):
        gate.load_baseline(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    with pytest.raises(ConfigError, match="not valid JSON"):
        gate.load_baseline(bad)
    bad.write_text(json.dumps({"methods": {"gdd": {"fd_digits": {"value": 1.0}}}}))
    with pytest.raises(ConfigError, match="lacks tolerance, better"):
        gate.load_baseline(bad)
    bad.write_text(json.dumps({"methods": {"gdd": {"fd_digits": {"value": 1.0, "tolerance": 1, "better": "smaller"}}}}))
    with pytest.raises(ConfigError, match="'lower' or 'higher'"):
        gate.load_baseline(bad)


def test_make_baseline_keeps_tolerances_and_refuses_nan(tmp_path):
    new = gate.make_baseline({"gdd": {"fd_digits": 8.0}, "x": {"fd_digits": 4.0}}, BASE)
    assert new["methods"]["gdd"]["fd_digits"] == {"value": 8.0, "tolerance": 2.0, "better": "lower"}
    assert new["methods"]["x"]["fd_digits"]["tolerance"] == pytest.approx(gate.DEFAULT_REL_TOL * 4.0)
    with pytest.raises(ConfigError, match="not a finite number"):
        gate.make_baseline({"gdd": {"fd_digits": math.inf}})
    with pytest.raises(ConfigError, match="cannot tell"):
        gate.make_baseline({"gdd": {"mystery": 1.0}})
    path = gate.write_baseline(tmp_path / "b.json", new)
    assert gate.load_baseline(path) == new


def test_committed_smoke_baseline_covers_every_smoke_method():
    from onestep.benchmarks.suites import expand_runs, load_suite

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "baselines" / "smoke.json"
    base = gate.load_baseline(path)
    labels = {r.label for r in expand_runs(load_suite("smoke"))}
    # Methods registered after the baseline was made show as 'new' in the gate (not a failure);
    # a baseline entry without a smoke run would fail every gate, so it must not exist.
    assert base["methods"] and set(base["methods"]) <= labels, \
        "regenerate with: onestep run smoke --check benchmarks/baselines/smoke.json --update-baseline"
    for metrics in base["methods"].values():
        assert "fd_digits" in metrics and all(m["tolerance"] > 0 for m in metrics.values())
    assert base["provenance"].get("git", {}).get("sha"), "the baseline records where it was produced"
