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

from .board import leaderboard_tables
from .exports import write_exports
from .figures import FigureCache, data_uri, enlarge_grid, freezing_bars, nfe_vs_fid
from .leaderboard import PAPER_N, UNTRAINED, SuiteTable, build_tables
from .paper_view import _reproductions, cell_labels, paper_tables_view
from .plots import convergence_plots, slug
from .store_files import ReportError, RunFiles, read_store
from .verdicts import Rule, rules_with
from .views import VCell, ViewTable, write_table_exports

MAX_GRIDS = 16  # sample grids embedded per suite table (all are copied to OUT/grids/)

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
    views: list[ViewTable] = field(default_factory=list)  # every exported table
    banner: list[str] = field(default_factory=list)
    cache_hits: int = 0
    cache_misses: int = 0


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


def _copy_grid_file(run: RunFiles, grid_dir: Path) -> Path | None:
    """The run's samples.png copied to OUT/grids/ (skipped when the copy is current)."""
    if run.samples is None:
        return None
    dest = grid_dir / f"{slug(run.run_id)}.png"
    try:
        st = run.samples.stat()
        if dest.exists() and dest.stat().st_size == st.st_size and dest.stat().st_mtime_ns >= st.st_mtime_ns:
            return dest
    except OSError:
        pass
    return _copy_grid(run, grid_dir)


def _banner(tables: list[SuiteTable]) -> list[str]:
    """Why the numbers in view are not paper results, if they are not."""
    untrained = digits = 0
    for t in tables:
        for row in t.rows:
            ds = ((row.run.config.get("dataset") if row.run else None) or {}).get("name") or row.dataset
            for cell in row.cells.values():
                untrained += bool(cell.untrained)
                digits += str(ds).split(" ")[0] == "digits" or "digits" in cell.key
    out = []
    if untrained:
        out.append(f"{untrained} value(s) in this report were computed with {UNTRAINED} (random) feature-network weights: "
                   f"they exercise the code, they measure nothing, and they get no verdict.")
    if digits:
        out.append(f"{digits} value(s) come from the embedded digits default (8x8 digits, FD in a digits classifier's "
                   f"features, a few thousand training images on a CPU): a smoke test of the pipeline, not a reproduction "
                   f"of any paper's number.")
    return out


def _suite_view(t: SuiteTable) -> ViewTable:
    cols = ["run", "rank", "method", "preset", "settings", "state"] + [t.metric_names.get(m, m) for m in t.metrics]
    rows = []
    for r in t.rows:
        cells = [VCell(r.label, sub=r.run_id), VCell("" if r.rank is None else str(r.rank), sort=r.rank), VCell(r.method),
                 VCell(r.preset), VCell(", ".join(f"{k}={v}" for k, v in r.settings.items())), VCell(r.state, sub=r.detail[:120])]
        for m in t.metrics:
            c = r.cells.get(m)
            if c is None:
                cells.append(VCell("-"))
                continue
            pub = "; ".join(f"published {p.published:g} ({p.paper}, {p.table})" for p in c.comparisons)
            cells.append(VCell(f"{c.value:.4g}" if c.value is not None else "-", sort=c.value,
                               badge=UNTRAINED if c.untrained else "", sub=f"n={c.n}" + (f"; {pub}" if pub else "")))
        rows.append(cells)
    return ViewTable(id=f"suite-{slug(t.suite)}-{slug(t.dataset)}", title=f"{t.suite} — {t.dataset}", columns=cols, rows=rows,
                     caption=t.description, numeric={1} | set(range(6, 6 + len(t.metrics))))


def _analysis_sections(store_root: Path, log) -> tuple[list[dict], str]:
    """HOOK for the analyses (reports/analysis_sections.py, another engineer's module):
    analysis_sections(store_dir) -> [{title, summary, figures: [png paths], tables: [csv
    paths], run_dir}]. Rendered when the module exists; the lead wires it at merge."""
    try:
        from . import analysis_sections as mod  # type: ignore[attr-defined]
    except ImportError:
        return [], ""
    try:
        sections = list(mod.analysis_sections(store_root))
    except Exception as e:  # an analysis must never take the leaderboard down with it
        log(f"report: analysis sections failed: {e}")
        return [], f"the analysis sections could not be rendered: {type(e).__name__}: {e}"
    out = []
    for sec in sections:
        figures = []
        for f in sec.get("figures") or []:
            p = Path(f)
            if p.is_file() and p.read_bytes()[:8] == PNG_SIGNATURE:
                figures.append({"name": p.name, "uri": data_uri(p.read_bytes())})
        tables = []
        for f in sec.get("tables") or []:
            p = Path(f)
            if p.is_file():
                import csv as _csv

                rows = list(_csv.reader(p.read_text(encoding="utf-8").splitlines()))
                if rows:
                    tables.append(ViewTable(id=f"analysis-{slug(str(sec.get('title')))}-{slug(p.stem)}", title=p.stem,
                                            columns=rows[0], rows=[[VCell(c) for c in r] for r in rows[1:]]))
        out.append({"title": str(sec.get("title") or "analysis"), "summary": str(sec.get("summary") or ""),
                    "figures": figures, "tables": tables, "run_dir": str(sec.get("run_dir") or "")})
    return out, ""


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
    paper_tables: Any = None,
    rules: Mapping[str, Rule] | None = None,
    all_suites: Mapping[str, Mapping[str, Any]] | None = None,
) -> ReportResult:
    """Render the report of the store at `store_root` into `out_dir` (default STORE/report).

    suites: per suite name, {"description", "published", "expected", "metrics"} (see
      leaderboard.build_tables); only_suites: report only these; states: run_id -> (state,
      detail) from the store's liveness check (default: from the files); better: metric key ->
      "lower" | "higher" | None, to rank rows and mark the best values (default: no ranking).
    paper_tables: the papers' tables (onestep.benchmarks.paper_tables.load()): shown in full,
      each cell beside its reproduction; rules: verdict rules per metric (verdicts.RULES and
      these overrides); all_suites: published entries of every suite file (default: `suites`),
      so a paper cell no run reproduces yet names the suite that would."""
    log = log or (lambda msg: None)
    store_root = Path(store_root).expanduser()
    runs = read_store(store_root, states)
    out = Path(out_dir).expanduser() if out_dir else store_root / "report"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ReportError(f"cannot create the report folder {out} ({e.strerror or e}); pass --out DIR") from None
    log(f"report: {len(runs)} run(s) in {store_root}")
    rules = rules_with(rules)
    cache = FigureCache(out / ".cache")
    tables = build_tables(runs, suites, only_suites, paper_n, better)
    shown_ids = {r.run_id for t in tables for r in t.rows if r.run is not None}
    shown_runs = [r for r in runs if r.run_id in shown_ids]
    made_plots: set[Path] = set()

    views, plots, grids = [], [], []
    for i, table in enumerate(tables, 1):
        log(f"report: [{i}/{len(tables)}] {table.suite} / {table.dataset}: {len(table.rows)} row(s)")
        made = convergence_plots(table, out / "plots", cache)
        for p in made:
            p["file"] = f"plots/{p['file']}"
            p["uri"] = data_uri(p.pop("png"))
        plots += [out / p["file"] for p in made]
        made_plots.update(out / p["file"] for p in made)
        table_grids, hidden = [], 0
        for row in table.rows:
            if row.run is None:
                continue
            dest = _copy_grid_file(row.run, out / "grids")
            if dest is None:
                continue
            grids.append(dest)
            if len(table_grids) >= MAX_GRIDS:
                hidden += 1
                continue
            png = enlarge_grid(dest, cache)
            table_grids.append({"label": row.label, "file": f"grids/{dest.name}", "uri": data_uri(png)})
        views.append({"table": table, "plots": made, "grids": table_grids, "hidden_grids": hidden,
                      "anchor": f"{slug(table.suite)}-{slug(table.dataset)}"})
    # Images of an earlier rendering would otherwise linger next to the new report.
    for stale in out.glob("plots/convergence_*.png"):
        if stale not in made_plots:
            stale.unlink()
    for stale in out.glob("grids/*.png"):
        if stale not in set(grids):
            stale.unlink()

    labels = cell_labels(paper_tables)
    board = leaderboard_tables(tables, rules, getattr(paper_tables, "same_algorithm", None), labels)
    papers = paper_tables_view(paper_tables, tables, all_suites if all_suites is not None else (suites or {}), rules)
    figures = [f for f in (nfe_vs_fid(paper_tables, tables, cache), freezing_bars(paper_tables, _reproductions(tables), cache)) if f]
    analyses, analyses_error = _analysis_sections(store_root, log)
    banner = _banner(tables)

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
        board=board, papers=papers, figures=figures, analyses=analyses, analyses_error=analyses_error,
        banner=banner, rules=rules,
    )
    html_path = out / "index.html"
    tmp = html_path.with_suffix(".html.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(html_path)  # a reader never sees half a page
    meta = {"generated": generated, "store": str(store_root), "paper_n": paper_n, "message": message, "banner": banner}
    csv_path, json_path = write_exports(tables, out, meta)
    all_views = board + [v for p in papers for v in p["tables"]] + [_suite_view(t) for t in tables] + \
        [v for a in analyses for v in a["tables"]]
    write_table_exports(all_views, out / "tables")
    cache.prune()
    log(f"report: wrote {html_path}, {csv_path.name}, {json_path.name}, {len(all_views)} table(s) x CSV/JSON/LaTeX in "
        f"tables/, {len(plots)} plot(s), {len(grids)} grid(s); figure cache {cache.hits} hit(s), {cache.misses} drawn")
    return ReportResult(out, html_path, csv_path, json_path, plots, grids, tables, len(shown_runs), message,
                        all_views, banner, cache.hits, cache.misses)
