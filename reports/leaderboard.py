"""The leaderboard: runs grouped per suite and dataset, each metric with its n, data floor,
feature-network honesty flag, and the published number it reproduces (only where the suite
provides one), with the difference and any protocol mismatch spelled out.

Input is plain data: RunFiles from the store's files and, per suite, the `published:` entries
of its YAML (paper, table, row, label, where, metric, value, note) as dicts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from .store_files import RunFiles

# Papers 000-004 all report FID/IS on 50,000 generated images (the EDM protocol: seeds
# 0-49999; paper 000 Sec. 4, paper 001 Sec. 4, paper 002 Sec. 5, paper 003 Sec. 5.1, paper
# 004 Sec. 5). A comparison at another n is flagged: Frechet distances are biased upward at
# small n, so the numbers are not directly comparable.
PAPER_N = 50_000
UNTRAINED = "UNTRAINED"
UNKNOWN_DATASET = "(unknown dataset)"
# Fields of a time-series record that are bookkeeping, not metric values.
SERIES_META = frozenset({"kimg", "n", "time", "step", "nimg", "cur_nimg", "kind", "untrained", "repeat"})


@dataclass
class Comparison:
    """A reproduced value next to one published number."""

    paper: str
    table: str
    row: str
    published: float
    difference: float | None  # reproduced - published
    relative: float | None  # difference / published
    note: str = ""
    flags: list[str] = field(default_factory=list)  # protocol mismatches, untrained weights
    cell: str | None = None  # the paper-table cell key (benchmarks/paper_tables) it comes from
    entry: dict = field(default_factory=dict)  # the resolved published entry (protocol, nfe, ...)
    metric: str = ""


@dataclass
class MetricCell:
    key: str  # the suite's metric key (fid, fd_digits, ...)
    name: str  # display name (never "FID" for a digits-network metric)
    value: float | None
    std: float | None = None
    n: int | None = None
    repeats: int = 1
    untrained: bool = False
    floor: float | None = None
    floor_n: int | None = None
    floor_note: str | None = None
    extractor: str | None = None
    comparisons: list[Comparison] = field(default_factory=list)
    best: bool = False  # best value of its column among complete runs with trained features

    @property
    def flags(self) -> list[str]:
        return [UNTRAINED] if self.untrained else []


@dataclass
class LeaderRow:
    run_id: str
    suite: str
    dataset: str
    label: str
    method: str
    preset: str
    settings: dict[str, Any]  # sweep values and config keys that differ between runs of the table
    state: str  # complete | failed | running | interrupted | pending
    detail: str  # failure message, progress, ...
    cells: dict[str, MetricCell]
    run: RunFiles | None = None  # None: expected by the suite, not in the store yet
    rank: int | None = None  # by the table's ranking metric; complete runs with trained features only

    @property
    def untrained(self) -> bool:
        return any(c.untrained for c in self.cells.values())


@dataclass
class SuiteTable:
    suite: str
    dataset: str
    description: str
    metrics: list[str]  # column order
    metric_names: dict[str, str]
    rows: list[LeaderRow]
    unmatched_published: list[dict]  # entries of the suite no run of this table reproduces yet
    notes: list[str] = field(default_factory=list)
    rank_metric: str | None = None

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r.state] = out.get(r.state, 0) + 1
        return out


# --- small helpers ---------------------------------------------------------------------------
def dataset_name(config: Mapping[str, Any]) -> str:
    ds = config.get("dataset") or {}
    if not ds:
        return UNKNOWN_DATASET
    res = ds.get("resolution")
    text = str(ds.get("name", "?")) + (f" {res}x{res}" if res else "")
    if ds.get("conditional") is not None:
        text += " cond" if ds.get("conditional") else " uncond"
    return text


def base_label(label: str) -> str:
    """'no-aug[r1_gamma=0.001]' -> 'no-aug': suites name published rows by entry label."""
    return label.split("[", 1)[0]


def as_number(x: Any) -> float | None:
    if isinstance(x, bool) or x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v


def _int_or_none(x: Any) -> int | None:
    v = as_number(x)
    return None if v is None else int(v)


def _same(a: Any, b: Any) -> bool:
    fa, fb = as_number(a), as_number(b)
    if fa is not None and fb is not None:
        return math.isclose(fa, fb, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _flatten(prefix: str, obj: Any, out: dict) -> None:
    if isinstance(obj, Mapping) and obj:
        for k, v in obj.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = obj


def _is_digits_metric(key: str, detail: Mapping[str, Any]) -> bool:
    ext = detail.get("extractor")
    ext_name = ext.get("name") if isinstance(ext, Mapping) else ext
    return "digits" in key.lower() or "digits" in str(ext_name or "").lower()


def metric_display_name(key: str, detail: Mapping[str, Any]) -> str:
    name = str(detail.get("display") or key)
    # FID means Inception features (Heusel et al. 2017); a digits-network distance is an FD.
    if _is_digits_metric(key, detail) and "fid" in name.lower():
        name = key
    return name


# --- cells from final.json -------------------------------------------------------------------
def _details_by_metric(final: Mapping[str, Any]) -> dict[str, list[dict]]:
    """{metric key: [detail of repeat 0, repeat 1, ...]} from final['metric_details']."""
    out: dict[str, list[dict]] = {}
    details = final.get("metric_details") or {}
    if not isinstance(details, Mapping):
        return out
    for rep_key in sorted(details, key=lambda k: (len(str(k)), str(k))):
        rep = details[rep_key]
        if not isinstance(rep, Mapping):
            continue
        for key, d in rep.items():
            if isinstance(d, Mapping):
                out.setdefault(str(key), []).append(dict(d))
    return out


def _detail_untrained(detail: Mapping[str, Any]) -> bool:
    ext = detail.get("extractor")
    return bool(detail.get("untrained")) or (isinstance(ext, Mapping) and bool(ext.get("untrained")))


def metric_cells(final: Mapping[str, Any]) -> dict[str, MetricCell]:
    metrics = final.get("metrics") or {}
    if not isinstance(metrics, Mapping):
        return {}
    details = _details_by_metric(final)
    run_untrained = bool(final.get("untrained_feature_weights"))
    cells: dict[str, MetricCell] = {}
    for key, value in metrics.items():
        if key.endswith("_std") and key[: -len("_std")] in metrics:
            continue  # the spread over repeats, shown with its metric
        reps = details.get(key, [])
        first = reps[0] if reps else {}
        ext = first.get("extractor")
        ns = {d.get("n") for d in reps if d.get("n") is not None}
        std = as_number(metrics.get(f"{key}_std"))
        if std is None and len(reps) == 1:
            std = as_number(first.get("std"))
        cells[key] = MetricCell(
            key=key,
            name=metric_display_name(key, first),
            value=as_number(value),
            std=std,
            n=int(next(iter(ns))) if len(ns) == 1 else _int_or_none(final.get("n_samples")),
            repeats=max(len(reps), int(final.get("repeats") or 1)),
            # A metric whose details do not say inherits the run's flag: never drop the mark.
            untrained=any(_detail_untrained(d) for d in reps)
            or (run_untrained and not any("untrained" in d for d in reps)),
            floor=as_number(first.get("floor")),
            floor_n=first.get("floor_n"),
            floor_note=first.get("floor_note"),
            extractor=(ext.get("name") if isinstance(ext, Mapping) else ext),
        )
    return cells


# --- published numbers ------------------------------------------------------------------------
PUBLISHED_FIELDS = {"paper": "", "table": "", "row": "", "label": None, "where": {}, "metric": "", "value": None, "note": ""}


def published_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A suite's published entry with every field present (the suite schema's defaults)."""
    return {**PUBLISHED_FIELDS, **dict(entry)}


def entry_matches(entry: Mapping[str, Any], label: str, sweep_point: Mapping[str, Any]) -> bool:
    """A published entry belongs to a run when its label is the run's entry label and every
    `where` key equals the run's sweep value. Entries without a label belong to no run."""
    if not entry.get("label") or entry["label"] != base_label(label):
        return False
    where = entry.get("where") or {}
    return all(k in sweep_point and _same(sweep_point[k], v) for k, v in where.items())


def compare(cell: MetricCell, entry: Mapping[str, Any], paper_n: int = PAPER_N) -> Comparison:
    published = float(entry["value"])
    diff = None if cell.value is None else cell.value - published
    rel = None if diff is None or published == 0 else diff / abs(published)
    flags = []
    if cell.untrained:
        flags.append(f"{UNTRAINED}: feature network has random weights; not comparable")
    # The cell's own protocol when the paper-table data gives it (None: the paper does not say).
    theirs = entry["n"] if "n" in entry else paper_n
    if theirs is None:
        flags.append("the paper does not state its n" + (f" (ours: n={cell.n:,})" if cell.n else ""))
    elif cell.n is None:
        flags.append(f"n not recorded: cannot check it against the paper's {theirs:,}")
    elif cell.n != theirs:
        flags.append(f"n={cell.n:,} vs the paper's {theirs:,}")
    if entry.get("mean_of") and cell.repeats != entry["mean_of"]:
        flags.append(f"{cell.repeats} evaluation(s) vs the paper's mean of {entry['mean_of']}")
    return Comparison(
        paper=str(entry.get("paper", "")), table=str(entry.get("table", "")), row=str(entry.get("row", "")),
        published=published, difference=diff, relative=rel, note=str(entry.get("note") or ""), flags=flags,
        cell=entry.get("cell"), entry=dict(entry), metric=str(entry.get("metric") or cell.key),
    )


# --- tables ------------------------------------------------------------------------------------
def _varying_settings(rows: list[LeaderRow]) -> None:
    """Fill each row's settings with its sweep values and the config keys that differ between
    runs of the same method and preset (the overrides that tell the rows apart)."""
    groups: dict[tuple[str, str], list[LeaderRow]] = {}
    for r in rows:
        if r.run is not None:
            groups.setdefault((r.method, r.preset), []).append(r)
    for group in groups.values():
        flat = []
        for r in group:
            f: dict = {}
            for section in ("method_config", "loop_config"):
                _flatten(section.split("_")[0], r.run.config.get(section) or {}, f)
            flat.append(f)
        keys = sorted({k for f in flat for k in f})
        varying = [k for k in keys if len({repr(f.get(k)) for f in flat}) > 1] if len(group) > 1 else []
        for r, f in zip(group, flat):
            sweep = dict(r.run.config.get("sweep_point") or {})
            r.settings = {**sweep, **{k: f.get(k) for k in varying if k not in sweep}}


def _row_from_run(run: RunFiles) -> LeaderRow:
    cfg = run.config
    cells = metric_cells(run.final) if run.final else {}
    detail = run.detail
    if run.problems:
        detail = "; ".join([detail] + run.problems if detail else run.problems)
    return LeaderRow(
        run_id=run.run_id, suite=str(cfg.get("suite") or "(no suite)"), dataset=dataset_name(cfg), label=run.label,
        method=str(cfg.get("method") or "?"), preset=str(cfg.get("preset") or "?"), settings={},
        state=run.state, detail=detail, cells=cells, run=run,
    )


def build_tables(
    runs: Iterable[RunFiles],
    suites: Mapping[str, Mapping[str, Any]] | None = None,
    only_suites: Iterable[str] | None = None,
    paper_n: int = PAPER_N,
    better: Callable[[str], str | None] | None = None,
) -> list[SuiteTable]:
    """One table per (suite, dataset).

    suites: {name: {"description", "published": [entries], "expected": [{run_id, label,
      method, preset, dataset}], "metrics": [keys]}} from the suite files (all optional).
      Published numbers appear only where such an entry exists; expected runs that are not in
      the store are listed as pending.
    only_suites: restrict to these suite names.
    better: metric key -> "lower" | "higher" | None (unknown); with it, rows are ranked by the
      first metric of known direction and each column's best value is marked.
    """
    suites = {name: {**info, "published": [published_entry(p) for p in info.get("published") or []]}
              for name, info in (suites or {}).items()}
    only = set(only_suites) if only_suites else None
    by_id = {r.run_id: r for r in runs}
    # A run directory is shared by every suite that asks for the same run: place it in each.
    placed: dict[str, list[LeaderRow]] = {}
    for name, info in suites.items():
        for exp in info.get("expected") or []:
            run = by_id.get(exp["run_id"])
            row = _row_from_run(run) if run else LeaderRow(
                run_id=exp["run_id"], suite=name, dataset=str(exp.get("dataset") or UNKNOWN_DATASET),
                label=str(exp.get("label") or exp["run_id"]), method=str(exp.get("method") or "?"),
                preset=str(exp.get("preset") or "?"), settings=dict(exp.get("sweep_point") or {}),
                state="pending", detail="not started (not in the store)", cells={}, run=None)
            row.suite, row.label = name, str(exp.get("label") or row.label)  # this suite's name for it
            placed.setdefault(name, []).append(row)
    for run in by_id.values():
        suite = str(run.suite or "(no suite)")
        if any(row.run_id == run.run_id for row in placed.get(suite, [])):
            continue
        placed.setdefault(suite, []).append(_row_from_run(run))

    tables = []
    for suite in sorted(placed):
        if only is not None and suite not in only:
            continue
        info = suites.get(suite) or {}
        known = [r.dataset for r in placed[suite] if r.run is not None]
        by_ds: dict[str, list[LeaderRow]] = {}
        for row in placed[suite]:
            if row.run is None and row.dataset == UNKNOWN_DATASET and known:
                row.dataset = max(set(known), key=known.count)  # a not-started run: the suite's dataset
            by_ds.setdefault(row.dataset, []).append(row)
        used: set[int] = set()
        suite_tables = []
        for ds in sorted(by_ds):
            rows = sorted(by_ds[ds], key=lambda r: (r.label, r.run_id))
            table = _table(suite, ds, rows, info, paper_n, used)
            if better is not None:
                rank_rows(table, better)
            suite_tables.append(table)
        # Published entries no run reproduces are listed once per suite, under its last table,
        # with the reason (the matching run's state, or that no run has that label).
        all_rows = [r for t in suite_tables for r in t.rows]
        suite_tables[-1].unmatched_published = [
            {**p, "reason": _unmatched_reason(p, all_rows)}
            for i, p in enumerate(info.get("published") or []) if i not in used
        ]
        tables += suite_tables
    for name in sorted(only or ()):
        if name not in placed:
            info = suites.get(name) or {}
            tables.append(SuiteTable(name, "-", str(info.get("description") or ""), [], {}, [],
                                     [{**p, "reason": _unmatched_reason(p, [])} for p in info.get("published") or []],
                                     [f"no runs of suite '{name}' in the store yet"]))
    return tables


def _unmatched_reason(entry: Mapping[str, Any], rows: list[LeaderRow]) -> str:
    if not entry.get("label"):
        return "the entry names no run label"
    matching = [r for r in rows if entry_matches(entry, r.label, (r.run.config.get("sweep_point") if r.run else None) or r.settings)]
    if not matching:
        return f"no run labelled '{entry['label']}'" + (f" with {entry.get('where')}" if entry.get("where") else "")
    states = sorted({r.state for r in matching})
    if states == ["complete"]:
        return f"the run has no '{entry.get('metric')}' result"
    return "run " + ", ".join(states)


def _table(suite: str, dataset: str, rows: list[LeaderRow], info: Mapping[str, Any], paper_n: int,
           used: set[int]) -> SuiteTable:
    """The table of one suite and dataset; adds the indices of the published entries it
    compares with to `used`."""
    _varying_settings(rows)
    published = list(info.get("published") or [])
    for row in rows:
        sweep = (row.run.config.get("sweep_point") if row.run else None) or row.settings
        for i, entry in enumerate(published):
            if entry.get("value") is None or not entry_matches(entry, row.label, sweep):
                continue
            cell = row.cells.get(str(entry.get("metric")))
            if cell is not None and row.state == "complete":
                cell.comparisons.append(compare(cell, entry, paper_n))
                used.add(i)
    metrics: list[str] = [m for m in info.get("metrics") or [] if any(m in r.cells for r in rows)]
    for r in rows:
        metrics += [k for k in r.cells if k not in metrics]
    names = {}
    for r in rows:
        for k, c in r.cells.items():
            names.setdefault(k, c.name)
    notes = []
    if info.get("missing_file"):
        notes.append(str(info["missing_file"]))
    if not info.get("published"):
        notes.append("this suite lists no published numbers: nothing to compare with")
    return SuiteTable(suite, dataset, str(info.get("description") or ""), metrics, names, rows, [], notes)


def _rankable(row: LeaderRow, key: str) -> bool:
    cell = row.cells.get(key)
    return row.state == "complete" and cell is not None and cell.value is not None and not cell.untrained \
        and math.isfinite(cell.value)


def rank_rows(table: SuiteTable, better: Callable[[str], str | None]) -> None:
    """Order the rows by the first metric of known direction: ranked runs (complete, trained
    feature network) first, then complete runs whose metric is UNTRAINED (never ranked against
    real measurements), then the rest by label. Marks each column's best ranked value."""
    directions = {k: better(k) for k in table.metrics}
    for key, d in directions.items():
        ranked = [r for r in table.rows if _rankable(r, key)]
        if d in ("lower", "higher") and ranked:
            pick = min if d == "lower" else max
            best = pick(r.cells[key].value for r in ranked)
            for r in ranked:
                r.cells[key].best = r.cells[key].value == best
    key = next((k for k in table.metrics if directions[k] in ("lower", "higher")), None)
    if key is None:
        return
    sign = 1.0 if directions[key] == "lower" else -1.0
    ranked = sorted((r for r in table.rows if _rankable(r, key)), key=lambda r: (sign * r.cells[key].value, r.label))
    for i, r in enumerate(ranked, 1):
        r.rank = i
    untrained = sorted((r for r in table.rows if r.rank is None and r.state == "complete" and key in r.cells),
                       key=lambda r: (sign * (r.cells[key].value or 0.0), r.label))
    rest = [r for r in table.rows if r.rank is None and r not in untrained]
    table.rows = ranked + untrained + rest
    table.rank_metric = key


def series_metric_keys(series: Iterable[Mapping[str, Any]]) -> list[str]:
    keys: list[str] = []
    for rec in series:
        for k, v in rec.items():
            if k not in SERIES_META and as_number(v) is not None and k not in keys:
                keys.append(k)
    return keys
