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


MAX_LINES = 12  # more lines make an unreadable plot (and a slow one for a large store)
# Runs that are the same computation (GDD and D2O) draw the same line: vary the style so the
# later line stays visible over the earlier one instead of hiding it.
STYLES = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "D")]


def convergence_plots(table: SuiteTable, out_dir: Path, cache=None) -> list[dict]:
    """One PNG per metric of the table's time series; returns [{metric, name, file, png,
    runs, untrained, note}] (file relative to out_dir). `cache`: a figures.FigureCache."""
    runs = [r for r in table.rows if r.run is not None and r.run.series]
    keys = series_metric_keys(rec for r in runs for rec in r.run.series)
    if not keys:
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    made = []
    for key in keys:
        lines, ns = [], set()
        for row in runs:
            xs, ys, untrained = _points(row.run.series, key)
            if xs:
                ns.update(rec.get("n") for rec in row.run.series if key in rec and rec.get("n") is not None)
                lines.append((row, xs, ys, untrained))
        if not lines:
            continue
        shown = sorted(lines, key=lambda l: (l[0].rank is None, l[0].rank or 0, l[0].label))[:MAX_LINES]
        final_ns = {r.cells[key].n for r in table.rows if key in r.cells and r.cells[key].n}
        name = table.metric_names.get(key, key)
        note = _n_note(ns, final_ns, name)
        if len(lines) > len(shown):
            note += f" {len(shown)} of {len(lines)} runs drawn (the best ranked first)."
        desc = [table.suite, table.dataset, key, note, [(r.run_id, r.label, r.state, xs, ys, u) for r, xs, ys, u in shown]]

        def draw(shown=shown, name=name, ns=ns):
            plt = _pyplot()
            import io

            fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
            any_untrained = False
            seen: dict[tuple, int] = {}
            for row, xs, ys, untrained in shown:
                any_untrained |= untrained
                same = seen.get((tuple(xs), tuple(ys)), 0)
                seen[(tuple(xs), tuple(ys))] = same + 1
                ls, mk = STYLES[same % len(STYLES)]
                label = row.label + (f" [{UNTRAINED}]" if untrained else "") + ("" if row.state == "complete" else f" ({row.state})")
                if same:
                    label += " (same values as another line)"
                ax.plot(xs, ys, linestyle=ls, marker=mk, markersize=3 + 2 * same, linewidth=1.2 + 0.8 * same, label=label,
                        alpha=1.0 if not same else 0.8, zorder=2 + same)
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
            buf = io.BytesIO()
            fig.savefig(buf, format="png")
            plt.close(fig)
            return buf.getvalue()

        png = cache.get(desc, draw) if cache is not None else draw()
        file = out_dir / f"convergence_{slug(table.suite)}_{slug(table.dataset)}_{slug(key)}.png"
        if not file.exists() or file.read_bytes() != png:
            file.write_bytes(png)
        made.append({"metric": key, "name": name, "file": file.name, "png": png, "runs": len(shown),
                     "untrained": any(l[3] for l in shown), "note": note})
    return made


def _n_note(periodic_ns: set, final_ns: set, name: str) -> str:
    """Say whether the curve is at the n of the table's values (it usually is not: periodic
    evaluations use fewer samples, and a Frechet distance is biased upward at small n)."""
    p = sorted(n for n in periodic_ns if n)
    f = sorted(n for n in final_ns if n)
    if not p:
        return "The curve's n is not recorded."
    if f and p == f:
        return f"The curve is at the table's n={f[0]:,}."
    ptxt = ", ".join(f"{n:,}" for n in p)
    ftxt = ", ".join(f"{n:,}" for n in f) or "?"
    return (f"The curve is at n={ptxt}, the table's {name} at n={ftxt}: they differ, so the curve's last point "
            f"is not the table's value.")
