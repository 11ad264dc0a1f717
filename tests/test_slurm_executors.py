"""Executors and profiles against a real local Slurm (submitit job arrays, cancellation)."""
from __future__ import annotations

import operator
import subprocess

import pytest
import submitit

from onestep.environments.executors import Profile, check_resources, load_profile, make_executor
from onestep.methods.core.config import ConfigError


def test_profile_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="unknown profile 'a100-8gpux'"):
        load_profile("a100-8gpux")
    with pytest.raises(ConfigError, match="executor 'slrum'.*did you mean 'slurm'"):
        load_profile({"executor": "slrum"})
    with pytest.raises(ConfigError, match="unknown config key 'gpu_per_node'.*did you mean 'gpus_per_node'"):
        load_profile({"executor": "slurm", "gpu_per_node": 8})
    bad = tmp_path / "p.yaml"
    bad.write_text("executor: local\nnodes: 2\n")
    with pytest.raises(ConfigError, match="nodes must be 1"):
        load_profile(bad)


def test_gpu_profile_on_cpu_machine_is_refused():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this check is about machines without GPUs")
    with pytest.raises(ConfigError, match="asks for 8 GPU\\(s\\) per node but this machine has 0"):
        check_resources(Profile(name="x", executor="local", gpus_per_node=8))


def test_gpu_profile_on_cluster_without_gpus_is_refused(local_slurm):
    with pytest.raises(ConfigError, match="Slurm cluster's nodes report at most 0"):
        make_executor({"name": "a100", "executor": "slurm", "gpus_per_node": 8}, local_slurm.base / "logs")


def test_job_array_runs_on_slurm(local_slurm):
    ex = make_executor({"executor": "slurm", "cpus_per_task": 1, "timeout_min": 60}, local_slurm.base / "logs")
    jobs = ex.map_array(operator.mul, [1, 2, 3], [10, 20, 30])
    assert [j.result() for j in jobs] == [10, 40, 90]
    assert all("_" in j.job_id for j in jobs), "an array job id looks like JOBID_INDEX"


def test_cancelled_job_is_reported_not_awaited_forever(local_slurm):
    # With accounting (slurmdbd) submitit learns the CANCELLED state and raises instead of hanging.
    import time

    ex = make_executor({"executor": "slurm", "cpus_per_task": 1, "timeout_min": 60}, local_slurm.base / "logs")
    job = ex.submit(time.sleep, 300)
    deadline = time.time() + 30
    while job.state in ("UNKNOWN", "PENDING") and time.time() < deadline:
        time.sleep(0.5)
    subprocess.run(["scancel", job.job_id], check=True)
    with pytest.raises(submitit.core.utils.UncompletedJobError):
        job.result()
