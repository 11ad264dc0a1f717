"""Aggregate the results index of 1,000 synthetic run directories; target < 5 s.

    python -m onestep.benchmarks.perf.store_index [--runs 1000] [--keep DIR]

Each synthetic run has what a real run writes (config, provenance, status, a 10-point metric
time series, final record); 5% are failed and 5% unfinished, as in a live store.
"""
from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import time
from pathlib import Path

import pandas  # noqa: F401  (imported up front: the timing is of the aggregation, not of importing pandas)

from onestep.benchmarks.store import ResultsStore

TARGET_S = 5.0


def make_store(root: Path, n: int) -> ResultsStore:
    """Synthetic run directories in the store's layout. Written with plain writes (no fsync):
    setting up 1,000 runs is not what is measured, and the files are identical."""
    store = ResultsStore(root)
    host = socket.gethostname()
    for i in range(n):
        run = store.run(f"gdd-{i:06d}")
        run.path.mkdir(parents=True)
        put = lambda name, obj: (run.path / name).write_text(json.dumps(obj, sort_keys=True))  # noqa: E731
        put("config.json", {
            "run_id": run.run_id, "suite": "perf", "label": f"gdd[r1_gamma={i}]", "method": "gdd", "preset": "smoke",
            "method_config": {"g_lr": 1e-4, "d_lr": 2e-4, "r1_gamma": i * 1e-6, "freeze": "none",
                              "discriminator": {"kind": "projected", "feature_networks": ["digits"], "width_scale": 0.25}},
            "loop_config": {"total_kimg": 12.8, "batch_size": 64, "seed": 0},
            "sweep_point": {"method.r1_gamma": i * 1e-6},
        })
        put("provenance.json", {"git": {"sha": "0" * 40, "dirty": False}, "started": "2026-11-22T00:00:00Z"})
        (run.path / "metrics.jsonl").write_text("".join(
            json.dumps({"kind": "periodic", "kimg": k * 1.28, "fd_digits": 100.0 / (k + 1)}) + "\n" for k in range(10)))
        status = {"state": "running", "owner": {"host": host, "pid": 1 << 22}, "attempt": 1, "heartbeat": time.time()}
        if i % 20 == 0:  # 5% failed
            status.update(state="failed", error="RuntimeError: synthetic")
        elif i % 20 != 1:  # 5% unfinished (owner gone), the rest complete
            status["state"] = "complete"
            put("final.json", {"metrics": {"fd_digits": 10.0 + i % 7, "is_digits": 9.0}, "duration_s": 60.0,
                               "ended": "2026-11-22T00:01:00Z"})
        put("status.json", status)
    return store


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--keep", type=Path, default=None, help="build the synthetic store here and keep it")
    args = ap.parse_args(argv)
    tmp = None if args.keep else tempfile.TemporaryDirectory(prefix="onestep-perf-store-")
    root = args.keep or Path(tmp.name)
    t0 = time.perf_counter()
    store = make_store(root, args.runs)
    t_make = time.perf_counter() - t0
    t0 = time.perf_counter()
    df = store.build_index()
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    store.write_index()
    t_total = time.perf_counter() - t0  # write_index rebuilds and writes parquet + csv
    states = df["state"].value_counts().to_dict()
    print(f"synthetic store: {args.runs} runs written in {t_make:.1f}s; states {states}")
    print(f"{'step':<36}{'measured':>10}{'target':>10}{'ratio':>8}")
    print(f"{'build index (pandas, from run dirs)':<36}{t_build:>9.2f}s{TARGET_S:>9.1f}s{t_build / TARGET_S:>8.2f}")
    print(f"{'index -> parquet + csv (total)':<36}{t_total:>9.2f}s{TARGET_S:>9.1f}s{t_total / TARGET_S:>8.2f}")
    if tmp:
        tmp.cleanup()
    ok = t_total < TARGET_S
    print("PASS" if ok else "SLOWER THAN TARGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
