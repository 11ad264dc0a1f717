"""Submit a 100-run sweep; target < 10 s (expansion + code snapshot + submission).

    python -m onestep.benchmarks.perf.sweep_submit [--runs 100]

Back ends side by side: a fake Slurm (stub `sbatch`/`sinfo` on PATH, so the real submitit
Slurm path writes and "submits" one job-array script), the debug executor (submission only;
jobs are not run), and with --real-slurm a real single-node Slurm brought up for the
measurement (environments/local_slurm.py; the array is cancelled right after submission).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from onestep.benchmarks.runner import submit_runs
from onestep.benchmarks.suites import expand_runs, load_suite

TARGET_S = 10.0


def sweep_suite(n: int) -> dict:
    return {"name": "perf-sweep", "teacher": "digits", "methods": [{"method": "gdd", "preset": "smoke"}],
            "sweep": {"method.r1_gamma": [i * 1e-6 for i in range(n)]}}


def install_fake_slurm(bin_dir: Path) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / "sbatch").write_text("#!/bin/sh\necho 'Submitted batch job 777'\n")
    (bin_dir / "sinfo").write_text("#!/bin/sh\necho '(null)'\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--real-slurm", action="store_true", help="also submit to a real local Slurm (root, Debian packages)")
    args = ap.parse_args(argv)
    rows = []

    def measure(backend: str, profile: str, tmp: Path) -> list:
        t0 = time.perf_counter()
        runs = expand_runs(load_suite(sweep_suite(args.runs)))
        t_expand = time.perf_counter() - t0
        jobs = submit_runs(runs, tmp / "store", profile, tmp / f"sweep-{backend.split()[0]}")
        total = time.perf_counter() - t0
        assert len(jobs) == args.runs
        rows.append((backend, t_expand, total, jobs[0].job_id, jobs[-1].job_id))
        return jobs

    if args.real_slurm:
        import subprocess

        from onestep.environments.local_slurm import LocalSlurm

        with tempfile.TemporaryDirectory(prefix="onestep-perf-sweep-") as tmp, LocalSlurm():
            jobs = measure("real slurm (job array)", "slurm-cpu", Path(tmp))
            subprocess.run(["scancel", jobs[0].job_id.split("_")[0]], capture_output=True)
    with tempfile.TemporaryDirectory(prefix="onestep-perf-sweep-") as tmp:
        tmp = Path(tmp)
        install_fake_slurm(tmp / "bin")
        for backend, profile in (("fake slurm (job array)", "slurm-cpu"), ("debug executor", "debug")):
            measure(backend, profile, tmp)
    print(f"{args.runs} runs per sweep")
    print(f"{'backend':<26}{'expand':>9}{'total':>9}{'target':>9}{'ratio':>7}   job ids")
    for backend, t_expand, total, first, last in rows:
        print(f"{backend:<26}{t_expand:>8.2f}s{total:>8.2f}s{TARGET_S:>8.1f}s{total / TARGET_S:>7.2f}   {first} .. {last}")
    ok = all(r[2] < TARGET_S for r in rows)
    print("PASS" if ok else "SLOWER THAN TARGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
