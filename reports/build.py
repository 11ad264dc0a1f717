"""Build the static report: OUT/index.html (self-contained, CSS inline), convergence PNGs and
sample grids next to it, and the leaderboard as OUT/leaderboard.csv and OUT/leaderboard.json.

    from onestep.reports import build_report
    result = build_report("results", "results/report", suites={"smoke": {"published": [...]}})
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .exports import write_exports
from .leaderboard import PAPER_N, SuiteTable, build_tables
from .plots import convergence_plots, slug
from .store_files import ReportError, RunFiles, read_store

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEMPLATE = "report.html.j2"


@dataclass
class ReportResult:
    out_dir: Path
    html: Path
    csv: Path
    json: Path
    plots: list[Path] = field(default_factory=list)
    grids: list[Path] = field(default_factory=list)
    tables: list[SuiteTable] = field(default_factory=list)
    runs: int = 0
    message: str = ""  # e.g. why the report is empty


def _fmt_num(v: Any, digits: int = 4) -> str:
    if v is None:
        return "-"
    try:
        return f"{float(v):.{digits}g}"
    except (TypeError, ValueError):
        return str(v)


def _fmt_signed(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    return f"{float(v):+.{digits}g}"


def _fmt_percent(v: Any) -> str:
    return "-" if v is None else f"{100 * float(v):+.1f}%"


def _fmt_int(v: Any) -> str:
    if v is None:
        return "?"
    try:
        return f"{int(v):,}"
    except (TypeError, ValueError):
        return str(v)


def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,  # a template typo fails loudly instead of rendering blanks
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(kv=_kv, num=_fmt_num, signed=_fmt_signed, intfmt=_fmt_int, percent=_fmt_percent)
    return env


def _copy_grid(run: RunFiles, grid_dir: Path) -> Path | None:
    """Copy a run's samples.png next to the report; a file that is not a PNG is a problem note."""
    if run.samples is None:
        return None
    try:
        head = run.samples.read_bytes()[:8]
    except OSError as e:
        run.problems.append(f"samples.png unreadable ({e})")
        return None
    if head != PNG_SIGNATURE:
        run.problems.append("samples.png is not a PNG image; not shown")
        return None
    grid_dir.mkdir(parents=True, exist_ok=True)
    dest = grid_dir / f"{slug(run.run_id)}.png"
    shutil.copyfile(run.samples, dest)
    return dest


def _kv(mapping: Any) -> str:
    """'k=v, k=v' for a mapping (timestamps as UTC times); anything else as text."""
    if not isinstance(mapping, Mapping):
        return "" if mapping is None else str(mapping)
    parts = []
    for k, v in mapping.items():
        if k in ("started", "time", "heartbeat") and isinstance(v, (int, float)):
            v = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(v))
        parts.append(f"{k}={v}")
    return ", ".join(parts)


def _run_view(run: RunFiles) -> dict[str, Any]:
    prov, final = run.provenance or {}, run.final or {}
    git = prov.get("git") or {}
    hardware = prov.get("hardware") or {}
    return {
        "run_id": run.run_id, "label": run.label, "suite": run.suite, "state": run.state, "path": str(run.path),
        "git_sha": git.get("sha"), "git_dirty": git.get("dirty"), "started": prov.get("started"),
        "ended": final.get("ended"), "duration_s": final.get("duration_s"),
        "attempts": [_kv(a) for a in prov.get("attempts") or []], "hardware": hardware if isinstance(hardware, dict) else {},
        "packages": {k: v for k, v in (prov.get("packages") or {}).items() if v},
        "seeds": _kv(prov.get("seeds")), "best": _kv(final.get("best")), "problems": run.problems,
        "error": run.error if isinstance(run.error, dict) and run.state == "failed" else None,
        "untrained": bool(final.get("untrained_feature_weights")),
    }


def build_report(
    store_root: str | Path,
    out_dir: str | Path | None = None,
    suites: Mapping[str, Mapping[str, Any]] | None = None,
    only_suites: Iterable[str] | None = None,
    states: Mapping[str, tuple[str, str]] | None = None,
    paper_n: int = PAPER_N,
    title: str = "onestep-bench leaderboard",
    better: Callable[[str], str | None] | None = None,
    log: Callable[[str], None] | None = None,
) -> ReportResult:
    """Render the report of the store at `store_root` into `out_dir` (default STORE/report).

    suites: per suite name, {"description", "published", "expected", "metrics"} (see
      leaderboard.build_tables); only_suites: report only these; states: run_id -> (state,
      detail) from the store's liveness check (default: from the files); better: metric key ->
      "lower" | "higher" | None, to rank rows and mark the best values (default: no ranking)."""
    log = log or (lambda msg: None)
    store_root = Path(store_root).expanduser()
    runs = read_store(store_root, states)
    out = Path(out_dir).expanduser() if out_dir else store_root / "report"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ReportError(f"cannot create the report folder {out} ({e.strerror or e}); pass --out DIR") from None
    log(f"report: {len(runs)} run(s) in {store_root}")
    # Images of an earlier rendering would otherwise linger next to the new report.
    for stale in [*out.glob("plots/convergence_*.png"), *out.glob("grids/*.png")]:
        stale.unlink()
    tables = build_tables(runs, suites, only_suites, paper_n, better)
    shown_ids = {r.run_id for t in tables for r in t.rows if r.run is not None}
    shown_runs = [r for r in runs if r.run_id in shown_ids]

    views, plots, grids = [], [], []
    for i, table in enumerate(tables, 1):
        log(f"report: [{i}/{len(tables)}] {table.suite} / {table.dataset}: {len(table.rows)} row(s)")
        made = convergence_plots(table, out / "plots")
        for p in made:
            p["file"] = f"plots/{p['file']}"
        plots += [out / p["file"] for p in made]
        table_grids = []
        for row in table.rows:
            if row.run is not None:
                dest = _copy_grid(row.run, out / "grids")
                if dest is not None:
                    table_grids.append({"label": row.label, "file": f"grids/{dest.name}"})
                    grids.append(dest)
        views.append({"table": table, "plots": made, "grids": table_grids,
                      "anchor": f"{slug(table.suite)}-{slug(table.dataset)}"})

    message = ""
    if not runs:
        message = (f"The results store {store_root} has no runs yet. Run a suite first, e.g. "
                   f"`onestep run smoke --store {store_root}`, then `onestep report --store {store_root}`.")
    elif not tables:
        message = f"No runs of suite(s) {', '.join(sorted(only_suites or []))} in {store_root}."
    totals: dict[str, int] = {}
    for r in shown_runs:
        totals[r.state] = totals.get(r.state, 0) + 1
    generated = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    html = _environment().get_template(TEMPLATE).render(
        title=title, generated=generated, store=str(store_root), n_runs=len(shown_runs), totals=totals,
        tables=views, runs=[_run_view(r) for r in shown_runs], paper_n=paper_n, empty_message=message,
    )
    html_path = out / "index.html"
    html_path.write_text(html)
    meta = {"generated": generated, "store": str(store_root), "paper_n": paper_n, "message": message}
    csv_path, json_path = write_exports(tables, out, meta)
    log(f"report: wrote {html_path}, {csv_path.name}, {json_path.name}, {len(plots)} plot(s), {len(grids)} grid(s)")
    return ReportResult(out, html_path, csv_path, json_path, plots, grids, tables, len(shown_runs), message)
