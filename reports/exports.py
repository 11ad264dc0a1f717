"""The leaderboard as flat records (one per run and metric), written as CSV and JSON.

Both files carry the same rows as the HTML table: every metric with its n, floor and
UNTRAINED flag, and each published comparison with its source and protocol flags. A run
without metrics (failed, running, pending) still has one record, with its state and message.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from .leaderboard import UNTRAINED, LeaderRow, MetricCell, SuiteTable

COLUMNS = [
    "suite", "dataset", "rank", "label", "method", "preset", "settings", "state", "detail",
    "metric", "metric_name", "value", "std", "n", "repeats", "untrained", "flags", "best", "extractor",
    "floor", "floor_n", "floor_note",
    "published", "difference", "relative_difference", "paper", "table", "paper_row", "comparison_flags",
    "published_note", "run_id", "git_sha", "git_dirty",
]


def _settings_text(settings: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items())


def _base(table: SuiteTable, row: LeaderRow) -> dict[str, Any]:
    git = ((row.run.provenance if row.run else {}) or {}).get("git") or {}
    return {
        "suite": table.suite, "dataset": table.dataset, "rank": row.rank, "label": row.label, "method": row.method,
        "preset": row.preset, "settings": _settings_text(row.settings), "state": row.state, "detail": row.detail,
        "run_id": row.run_id, "git_sha": git.get("sha"), "git_dirty": git.get("dirty"),
    }


def _cell_fields(cell: MetricCell) -> dict[str, Any]:
    return {
        "metric": cell.key, "metric_name": cell.name, "value": cell.value, "std": cell.std, "n": cell.n,
        "repeats": cell.repeats, "untrained": cell.untrained, "best": cell.best, "flags": ";".join(cell.flags),
        "extractor": cell.extractor, "floor": cell.floor, "floor_n": cell.floor_n, "floor_note": cell.floor_note,
    }


def leaderboard_records(tables: list[SuiteTable]) -> list[dict[str, Any]]:
    records = []
    for table in tables:
        for row in table.rows:
            base = _base(table, row)
            if not row.cells:
                records.append({c: base.get(c) for c in COLUMNS})
                continue
            for key in [k for k in table.metrics if k in row.cells]:
                cell = row.cells[key]
                comps = cell.comparisons or [None]
                for comp in comps:
                    rec = {**base, **_cell_fields(cell)}
                    if comp is not None:
                        rec.update(
                            published=comp.published, difference=comp.difference,
                            relative_difference=comp.relative, paper=comp.paper, table=comp.table,
                            paper_row=comp.row, comparison_flags=";".join(comp.flags), published_note=comp.note,
                        )
                    records.append({c: rec.get(c) for c in COLUMNS})
    return records


def unmatched_records(tables: list[SuiteTable]) -> list[dict[str, Any]]:
    return [{"suite": t.suite, "dataset": t.dataset, **{k: v for k, v in p.items()}}
            for t in tables for p in t.unmatched_published]


def to_csv(records: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in records:
        w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return buf.getvalue()


def _finite(obj: Any) -> Any:
    """Strict JSON has no NaN/Infinity: such a value is written as the string 'nan'/'inf'."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_exports(tables: list[SuiteTable], out_dir: Path, meta: dict[str, Any]) -> tuple[Path, Path]:
    """OUT/leaderboard.csv and OUT/leaderboard.json (the JSON adds the published numbers that no
    run reproduces yet, and how the report was made)."""
    records = leaderboard_records(tables)
    csv_path, json_path = Path(out_dir) / "leaderboard.csv", Path(out_dir) / "leaderboard.json"
    csv_path.write_text(to_csv(records))
    doc = {
        **meta,
        "untrained_marker": UNTRAINED,
        "rows": records,
        "published_without_run": unmatched_records(tables),
    }
    json_path.write_text(json.dumps(_finite(doc), indent=2, default=str, allow_nan=False) + "\n")
    return csv_path, json_path
