"""Convergence plots: each periodic metric against training kimg, one line per run (the
papers' FID-vs-kimg figures, e.g. paper 000 Fig. 3). matplotlib with the Agg backend: no
display needed, PNG files only."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

from .leaderboard import UNTRAINED, SuiteTable, as_number, series_metric_keys


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)  # headless: never try to open a window
    import matplotlib.pyplot as plt

    return plt


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def _points(series: Iterable[dict], key: str) -> tuple[list[float], list[float], bool]:
    pts, untrained = [], False
    for rec in series:
        if rec.get("kind", "periodic") != "periodic":
            continue
        x, y = as_number(rec.get("kimg")), as_number(rec.get(key))
        if x is None or y is None:
            continue
        pts.append((x, y))
        untrained |= bool(rec.get("untrained"))
    pts.sort()
    return [p[0] for p in pts], [p[1] for p in pts], untrained


def convergence_plots(table: SuiteTable, out_dir: Path) -> list[dict]:
    """One PNG per metric of the table's time series; returns [{metric, file, runs, untrained}]
    with file names relative to out_dir."""
    runs = [r for r in table.rows if r.run is not None and r.run.series]
    keys = series_metric_keys(rec for r in runs for rec in r.run.series)
    if not keys:
        return []
    plt = _pyplot()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    made = []
    for key in keys:
        fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
        any_untrained, n_lines, ns = False, 0, set()
        for row in runs:
            xs, ys, untrained = _points(row.run.series, key)
            if not xs:
                continue
            ns.update(rec.get("n") for rec in row.run.series if key in rec and rec.get("n") is not None)
            any_untrained |= untrained
            label = row.label + (f" [{UNTRAINED}]" if untrained else "") + ("" if row.state == "complete" else f" ({row.state})")
            ax.plot(xs, ys, marker="o", markersize=3, linewidth=1.2, label=label)
            n_lines += 1
        if not n_lines:
            plt.close(fig)
            continue
        name = table.metric_names.get(key, key)
        n_text = f" (n={', '.join(str(n) for n in sorted(ns))})" if ns else ""
        ax.set_xlabel("training progress (kimg)")
        ax.set_ylabel(name + n_text)
        title = f"{table.suite} / {table.dataset}: {name}"
        if any_untrained:
            title += f"\n[{UNTRAINED} feature network in the runs marked so: not a measurement]"
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        file = out_dir / f"convergence_{slug(table.suite)}_{slug(table.dataset)}_{slug(key)}.png"
        fig.savefig(file, format="png")
        plt.close(fig)
        made.append({"metric": key, "name": name, "file": file.name, "runs": n_lines, "untrained": any_untrained})
    return made
