"""Every paper table (benchmarks/paper_tables/) as the paper prints it, each cell with our
reproduction beside it: the value of the run of the suite that names the cell (same suite,
label and sweep point), or "not run" with the command that would run it.

The paper-table data comes in as plain objects (papers, tables, cells with attributes, as
onestep.benchmarks.paper_tables.load() returns them): reports never import the harness."""
from __future__ import annotations

from typing import Any, Mapping

from .board import fmt, metric_name
from .leaderboard import UNTRAINED, SuiteTable
from .verdicts import NONE, Rule, verdict
from .views import VCell, ViewTable, slug


def paper_heading(paper: Any) -> str:
    return f"{paper.title}"


def cell_labels(pt: Any) -> dict[str, str]:
    """cell key -> 'Title, Table X' (how the leaderboard names where a number comes from)."""
    if pt is None:
        return {}
    return {c.key: f"{pt.papers[c.paper].title}, {pt.tables[f'{c.paper}/{c.table}'].label}" for c in pt.cells}


def _reproductions(tables: list[SuiteTable]) -> dict[str, list[tuple[str, Any, Any, Any]]]:
    out: dict[str, list] = {}
    for t in tables:
        for row in t.rows:
            for cell in row.cells.values():
                for comp in cell.comparisons:
                    if comp.cell:
                        out.setdefault(comp.cell, []).append((t.suite, row, cell, comp))
    return out


def _references(suites: Mapping[str, Mapping[str, Any]]) -> dict[str, list[tuple[str, dict]]]:
    out: dict[str, list] = {}
    for name, info in suites.items():
        for e in info.get("published") or []:
            if e.get("cell"):
                out.setdefault(e["cell"], []).append((name, e))
    return out


def _pending_text(suite: str, entry: dict, tables: list[SuiteTable]) -> VCell:
    """Why a referenced cell has no value yet: the state of the matching run, or not run."""
    from .leaderboard import entry_matches

    rows = [r for t in tables if t.suite == suite for r in t.rows
            if entry_matches(entry, r.label, (r.run.config.get("sweep_point") if r.run else None) or r.settings)]
    label = entry.get("label") or "?"
    if rows:
        r = rows[0]
        href = f"#run-{r.run_id}" if r.run is not None else ""
        if r.state == "complete":
            return VCell("no value", sub=f"run {r.label} has no '{entry.get('metric')}' result", href=href)
        return VCell(r.state, badge=r.state, badge_cls=r.state, sub=f"{suite}: {r.label}", href=href,
                     code=f"onestep run {suite}" if r.state in ("pending", "failed", "interrupted") else "")
    return VCell("not run", sub=f"suite {suite}, label {label}", code=f"onestep run {suite}", cls="notrun")


def paper_tables_view(pt: Any, tables: list[SuiteTable], suites: Mapping[str, Mapping[str, Any]],
                      rules: Mapping[str, Rule]) -> list[dict[str, Any]]:
    """[{paper, tables: [ViewTable]}] in paper order."""
    if pt is None:
        return []
    reproduced = _reproductions(tables)
    referenced = _references(suites)
    papers = []
    for key, paper in sorted(pt.papers.items(), key=lambda kv: kv[1].number):
        views = []
        for tref, table in pt.tables.items():
            if table.paper != key:
                continue
            cells = pt.cells_of(tref)
            metrics: list[str] = []
            for c in cells:
                if c.metric not in metrics:
                    metrics.append(c.metric)
            groups: dict[tuple, dict[str, Any]] = {}
            for c in cells:
                g = groups.setdefault((c.row, c.nfe, c.dataset, c.resolution, c.conditional), {"first": c, "cells": {}})
                g["cells"][c.metric] = c
            columns = ["method / row", "NFE", "dataset", "training images"]
            for m in metrics:
                columns += [f"{metric_name(m)} (paper)", f"{metric_name(m)} (ours)"]
            rows = []
            for (row_id, nfe, ds, res, cond), g in groups.items():
                first = g["first"]
                label = first.method if first.row == first.method else f"{first.method}: {first.row}"
                ds_text = "not stated" if ds is None else f"{ds}" + (f" {res}" if res else "") + (
                    "" if cond is None else (" cond" if cond else " uncond"))
                out = [VCell(label, sort=first.index, title=f"printed: {first.printed}", href="",
                             sub=first.note if len(g["cells"]) == 1 else ""),
                       VCell("" if nfe is None else str(nfe), sort=nfe), VCell(ds_text),
                       VCell(first.training_images or "", sort=_images_sort(first.training_images))]
                for m in metrics:
                    c = g["cells"].get(m)
                    if c is None:
                        out += [VCell(""), VCell("")]
                        continue
                    out.append(VCell(c.display, sort=c.value, sub=c.note if len(g["cells"]) > 1 else "",
                                     cls="pubcell", title=c.key))
                    out.append(_ours(c, reproduced.get(c.key), referenced.get(c.key), tables, rules))
                    out[-2].anchor = f"cell-{slug(c.key)}"
                rows.append(out)
            protocol = [f"n={table.n:,}" if table.n else "n not stated"]
            if table.mean_of:
                protocol.append(f"mean of {table.mean_of} evaluations (± = their std)")
            if table.best_of:
                protocol.append(f"checkpoint: {table.best_of}")
            numeric = {1} | {4 + 2 * i for i in range(len(metrics))} | {5 + 2 * i for i in range(len(metrics))}
            views.append(ViewTable(id=f"paper-{key}-{slug(table.table)}", title=f"{paper.title}: {table.label}",
                                   columns=columns, rows=rows, caption=table.caption + " — protocol: " + "; ".join(protocol),
                                   numeric=numeric))
        papers.append({"paper": paper, "tables": views})
    return papers


def _images_sort(text: str) -> float | None:
    t = (text or "").lstrip("~<>").strip()
    mult = {"k": 1e3, "M": 1e6, "B": 1e9}
    try:
        return float(t[:-1]) * mult[t[-1]] if t and t[-1] in mult else float(t)
    except (ValueError, KeyError):
        return None


def _ours(c: Any, reps: list | None, refs: list | None, tables: list[SuiteTable], rules: Mapping[str, Rule]) -> VCell:
    if reps:
        suite, row, cell, comp = reps[0]
        text = fmt(cell.value) + (f" ± {cell.std:.2g}" if cell.std is not None else "")
        if cell.untrained:
            v, badge = NONE, UNTRAINED
        else:
            v, badge = verdict(cell.value, comp.published, rules.get(c.metric)), ""
        extra = f" (+{len(reps) - 1} more)" if len(reps) > 1 else ""
        flags = "; ".join(f for f in comp.flags if not f.startswith(UNTRAINED))
        return VCell(text, sort=cell.value, badge=badge or v, badge_cls="UNTRAINED" if badge else "verdict",
                     sub=f"{suite}: {row.label}{extra}" + (f"; {flags}" if flags else ""), href=f"#run-{row.run_id}",
                     cls="ourscell")
    if refs:
        return _pending_text(refs[0][0], refs[0][1], tables)
    return VCell("not run", sub=f"no suite yet; ref {c.ref}", cls="notrun nosuite")
