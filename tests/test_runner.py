"""One run: record layout, provenance, skip/resume/force/rerun-failed, killed jobs, the CLI."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from onestep.benchmarks import runner
from onestep.benchmarks.cli import main
from onestep.benchmarks.runner import execute_run
from onestep.benchmarks.store import ResultsStore
from onestep.benchmarks.suites import expand_runs, load_suite
from test_runner_fakes import FakePipeline, value_after

TESTS = Path(__file__).resolve().parent


def _spec(**eval_kw):
    ev = {"metrics": ["fd_digits"], "n_samples": 10, "seeds": "0-9", "periodic_n_samples": 5, "every_kimg": 1.0}
    ev.update(eval_kw)
    suite = load_suite({"name": "t", "teacher": "digits", "methods": [{"method": "gdd", "preset": "smoke"}], "evaluation": ev})
    return expand_runs(suite)[0]


def _calls(path):
    return path.read_text().split() if path.exists() else []


def test_a_run_records_everything(tmp_path):
    spec = _spec()
    store = ResultsStore(tmp_path)
    assert execute_run(spec, store, FakePipeline(steps=4)) == "complete"
    run = store.run(spec.run_id)
    assert run.path.name == spec.run_id and spec.run_id.startswith("gdd-")
    cfg = run.config()
    assert cfg["method_config"] == spec.method_config and cfg["loop_config"]["eval_kimg"] == 1.0
    prov = json.loads(run.provenance_file.read_text())
    assert set(prov) >= {"git", "packages", "hardware", "seeds", "started", "attempts"}
    assert "sha" in prov["git"] and "dirty" in prov["git"] and prov["packages"]["torch"]
    assert prov["hardware"]["torch"] and prov["seeds"]["evaluation"] == "0-9"
    series = run.metrics()
    assert [r["kimg"] for r in series] == [1.0, 2.0, 3.0, 4.0]
    final = run.final()
    assert final["metrics"]["fd_digits"] == pytest.approx(100 / (1 + value_after(4)))
    assert final["best"]["kimg"] == 4.0 and final["best"]["metric"] == "fd_digits"
    assert run.samples_file.exists() and final["ended"] and final["duration_s"] >= 0


def test_complete_is_skipped_force_reruns_failed_needs_flag(tmp_path):
    spec, store, calls = _spec(), ResultsStore(tmp_path), tmp_path / "calls"
    execute_run(spec, store, FakePipeline(calls_file=calls))
    execute_run(spec, store, FakePipeline(calls_file=calls))
    assert len(_calls(calls)) == 2, "a complete run is not trained again"  # "train PID" = 2 tokens
    execute_run(spec, store, FakePipeline(calls_file=calls), force=True)
    assert len(_calls(calls)) == 4
    other = _spec(n_samples=5, seeds="0-4")
    with pytest.raises(RuntimeError, match="diverged"):
        execute_run(other, store, FakePipeline(fail=True))
    st = store.run(other.run_id).state()
    assert st.state == "failed" and "diverged" in st.detail
    assert "Traceback" in json.loads(store.run(other.run_id).error_file.read_text())["traceback"]
    assert execute_run(other, store, FakePipeline(calls_file=calls), rerun_failed=False) == "failed"
    assert len(_calls(calls)) == 4
    assert execute_run(other, store, FakePipeline(calls_file=calls), rerun_failed=True) == "complete"


def test_killed_job_resumes_from_its_checkpoint(tmp_path):
    spec, store = _spec(), ResultsStore(tmp_path)
    code = (
        "import sys, json; sys.path.insert(0, sys.argv[1]);"
        "from test_runner_fakes import FakePipeline;"
        "from onestep.benchmarks.runner import execute_run;"
        "execute_run(json.loads(sys.argv[2]), sys.argv[3], FakePipeline(steps=6, kill_at=3))"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(TESTS), json.dumps(spec.to_dict()), str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr  # SIGKILL mid-run
    run = store.run(spec.run_id)
    assert run.state().state == "interrupted"
    assert json.loads((run.checkpoint_dir / "state.json").read_text())["step"] == 3
    assert execute_run(spec, store, FakePipeline(steps=6)) == "complete"
    final = run.final()
    assert final["train"]["resumed_from_step"] == 3
    assert final["metrics"]["fd_digits"] == pytest.approx(100 / (1 + value_after(6)))
    assert [r["kimg"] for r in run.metrics()] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert len(json.loads(run.provenance_file.read_text())["attempts"]) == 2


def _fake_cli(monkeypatch, **kw):
    monkeypatch.setattr(runner, "Pipeline", lambda device=None: FakePipeline(**kw))


def _tiny_suite(tmp_path) -> Path:
    p = tmp_path / "tiny.yaml"
    p.write_text(
        "name: tiny\nteacher: digits\nmethods: all\npreset: smoke\n"
        "evaluation: {metrics: [fd_digits], n_samples: 10, seeds: '0-9', every_kimg: 1.0, periodic_n_samples: 5}\n"
    )
    return p


def test_cli_run_status_and_gate(tmp_path, monkeypatch, capsys):
    _fake_cli(monkeypatch, steps=3)
    suite, store, baseline = _tiny_suite(tmp_path), tmp_path / "store", tmp_path / "base.json"
    assert main(["run", str(suite), "--store", str(store), "--check", str(baseline), "--update-baseline"]) == 0
    base = json.loads(baseline.read_text())
    labels = {r.label for r in expand_runs(load_suite(suite))}
    assert set(base["methods"]) == labels
    assert main(["run", str(suite), "--store", str(store), "--check", str(baseline)]) == 0
    out = capsys.readouterr().out
    assert "gate passed" in out and "complete, skipped" in out
    assert (store / "summaries" / "tiny.csv").exists() and (store / "index.parquet").exists()
    assert json.loads((store / "summaries" / "tiny.suite.json").read_text())["suite"]["name"] == "tiny"
    # Make one method's baseline better than it can reach: the gate fails and prints the table.
    victim = sorted(labels)[0]
    base["methods"][victim]["fd_digits"]["value"] /= 10
    baseline.write_text(json.dumps(base))
    assert main(["run", str(suite), "--store", str(store), "--check", str(baseline)]) == 1
    captured = capsys.readouterr()
    assert "REGRESSED" in captured.out and "GATE FAILED" in captured.err
    assert main(["status", str(suite), "--store", str(store)]) == 0
    assert f"{len(labels)} complete" in capsys.readouterr().out


def test_cli_failed_runs_exit_nonzero_and_rerun_failed(tmp_path, monkeypatch, capsys):
    suite, store = _tiny_suite(tmp_path), tmp_path / "store"
    _fake_cli(monkeypatch, fail=True)
    assert main(["run", str(suite), "--store", str(store), "--method", "gdd"]) == 1
    assert main(["status", str(suite), "--store", str(store), "--method", "gdd"]) == 0
    assert "1 failed" in capsys.readouterr().out
    _fake_cli(monkeypatch)
    assert main(["run", str(suite), "--store", str(store), "--method", "gdd"]) == 1, "failed runs stay failed without the flag"
    assert main(["run", str(suite), "--store", str(store), "--method", "gdd", "--rerun-failed"]) == 0


def test_cli_read_only_store_fails_before_any_work(tmp_path, monkeypatch, capsys):
    from test_store import _make_readonly

    started = []
    monkeypatch.setattr(runner, "Pipeline", lambda device=None: started.append(1))
    ro = tmp_path / "ro"
    undo = _make_readonly(ro)
    try:
        assert main(["run", str(_tiny_suite(tmp_path)), "--store", str(ro / "store")]) == 2
    finally:
        undo()
    assert "not writable" in capsys.readouterr().err and not started


def test_cli_unknown_suite_method_and_validate(tmp_path, capsys):
    assert main(["run", "smok"]) == 2
    assert "did you mean 'smoke'" in capsys.readouterr().err
    assert main(["run", "smoke", "--method", "gddd", "--store", str(tmp_path)]) == 2
    assert "did you mean 'gdd'" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nmethods: [{method: gdd, preset: smoke}]\nsweep: {method.freez: [conv]}\n")
    assert main(["validate", str(bad), "smoke"]) == 1
    out = capsys.readouterr().out
    assert "bad: INVALID" in out and "did you mean 'freeze'" in out and "smoke: ok" in out
