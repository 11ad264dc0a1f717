"""The leaderboard: one table per dataset x conditioning x metric, one row per complete run
(and per published number it reproduces): method, preset, NFE, training images, our value
(mean +- std over repeats), the published value, a verdict by the metric's rule and the
protocol difference (n, best-of, extractor) in words."""
from __future__ import annotations

import math
from typing import Any, Mapping

from .leaderboard import UNTRAINED, Comparison, LeaderRow, MetricCell, SuiteTable, as_number
from .verdicts import NONE, REPRODUCED, Rule, verdict
from .views import VCell, ViewTable, slug

METRIC_NAMES = {"fid": "FID", "isc": "IS", "precision": "Precision", "recall": "Recall", "clip_fid": "CLIP-FID",
                "fd_dinov2": "FD-DINOv2", "fd_digits": "FD-digits", "kid": "KID", "clip_score": "CLIP-Score",
                "params_m": "Params (M)", "train_a100_hours": "Training (A100 h)"}
# The feature network each published metric was measured with (papers 000-004, EDM protocol).
PAPER_EXTRACTOR = {"fid": "Inception-v3", "isc": "Inception-v3", "clip_fid": "CLIP", "fd_dinov2": "DINOv2 ViT-L/14",
                   "precision": "the paper's (ADM reference batch)", "recall": "the paper's (ADM reference batch)"}
# Keys under which a run may record the network evaluations its generator samples with
# (final.json or the method config; never the training loop's step count).
NFE_KEYS = ("nfe", "sample_nfe", "student_nfe")


def metric_name(key: str) -> str:
    return METRIC_NAMES.get(key, key)


def fmt(v: float | None, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}g}"


def images_text(kimg: Any) -> str:
    k = as_number(kimg)
    if k is None:
        return "?"
    if k >= 1000:
        return f"{k / 1000:g}M"
    return f"{k:g}k"


def run_nfe(row: LeaderRow) -> int | None:
    """The NFE the run's generator used, where the run records it (final.json or its config)."""
    run = row.run
    if run is None:
        return None
    final = run.final or {}
    for source in (final, run.config.get("method_config") or {}):
        if isinstance(source, Mapping):
            for k in NFE_KEYS:
                v = as_number(source.get(k))
                if v is not None:
                    return int(v)
    return None


def dataset_key(row: LeaderRow) -> tuple[str, Any, Any]:
    ds = (row.run.config.get("dataset") if row.run else None) or {}
    return str(ds.get("name") or row.dataset), ds.get("resolution"), ds.get("conditional")


def group_title(key: tuple) -> str:
    name, res, cond, metric = key
    cond_text = "" if cond is None else (" class-conditional" if cond else " unconditional")
    res_text = f" {res}x{res}" if res else ""
    return f"{name}{res_text}{cond_text} — {metric_name(metric)}"


def _protocol(cell: MetricCell, comp: Comparison | None, run_eval: Mapping[str, Any]) -> str:
    entry = comp.entry if comp else {}
    theirs_n = entry.get("n") if comp else None
    parts = [f"n {cell.n:,}" if cell.n else "n ?"]
    if comp:
        parts[0] += f" vs {theirs_n:,}" if theirs_n else " vs not stated"
    reps = f"{cell.repeats} eval" + ("s" if cell.repeats > 1 else "")
    if comp and entry.get("mean_of"):
        reps += f" vs mean of {entry['mean_of']}"
    parts.append(reps)
    best = "best periodic snapshot" if run_eval.get("keep_best") and run_eval.get("every_kimg") else "final generator"
    if comp:
        best += f" vs {entry.get('best_of') or 'not stated'}"
    parts.append(best)
    ext = (cell.extractor or "?") + (f" {UNTRAINED}" if cell.untrained else "")
    if comp:
        ext += f" vs {PAPER_EXTRACTOR.get(cell.key, 'not stated')}"
    parts.append(ext)
    return "; ".join(parts)


def _verdict_cell(cell: MetricCell, comp: Comparison | None, rule: Rule | None) -> VCell:
    if comp is None:
        return VCell("-", sort="")
    if cell.untrained:
        return VCell(NONE, sub=f"{UNTRAINED} feature weights: not a measurement", badge=UNTRAINED, badge_cls="UNTRAINED")
    v = verdict(cell.value, comp.published, rule)
    differs = any(f.startswith("n=") or "not state" in f or "mean of" in f for f in comp.flags)
    sub = (rule.describe() if rule else "no rule for this metric") + ("; at a different protocol" if differs else "")
    cls = {"reproduced": "ok", "better than published": "ok", "worse than published": "bad"}.get(v, "")
    return VCell(v, sub=sub, cls=f"verdict {cls}" + (" protocol" if differs else ""), sort=v)


def leaderboard_tables(tables: list[SuiteTable], rules: Mapping[str, Rule], same_algorithm: list[dict] | None = None,
                       cell_labels: Mapping[str, str] | None = None) -> list[ViewTable]:
    groups: dict[tuple, list[list[VCell]]] = {}
    methods_in: dict[tuple, list[tuple[str, str]]] = {}
    orders: dict[tuple, list[tuple]] = {}
    for t in tables:
        for row in t.rows:
            if row.run is None or row.state != "complete":
                continue
            name, res, cond = dataset_key(row)
            ev = row.run.config.get("evaluation") or {}
            kimg = (row.run.config.get("loop_config") or {}).get("total_kimg")
            nfe = run_nfe(row)
            for key, cell in row.cells.items():
                gkey = (name, res, cond, key)
                comps = cell.comparisons or [None]
                for comp in comps:
                    nfe_cell = VCell(str(nfe), sort=nfe) if nfe is not None else (
                        VCell(f"{comp.entry.get('nfe')}", sub="as published; the run records none", sort=comp.entry.get("nfe"))
                        if comp and comp.entry.get("nfe") is not None else VCell("?", sub="not recorded by the run"))
                    ours_text = fmt(cell.value) + (f" ± {cell.std:.2g}" if cell.std is not None else "")
                    ours = VCell(ours_text, sort=cell.value, sub=f"n={cell.n:,}" + (f" × {cell.repeats}" if cell.repeats > 1 else "")
                                 if cell.n else "", badge=UNTRAINED if cell.untrained else "", badge_cls="UNTRAINED")
                    if comp:
                        where = (cell_labels or {}).get(comp.cell or "", f"{comp.paper}, {comp.table}")
                        pub = VCell(comp.entry.get("value_text") or fmt(comp.published), sort=comp.published,
                                    sub=f"{where}: {comp.row}", href=f"#cell-{slug(comp.cell)}" if comp.cell else "")
                    else:
                        pub = VCell("-", sort="", sub="no published number for this run")
                    run_cell = VCell(row.label, href=f"#run-{row.run_id}", sub=row.run_id)
                    rule = rules.get(key)
                    sign = -1.0 if rule is not None and rule.better == "higher" else 1.0
                    order = (bool(cell.untrained), sign * cell.value if cell.value is not None else math.inf, row.label)
                    groups.setdefault(gkey, []).append([
                        VCell(row.method), VCell(row.preset), run_cell, VCell(t.suite), nfe_cell,
                        VCell(images_text(kimg), sort=as_number(kimg)), ours, pub,
                        _verdict_cell(cell, comp, rules.get(key)), VCell(_protocol(cell, comp, ev)),
                        VCell(comp.note if comp else ""),
                    ])
                    methods_in.setdefault(gkey, []).append((row.method, row.label))
                    orders.setdefault(gkey, []).append(order)
    out = []
    columns = ["method", "preset", "run", "suite", "NFE", "training images", "ours", "published", "verdict",
               "protocol (ours vs paper)", "note"]
    for gkey in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        # Best first by the metric's rule (values from untrained weights last), as the papers list them.
        idx = sorted(range(len(groups[gkey])), key=lambda i: orders[gkey][i])
        rows = [groups[gkey][i] for i in idx]
        _same_algorithm_note(rows, [methods_in[gkey][i] for i in idx], same_algorithm or [])
        out.append(ViewTable(id=f"leaderboard-{slug('-'.join(str(x) for x in gkey))}", title=group_title(gkey),
                             columns=columns, rows=rows, numeric={4, 5, 6, 7}))
    return out


def _same_algorithm_note(rows: list[list[VCell]], methods: list[tuple[str, str]], same: list[dict]) -> None:
    """One row note where a group holds runs of two names for one algorithm (GDD and D2O)."""
    for group in same:
        names = [n.lower() for n in group.get("names") or []]
        present = [i for i, (m, _) in enumerate(methods) if m.lower() in names]
        if len({methods[i][0].lower() for i in present}) < 2:
            continue
        later = [i for i in present if methods[i][0].lower() == names[-1]]
        if later:
            note = rows[later[0]][-1]
            note.text = (note.text + "; " if note.text else "") + str(group.get("note") or "same algorithm")
            note.cls = "same-algorithm"


__all__ = ["leaderboard_tables", "metric_name", "REPRODUCED"]
