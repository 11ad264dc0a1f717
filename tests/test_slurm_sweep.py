"""End to end on a real Slurm: `onestep sweep` submits a job array of 3 smoke runs, the results
land in the store, and one job requeued mid-run (`scontrol requeue`) resumes from its
checkpoint and completes."""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from onestep.benchmarks.cli import main as onestep
from onestep.benchmarks.store import ResultsStore

LRS = [2e-3, 1e-3, 5e-4]


def _suite(tmp_path: Path) -> Path:
    suite = {
        "name": "slurm-it",
        "description": "3 EDM smoke runs (a learning-rate sweep) for the Slurm integration test",
        "teacher": None,
        "dataset": {"name": "digits", "resolution": 8, "channels": 1, "conditional": True, "reference": "train"},
        "methods": [{
            "method": "edm", "preset": "smoke",
            # Long enough (~20 s of CPU) to requeue a job mid-run, with frequent checkpoints.
            "loop_overrides": {"total_kimg": 5.12, "checkpoint_kimg": 0.64, "log_kimg": 0.64},
        }],
        "sweep": {"method.lr": LRS},
        "evaluation": {"metrics": ["fd_digits"], "n_samples": 200, "seeds": "0-199", "batch_size": 100,
                       "every_kimg": None, "grid_samples": 16},
        "resources": {"profile": "local", "gpus": 0},
    }
    path = tmp_path / "slurm-it.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def _profile(tmp_path: Path) -> Path:
    path = tmp_path / "slurm-1cpu.yaml"
    path.write_text(yaml.safe_dump({"executor": "slurm", "cpus_per_task": 1, "timeout_min": 60, "array_parallelism": 3}))
    return path


def _wait(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _log_records(run_dir: Path) -> list[dict]:
    path = run_dir / "checkpoints" / "log.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_sweep_array_lands_in_store_and_requeued_job_resumes(local_slurm, digits_feature_net, tmp_path, capsys):
    store_dir = tmp_path / "store"
    folder = tmp_path / "sweep"
    rc = onestep(["sweep", str(_suite(tmp_path)), "--profile", str(_profile(tmp_path)), "--store", str(store_dir),
                  "--folder", str(folder), "--device", "cpu"])
    out = capsys.readouterr().out
    assert rc == 0, out
    rows = [line.split("\t") for line in out.splitlines() if "\t" in line]
    assert len(rows) == 3, out
    jobs = {run_id: job_id for job_id, run_id, _ in rows}
    assert all("_" in j for j in jobs.values()), "the three runs are submitted as one job array"

    store = ResultsStore(store_dir)
    victim = rows[0][1]
    victim_dir = store.run(victim).path

    # Requeue the first run once it has written a checkpoint and is still training.
    def checkpointed():
        recs = _log_records(victim_dir)
        return (victim_dir / "checkpoints" / "resume.pt").exists() and not any(r["kind"] == "done" for r in recs)

    _wait(checkpointed, 240, "the first run to write a checkpoint")
    subprocess.run(["scontrol", "requeue", jobs[victim]], check=True, capture_output=True)

    def all_complete():
        states = {s.run_id: s.state for s in store.states()}
        return len(states) == 3 and all(v == "complete" for v in states.values()) and states

    _wait(all_complete, 420, "all three runs to complete")

    # Results landed: one final record per run, each with its own learning rate and a metric.
    finals = {rid: store.run(rid).final() for rid in jobs}
    lrs = sorted(store.run(rid).config()["method_config"]["lr"] for rid in jobs)
    assert lrs == sorted(LRS)
    for rid, final in finals.items():
        fd = final["metrics"]["fd_digits"]
        value = fd["value"] if isinstance(fd, dict) else fd
        assert value == value and value > 0, (rid, final["metrics"])

    # The requeued run resumed from its checkpoint rather than starting over.
    kinds = [r["kind"] for r in _log_records(victim_dir)]
    assert "resume" in kinds, kinds
    resumed_at = next(r["step"] for r in _log_records(victim_dir) if r["kind"] == "resume")
    assert resumed_at > 0
    info = subprocess.run(["scontrol", "show", "job", jobs[victim]], capture_output=True, text=True).stdout
    assert "Restarts=1" in info, info

    # The index aggregates the store, and status reports every run complete.
    store.write_index()
    assert (store_dir / "index.csv").exists() or any(store_dir.glob("**/index.csv"))
