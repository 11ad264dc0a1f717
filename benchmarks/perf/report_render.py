"""Render the report of 1,000 synthetic runs, then re-render it; target for a re-render < 30 s.

    python -m onestep.benchmarks.perf.report_render [--runs 1000] [--keep DIR]

The store has what real runs write (config, provenance, status, a 20-point metric series, final
record with metric details, an 8x8-digit sample grid) in 10 suites of 100 runs on CIFAR-10
(FID, IS; each suite names paper cells) and digits; 5% failed, 5% unfinished. Printed: the cold
render (every figure drawn), the re-render of the unchanged store (figures from the cache), and
the re-render after 10 runs changed, each beside the target.
"""
from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 30.0
SUITES = 10


def _grid_png() -> bytes:
    import io

    from PIL import Image

    im = Image.new("L", (64, 64), color=0)
    for k in range(0, 64, 4):
        im.putpixel((k, (k * 5) % 64), 255)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def make_store(root: Path, n: int) -> None:
    host, png = socket.gethostname(), _grid_png()
    for i in range(n):
        suite, j = f"perf{i % SUITES}", i // SUITES
        digits = i % SUITES == 0
        run = root / "runs" / f"gdd-{i:012d}"
        run.mkdir(parents=True)
        put = lambda name, obj: (run / name).write_text(json.dumps(obj, sort_keys=True))  # noqa: E731
        ds = {"name": "digits", "resolution": 8, "conditional": True} if digits else \
            {"name": "cifar10", "resolution": 32, "conditional": False}
        metrics = ["fd_digits"] if digits else ["fid", "isc"]
        put("config.json", {
            "run_id": run.name, "suite": suite, "label": f"m{j % 5}[r1_gamma={j}]", "method": "gdd", "preset": "smoke",
            "method_config": {"r1_gamma": j * 1e-6, "freeze": "none"}, "loop_config": {"total_kimg": 5000, "batch_size": 256},
            "sweep_point": {"method.r1_gamma": j * 1e-6}, "dataset": ds,
            "evaluation": {"metrics": metrics, "n_samples": 50000, "keep_best": True, "every_kimg": 500},
        })
        put("provenance.json", {"git": {"sha": "0" * 40, "dirty": False}, "started": 1.7e9,
                                "packages": {"torch": "2.x"}, "hardware": {"cpu_count": 2}})
        (run / "metrics.jsonl").write_text("".join(
            json.dumps({"kind": "periodic", "kimg": 250.0 * (k + 1), "n": 10000, metrics[0]: 10.0 / (k + 1) + j * 1e-3}) + "\n"
            for k in range(20)))
        status = {"state": "running", "owner": {"host": host, "pid": 1 << 22}, "attempt": 1, "heartbeat": time.time()}
        if i % 20 == 5:
            status.update(state="failed", error="RuntimeError: synthetic")
        elif i % 20 != 6:
            status["state"] = "complete"
            vals = {"fd_digits": 10.0 + j % 7} if digits else {"fid": 1.6 + 0.01 * (j % 9), "isc": 9.9 + 0.01 * (j % 5)}
            put("final.json", {"metrics": vals, "n_samples": 50000, "repeats": 1, "untrained_feature_weights": False,
                               "metric_details": {"0": {k: {"value": v, "n": 50000, "extractor": {"name": "inception"}}
                                                        for k, v in vals.items()}},
                               "duration_s": 60.0, "ended": "2026-11-22T00:01:00Z"})
            (run / "samples.png").write_bytes(png)
        put("status.json", status)


def suites_info(n: int) -> dict:
    from onestep.benchmarks.paper_tables import select

    out = {}
    for s in range(SUITES):
        pub = []
        if s:
            for c in select("gdd/3a/GDD", dataset="cifar10", conditional=False):
                pub.append({"cell": c.key, "label": "m0", "where": {}, "metric": c.metric, "value": c.value, "n": c.n,
                            "paper": "Diffusion Models Are Innate One-Step Generators", "table": "Table 3a", "row": c.printed})
        out[f"perf{s}"] = {"published": pub, "metrics": ["fd_digits"] if s == 0 else ["fid", "isc"]}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--keep", type=Path, default=None, help="build the synthetic store here and keep it")
    args = ap.parse_args(argv)
    from onestep.benchmarks.paper_tables import load
    from onestep.reports import build_report
    from onestep.reports.verdicts import RULES

    tmp = None if args.keep else tempfile.TemporaryDirectory(prefix="onestep-perf-report-")
    root = args.keep or Path(tmp.name)
    t0 = time.perf_counter()
    make_store(root, args.runs)
    print(f"synthetic store: {args.runs} runs in {SUITES} suites written in {time.perf_counter() - t0:.1f}s")
    pt, info = load(), suites_info(args.runs)
    better = {k: r.better for k, r in RULES.items()}.get

    def render() -> tuple[float, object]:
        t = time.perf_counter()
        res = build_report(root, root / "report", suites=info, paper_tables=pt, better=better)
        return time.perf_counter() - t, res

    cold, r1 = render()
    warm, r2 = render()
    for i in range(0, args.runs, args.runs // 10 or 1):  # 10 runs get a new periodic point
        f = root / "runs" / f"gdd-{i:012d}" / "metrics.jsonl"
        f.write_text(f.read_text() + json.dumps({"kind": "periodic", "kimg": 9999.0, "n": 10000, "fid": 1.0}) + "\n")
    changed, r3 = render()
    size = (root / "report" / "index.html").stat().st_size
    print(f"report: {r1.runs} runs shown, {len(r1.views)} tables exported, index.html {size / 1e6:.1f} MB")
    print(f"{'step':<44}{'measured':>10}{'target':>10}{'ratio':>8}  figures drawn/cached")
    for name, t, r in (("cold render (every figure drawn)", cold, r1), ("re-render, store unchanged", warm, r2),
                       ("re-render, 10 runs changed", changed, r3)):
        print(f"{name:<44}{t:>9.2f}s{TARGET_S:>9.1f}s{t / TARGET_S:>8.2f}  {r.cache_misses}/{r.cache_hits}")
    if tmp:
        tmp.cleanup()
    ok = warm < TARGET_S and changed < TARGET_S
    print("PASS" if ok else "SLOWER THAN TARGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
