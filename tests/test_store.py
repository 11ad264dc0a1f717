"""Results store: run states, atomic records, read-only stores, the index, 16 concurrent writers."""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from onestep.benchmarks.store import ResultsStore, RunBusy, StoreError, index_row, job_identity


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_run_lifecycle_states(tmp_path):
    store = ResultsStore(tmp_path / "store")
    store.check_writable()
    run = store.run("m-abc")
    assert run.state().state == "pending"
    run.write_config({"run_id": "m-abc", "method": "m"})
    run.claim()
    assert run.state().state == "interrupted", "our own pid owning it from an earlier call means the call is over"
    # A live owner on this host: the parent process.
    status = run.status()
    status["owner"] = {"host": job_identity()["host"], "pid": os.getppid()}
    (run.path / "status.json").write_text(json.dumps(status))
    assert run.state().state == "running"
    with pytest.raises(RunBusy):
        run.claim()
    # The owner died (killed job): resumable, not 'running'.
    status["owner"]["pid"] = _dead_pid()
    (run.path / "status.json").write_text(json.dumps(status))
    assert run.state().state == "interrupted"
    assert run.claim()["attempt"] == 2
    run.write_failure("RuntimeError: boom", "Traceback...")
    st = run.state()
    assert st.state == "failed" and "boom" in st.detail
    run.claim()
    run.write_final({"metrics": {"fd": 1.0}})
    assert run.state().state == "complete" and not run.error_file.exists()


def test_requeued_slurm_job_takes_over_its_own_run(tmp_path, monkeypatch):
    run = ResultsStore(tmp_path).run("m-1")
    other_host = {"host": "node-7", "pid": 1234, "slurm_job_id": "42_3"}
    run.claim(me=other_host)
    # Another node with a fresh heartbeat counts as alive ...
    assert run.state().state == "running"
    # ... unless it is the same Slurm job, requeued: the previous attempt is over.
    monkeypatch.setenv("SLURM_JOB_ID", "42_3")
    assert run.claim()["attempt"] == 2
    # A stale heartbeat from another host counts as dead.
    monkeypatch.delenv("SLURM_JOB_ID")
    run.claim(me={"host": "node-9", "pid": 1}, force=True)
    status = run.status()
    status["heartbeat"] -= 3600
    (run.path / "status.json").write_text(json.dumps(status))
    assert run.state().state == "interrupted"


def _make_readonly(path):
    """A directory this process cannot write to, also as root (chattr +i or a read-only mount)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        path.chmod(0o555)
        return lambda: path.chmod(0o755)
    if shutil.which("chattr") and subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0:
        return lambda: subprocess.run(["chattr", "-i", str(path)], check=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(path)], capture_output=True).returncode == 0:
        return lambda: subprocess.run(["umount", str(path)], check=True)
    pytest.fail("cannot make a read-only directory here (root without chattr or mount)")


def test_read_only_store_is_an_error_before_any_work(tmp_path):
    ro = tmp_path / "ro"
    undo = _make_readonly(ro)
    try:
        with pytest.raises(StoreError, match="not writable.*--store"):
            ResultsStore(ro).check_writable()
        with pytest.raises(StoreError, match="not writable"):
            ResultsStore(ro / "sub" / "store").check_writable()
    finally:
        undo()
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        ResultsStore(f / "store").check_writable()


def test_index_tolerates_partial_failed_and_unreadable_runs(tmp_path):
    store = ResultsStore(tmp_path)
    ok = store.run("a-1")
    ok.write_config({"run_id": "a-1", "method": "a", "label": "A", "suite": "s", "method_config": {"lr": 0.1, "d": {"k": 1}}})
    ok.claim()
    ok.write_final({"metrics": {"fd": 3.5}, "duration_s": 2.0})
    bad = store.run("b-1")
    bad.write_config({"run_id": "b-1", "method": "b", "suite": "s"})
    bad.claim()
    bad.write_failure("ValueError: nan", "tb")
    store.run("c-1").path.mkdir(parents=True)  # created, nothing written yet
    broken = store.run("d-1")
    broken.path.mkdir(parents=True)
    broken.config_file.write_text("{not json")
    df = store.build_index()
    states = dict(zip(df.run_id, df.state))
    assert states == {"a-1": "complete", "b-1": "failed", "c-1": "pending", "d-1": "pending"}
    row = df.set_index("run_id").loc["a-1"]
    assert row["metric.fd"] == 3.5 and row["method.lr"] == 0.1 and row["method.d.k"] == 1
    assert "config.json" in df.set_index("run_id").loc["d-1", "detail"]
    parquet, csv = store.write_index()
    assert len(pd.read_parquet(parquet)) == 4 and len(pd.read_csv(csv)) == 4


def _finish_runs(args):
    root, worker, n_runs = args
    store = ResultsStore(root)
    for i in range(n_runs):
        run = store.run(f"w{worker:02d}-{i}")
        run.write_config({"run_id": run.run_id, "method": f"w{worker}", "suite": "conc", "label": run.run_id})
        run.claim()
        for k in range(3):
            run.append_metrics({"kind": "periodic", "kimg": k, "fd": float(worker * 100 + i + k)})
        run.write_final({"metrics": {"fd": float(worker * 100 + i)}})
        store.write_index()  # every process publishes an aggregate at the same time
    return worker


def test_sixteen_processes_finishing_runs_lose_nothing(tmp_path):
    n_proc, n_runs = 16, 3
    ctx = mp.get_context("fork")
    with ctx.Pool(n_proc) as pool:
        assert sorted(pool.map(_finish_runs, [(str(tmp_path), w, n_runs) for w in range(n_proc)])) == list(range(n_proc))
    store = ResultsStore(tmp_path)
    df = store.build_index()
    assert len(df) == n_proc * n_runs and set(df.state) == {"complete"}
    expect = {f"w{w:02d}-{i}": float(w * 100 + i) for w in range(n_proc) for i in range(n_runs)}
    assert dict(zip(df.run_id, df["metric.fd"])) == expect
    for rid in expect:
        assert [r["kimg"] for r in store.run(rid).metrics()] == [0, 1, 2]
    # The published index is a complete aggregate (the last rename wins, none is torn).
    store.write_index()
    assert len(pd.read_parquet(tmp_path / "index.parquet")) == n_proc * n_runs
    assert not list(tmp_path.glob(".index*.tmp")) and not list((tmp_path / "runs").glob("*/.*.tmp"))


def test_index_row_of_empty_dir(tmp_path):
    run = ResultsStore(tmp_path).run("x-1")
    run.path.mkdir(parents=True)
    row = index_row(run)
    assert row["state"] == "pending" and row["method"] is None
