"""Sweeps: code snapshot, job arrays with the debug/local executors and a fake Slurm, CLI output."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from onestep.benchmarks.cli import main
from onestep.benchmarks.runner import RunJob, snapshot_code, submit_runs
from onestep.benchmarks.store import ResultsStore
from onestep.benchmarks.suites import expand_runs, load_suite
from test_runner_fakes import FakePipeline, value_after

TESTS = Path(__file__).resolve().parent


def _runs(n_values=(0.0, 1e-3, 1e-4)):
    suite = load_suite({"name": "sw", "teacher": "digits", "methods": [{"method": "gdd", "preset": "smoke"}],
                        "evaluation": {"metrics": ["fd_digits"], "n_samples": 4, "seeds": "0-3", "every_kimg": 1.0},
                        "sweep": {"method.r1_gamma": list(n_values)}})
    return expand_runs(suite)


def test_snapshot_shadows_the_installed_package(tmp_path):
    code = snapshot_code(tmp_path / "code")
    assert (code / "onestep" / "benchmarks" / "runner.py").exists()
    assert not list(code.rglob("__pycache__"))
    snap = json.loads((code / "onestep" / "SNAPSHOT.json").read_text())
    assert "sha" in snap["git"]
    # A later edit of the snapshot's copy is what a job sees, not the working tree.
    (code / "onestep" / "benchmarks" / "snapshot_marker.py").write_text("MARK = 'from-snapshot'\n")
    env = dict(os.environ, PYTHONPATH=str(code))
    out = subprocess.run(
        [sys.executable, "-c", "import onestep.benchmarks.runner as r, onestep.benchmarks.snapshot_marker as m;"
                               "print(r.__file__); print(m.MARK); print(r.git_info()['snapshot'])"],
        env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split()
    assert lines[0].startswith(str(code)) and lines[1] == "from-snapshot" and lines[2] == str(code / "onestep")


def test_debug_executor_array_runs_and_is_idempotent(tmp_path):
    runs = _runs()
    jobs = submit_runs(runs, tmp_path / "store", "debug", tmp_path / "sweep", pipeline=FakePipeline(steps=2), snapshot=False)
    results = [j.result() for j in jobs]
    assert [r["state"] for r in results] == ["complete"] * 3
    store = ResultsStore(tmp_path / "store")
    assert {s.state for s in store.states()} == {"complete"}
    for r in results:
        assert r["final"]["metrics"]["fd_digits"] == pytest.approx(100 / (1 + value_after(2)))
    # A requeued job (same call again) finds its run complete and does nothing.
    again = RunJob(pipeline=FakePipeline(steps=2, fail=True))(runs[0].to_dict(), str(tmp_path / "store"))
    assert again["state"] == "complete"
    sub = json.loads((tmp_path / "sweep" / "submission.json").read_text())
    assert [j["run_id"] for j in sub["jobs"]] == [r.run_id for r in runs]


def test_checkpoint_requeues_the_same_call():
    job = RunJob()
    delayed = job.checkpoint({"run_id": "x"}, "/store")
    assert delayed.function is job and delayed.args == ({"run_id": "x"}, "/store")


def test_local_executor_jobs_import_from_the_snapshot(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(TESTS))  # the fake pipeline's module, for the job processes
    runs = _runs((0.0, 1e-3))
    jobs = submit_runs(runs, tmp_path / "store", "local", tmp_path / "sweep", pipeline=FakePipeline(steps=2))
    results = [j.result() for j in jobs]
    assert all(r["state"] == "complete" for r in results)
    assert all(r["code"] == str(tmp_path / "sweep" / "code" / "onestep") for r in results), results
    assert os.environ["PYTHONPATH"] == str(TESTS), "the submitter's environment is restored"


def _fake_slurm(tmp_path, monkeypatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "sbatch.log"
    (bin_dir / "sbatch").write_text(f"#!/bin/sh\necho \"$@\" >> {log}\nfor a; do last=$a; done\ncp \"$last\" {tmp_path}/submitted.sh\n"
                                    "echo 'Submitted batch job 4242'\n")
    (bin_dir / "sinfo").write_text("#!/bin/sh\necho '(null)'\n")
    # submitit's Slurm executor refuses to start without srun on PATH (SlurmExecutor.affinity).
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return tmp_path / "submitted.sh"


def test_cli_sweep_submits_one_array_with_the_snapshot(tmp_path, monkeypatch, capsys):
    script = _fake_slurm(tmp_path, monkeypatch)
    suite = tmp_path / "sw.yaml"
    suite.write_text("name: sw\nteacher: digits\nmethods: [{method: gdd, preset: smoke}]\n"
                     "sweep: {method.r1_gamma: [0.0, 1.0e-3, 1.0e-4]}\nresources: {profile: slurm-cpu}\n")
    store, folder = tmp_path / "store", tmp_path / "sweep"
    assert main(["sweep", str(suite), "--store", str(store), "--folder", str(folder)]) == 0
    out = capsys.readouterr().out
    ids = [line.split("\t")[0] for line in out.splitlines() if "\t" in line]
    assert ids == ["4242_0", "4242_1", "4242_2"]
    text = script.read_text()
    assert "#SBATCH --array=0-2" in text
    assert f"export PYTHONPATH={folder / 'code'}" in text
    assert (folder / "code" / "onestep" / "benchmarks" / "runner.py").exists()
    # Complete runs are not submitted again.
    run_ids = [j["run_id"] for j in json.loads((folder / "submission.json").read_text())["jobs"]]
    r = ResultsStore(store).run(run_ids[0])
    r.write_config({"run_id": run_ids[0]})
    r.claim()
    r.write_final({"metrics": {}})
    assert main(["sweep", str(suite), "--store", str(store), "--folder", str(tmp_path / "sweep2")]) == 0
    assert "submitted 2 run(s) (1 skipped)" in capsys.readouterr().out


def test_cli_sweep_refuses_gpu_profile_and_bad_suite(tmp_path, capsys):
    assert main(["sweep", "gdd_cifar10", "--profile", "local", "--store", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "asks for 8 GPU(s) per run but profile 'local' gives 0" in err
    assert main(["sweep", "smoke", "--profile", "a100-8gpux", "--store", str(tmp_path)]) == 2
    assert "did you mean 'a100-8gpu'" in capsys.readouterr().err


def test_env_reports_weights_slurm_and_profile(tmp_path, monkeypatch, capsys):
    import torch

    from onestep.methods.core.paths import cache_dir

    _fake_slurm(tmp_path, monkeypatch)
    (tmp_path / "bin" / "sinfo").write_text("#!/bin/sh\necho 'debug* up 1 idle (null)'\n")
    weights = cache_dir("weights") / "vgg16-397923af.pth"
    existed = weights.exists()
    if not existed:
        torch.save({"w": torch.zeros(1)}, weights)  # found by name; not the released file (checksum differs)
    monkeypatch.setenv("ONESTEP_PROFILE", "debug")
    monkeypatch.setenv("ONESTEP_OFFLINE", "1")
    try:
        assert main(["env", "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
    finally:
        if not existed:
            weights.unlink()
    assert info["torch"] == torch.__version__ and info["cuda_available"] == torch.cuda.is_available()
    assert info["feature_weights"]["vgg16"]["found"] and info["feature_weights"]["vgg16"]["path"] == str(weights)
    if not existed:
        assert info["feature_weights"]["vgg16"]["released"] is False, "a file with the wrong checksum is not the released one"
    assert "edm-cifar10-32x32-uncond-ve" in info["teacher_weights"]
    assert info["slurm"] == {"reachable": True, "partitions": ["debug* up 1 idle (null)"]}
    assert info["profile"]["name"] == "debug" and info["profile"]["executor"] == "debug"
    assert main(["env"]) == 0
    assert "profile: debug" in capsys.readouterr().out


def _launch_two_ranks(spec, store, calls, port):
    code = ("import sys, json; sys.path.insert(0, sys.argv[1]);"
            "from test_runner_fakes import FakePipeline; from onestep.benchmarks.runner import RunJob;"
            "print(json.dumps(RunJob(device='cpu', pipeline=FakePipeline(steps=2, calls_file=sys.argv[4]))(json.loads(sys.argv[2]), sys.argv[3])['state']))")
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        procs.append(subprocess.Popen([sys.executable, "-c", code, str(TESTS), json.dumps(spec.to_dict()), str(store), str(calls)],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    return [json.loads(o[0].strip().splitlines()[-1]) for o in outs]


def test_multi_rank_job_trains_on_every_rank_and_records_once(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec, store, calls = _runs((0.0,))[0], tmp_path / "store", tmp_path / "calls"
    assert _launch_two_ranks(spec, store, calls, port) == ["complete", "follower"]
    assert len(set(calls.read_text().split()[1::2])) == 2, "both ranks trained"
    run = ResultsStore(store).run(spec.run_id)
    assert run.state().state == "complete" and run.status()["attempt"] == 1, "only rank 0 claimed and recorded"
    assert _launch_two_ranks(spec, store, calls, port + 1) == ["complete", "complete"]
    assert len(calls.read_text().split()) == 4, "a complete run is skipped by every rank"
