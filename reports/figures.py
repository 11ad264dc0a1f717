"""Images of the report: every PNG is embedded in the HTML (data URI, so the page opens from
file:// with nothing beside it) and cached by the hash of what it shows, so re-rendering a
large store redraws only what changed.

Figures: NFE vs FID of the trajectory methods (published curves of the papers' tables with
our runs on top), the freezing ablation as bars (paper vs ours), sample grids enlarged with
nearest-neighbour so a digit is readable."""
from __future__ import annotations

import base64
import hashlib
import io
import json
import math
from pathlib import Path
from typing import Any, Callable

from .leaderboard import UNTRAINED, SuiteTable

CACHE_VERSION = "2"  # bump when a figure's drawing changes
GRID_MIN_WIDTH = 512  # px: an 8x8 grid of 8x8 digits (64 px) becomes 8x larger


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


class FigureCache:
    """OUT/.cache/<sha1>.png: the PNG for a description of its content."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.hits = self.misses = 0
        self.used: set[Path] = set()

    def get(self, key: Any, draw: Callable[[], bytes | None]) -> bytes | None:
        digest = hashlib.sha1(json.dumps([CACHE_VERSION, key], sort_keys=True, default=str).encode()).hexdigest()
        path = self.root / f"{digest}.png"
        self.used.add(path)
        if path.exists():
            self.hits += 1
            return path.read_bytes()
        self.misses += 1
        png = draw()
        if png is not None:
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(png)
            tmp.replace(path)  # atomic: a concurrent renderer never reads half a file
        return png

    def prune(self) -> None:
        for p in self.root.glob("*.png"):
            if p not in self.used:
                p.unlink()


def pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)  # headless: never try to open a window
    import matplotlib.pyplot as plt

    return plt


def fig_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    pyplot().close(fig)
    return buf.getvalue()


def enlarge_grid(png_path: Path, cache: FigureCache) -> bytes | None:
    """The run's samples.png scaled by an integer factor (nearest neighbour: pixels stay
    crisp) to at least GRID_MIN_WIDTH px wide."""
    st = png_path.stat()

    def draw() -> bytes:
        from PIL import Image

        with Image.open(png_path) as im:
            im.load()
            factor = max(1, math.ceil(GRID_MIN_WIDTH / max(1, im.width)))
            big = im.resize((im.width * factor, im.height * factor), Image.NEAREST)
            buf = io.BytesIO()
            big.save(buf, format="PNG")
            return buf.getvalue()

    return cache.get(["grid", str(png_path), st.st_mtime_ns, st.st_size], draw)


# --- NFE vs FID -----------------------------------------------------------------------------
# Distillation along the teacher's trajectory, with results at several NFE (solvers left out: they
# are the teachers' samplers, not distilled students, and crowd the plot).
TRAJECTORY_METHODS = ("sfd", "sfd-v", "cd", "pd", "guided pd", "ctm", "ict", "ict-deep")


def _published_nfe_curves(pt: Any) -> dict[tuple[str, Any], dict[str, list[tuple[int, float]]]]:
    """(dataset, resolution) -> method -> [(nfe, fid)] from the paper tables whose methods
    report several NFEs (the trajectory methods: SFD Tables 2/3)."""
    curves: dict = {}
    for c in pt.cells:
        if c.metric != "fid" or c.nfe is None or c.qual in (">", "<"):
            continue
        table = pt.tables[f"{c.paper}/{c.table}"]
        if table.kind != "comparison":
            continue
        key = (c.dataset, c.resolution)
        curves.setdefault(key, {}).setdefault(f"{c.method} ({pt.papers[c.paper].short} T{c.table})", []).append((c.nfe, c.value))
    out = {}
    for key, methods in curves.items():
        multi = {m: sorted(set(pts)) for m, pts in methods.items() if len({n for n, _ in pts}) >= 2
                 and m.split(" (")[0].lower() in TRAJECTORY_METHODS}
        if multi:
            out[key] = multi
    return out


def _our_nfe_points(tables: list[SuiteTable]) -> list[tuple[tuple[str, Any], str, int, float, bool]]:
    from .board import dataset_key, run_nfe

    pts = []
    for t in tables:
        for row in t.rows:
            cell = row.cells.get("fid")
            nfe = run_nfe(row)
            if row.state == "complete" and cell is not None and cell.value is not None and nfe is not None \
                    and row.method.lower() in TRAJECTORY_METHODS:
                name, res, _ = dataset_key(row)
                pts.append(((name, res), row.label, nfe, cell.value, cell.untrained))
    return pts


def nfe_vs_fid(pt: Any, tables: list[SuiteTable], cache: FigureCache) -> dict | None:
    if pt is None:
        return None
    curves = _published_nfe_curves(pt)
    ours = _our_nfe_points(tables)
    if not curves:
        return None
    keys = sorted(curves, key=str)

    def draw() -> bytes:
        plt = pyplot()
        fig, axes = plt.subplots(1, len(keys), figsize=(5.2 * len(keys), 4.0), dpi=100, squeeze=False)
        for ax, key in zip(axes[0], keys):
            for method, pts in sorted(curves[key].items()):
                style = "-" if method.lower().startswith("sfd") else "--"
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", markersize=3, linewidth=1.2, label=method)
            for dk, label, nfe, fid, untrained in ours:
                if dk == key:
                    ax.scatter([nfe], [fid], marker="*", s=90, zorder=5, label=f"ours: {label}" + (f" [{UNTRAINED}]" if untrained else ""))
            ax.set_xlabel("NFE")
            ax.set_ylabel("FID (paper: n=50,000 where stated)")
            ax.set_yscale("log")
            ax.set_title(f"{key[0]} {key[1] or ''}: NFE vs FID (published)", fontsize=10)
            ax.grid(True, alpha=0.3, which="both")
            ax.legend(fontsize=6, loc="best")
        fig.tight_layout()
        return fig_png(fig)

    png = cache.get(["nfe", {str(k): v for k, v in curves.items()}, ours], draw)
    ours_here = [p for p in ours if p[0] in curves]
    note = ("our runs of trajectory methods are the stars" if ours_here else
            "no run of a trajectory method records its NFE yet: the curves are the papers' only")
    return {"name": "NFE vs FID, trajectory methods", "uri": data_uri(png), "note": note}


# --- freezing ablation ------------------------------------------------------------------------
FREEZING_TABLE = "gdd/2"


def freezing_bars(pt: Any, reproduced: dict[str, list], cache: FigureCache) -> dict | None:
    if pt is None or FREEZING_TABLE not in pt.tables:
        return None
    cells = [c for c in pt.cells_of(FREEZING_TABLE) if c.metric == "fid"]
    ours = []
    for c in cells:
        rep = (reproduced.get(c.key) or [None])[0]
        ours.append(None if rep is None else (rep[2].value, rep[2].untrained))

    def draw() -> bytes:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
        xs = range(len(cells))
        ax.bar([x - 0.2 for x in xs], [c.value for c in cells], width=0.4, label="paper 000 Table 2", color="#607d8b")
        for x, o in zip(xs, ours):
            if o is None:
                ax.text(x + 0.2, 0.05, "not run", rotation=90, ha="center", va="bottom", fontsize=8, color="#b45309")
            else:
                ax.bar([x + 0.2], [o[0]], width=0.4, color="#c62828" if o[1] else "#2e7d32",
                       label=("ours [UNTRAINED]" if o[1] else "ours") if x == next(i for i, q in enumerate(ours) if q) else None)
        ax.set_xticks(list(xs))
        ax.set_xticklabels([c.row for c in cells], fontsize=8)
        ax.set_ylabel("FID (CIFAR-10)")
        ax.set_title("GDD-I freezing ablation: which layers are frozen", fontsize=10)
        ax.legend(fontsize=7)
        ax.grid(True, axis="y", alpha=0.3)
        fig.tight_layout()
        return fig_png(fig)

    png = cache.get(["freezing", [(c.key, c.value) for c in cells], ours], draw)
    note = "ours: runs of suite gdd_freezing" if any(ours) else "no freezing run in the store yet: `onestep run gdd_freezing`"
    return {"name": "Freezing ablation (GDD-I)", "uri": data_uri(png), "note": note}
