"""Regression gate: compare a suite's final metrics with a committed baseline file.

Baseline format (benchmarks/baselines/smoke.json):

    {"suite": "smoke",
     "provenance": {...how and where the baseline was produced...},
     "methods": {"<label>": {"<metric>": {"value": 12.3, "tolerance": 3.1, "better": "lower"}}}}

A metric regresses when it is worse than `value` by more than `tolerance` (absolute) in its
`better` direction; a method or metric present in the baseline but missing (or NaN) in the
results also fails the gate. New methods/metrics are reported, not failed.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from onestep.methods.core.atomic import atomic_write_json
from onestep.methods.core.config import ConfigError

# Direction for metrics whose name says it; anything else must state `better` in the baseline.
LOWER_IS_BETTER_PREFIXES = ("fd", "fid", "kid", "clip_fid", "rel_fid", "fd_")
HIGHER_IS_BETTER_PREFIXES = ("is", "isc", "precision", "recall", "accuracy", "label_acc")

# Default tolerance when a baseline is (re)written: the smoke runs are short, so run-to-run
# spread across machines/BLAS builds is a sizeable fraction of FD; 25% relative with a floor.
DEFAULT_REL_TOL = 0.25
DEFAULT_ABS_TOL = 1e-3


def better_direction(metric: str) -> str:
    m = metric.lower()
    if m.startswith(LOWER_IS_BETTER_PREFIXES):
        return "lower"
    if m.startswith(HIGHER_IS_BETTER_PREFIXES):
        return "higher"
    raise ConfigError(f"metric '{metric}': cannot tell whether lower or higher is better; set \"better\" in the baseline")


@dataclass
class GateRow:
    method: str
    metric: str
    baseline: float | None
    tolerance: float | None
    better: str
    value: float | None
    status: str  # ok | regressed | improved | missing | new

    @property
    def failed(self) -> bool:
        return self.status in ("regressed", "missing")


def load_baseline(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"baseline file {path} does not exist; create it with --update-baseline")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"baseline file {path} is not valid JSON ({e}); restore it from git or rewrite it with --update-baseline") from None
    methods = data.get("methods") if isinstance(data, dict) else None
    if not isinstance(methods, dict):
        raise ConfigError(f"baseline file {path}: expected {{\"methods\": {{label: {{metric: {{value, tolerance, better}}}}}}}}")
    for label, metrics in methods.items():
        for metric, entry in metrics.items():
            missing = [k for k in ("value", "tolerance", "better") if k not in entry]
            if missing:
                raise ConfigError(f"baseline file {path}: {label}/{metric} lacks {', '.join(missing)}")
            if entry["better"] not in ("lower", "higher"):
                raise ConfigError(f"baseline file {path}: {label}/{metric} better must be 'lower' or 'higher', not {entry['better']!r}")
    return data


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def compare(results: Mapping[str, Mapping[str, float]], baseline: Mapping[str, Any]) -> list[GateRow]:
    """results: {label: {metric: value}} from the suite's final records."""
    rows: list[GateRow] = []
    base_methods = baseline["methods"]
    for label in sorted(set(base_methods) | set(results)):
        base = base_methods.get(label, {})
        got = results.get(label, {})
        for metric in sorted(set(base) | set(got)):
            entry = base.get(metric)
            value = got.get(metric)
            if entry is None:
                if _is_number(value):
                    rows.append(GateRow(label, metric, None, None, _direction_or_unknown(metric), value, "new"))
                continue
            ref, tol, better = float(entry["value"]), float(entry["tolerance"]), entry["better"]
            if not _is_number(value):
                status = "missing"
            else:
                worse_by = (value - ref) if better == "lower" else (ref - value)
                status = "regressed" if worse_by > tol else ("improved" if worse_by < -tol else "ok")
            rows.append(GateRow(label, metric, ref, tol, better, value if _is_number(value) else None, status))
    return rows


def _direction_or_unknown(metric: str) -> str:
    try:
        return better_direction(metric)
    except ConfigError:
        return "?"


def format_table(rows: list[GateRow]) -> str:
    def f(v):
        return "-" if v is None else f"{v:.4g}"

    header = ("method", "metric", "baseline", "tol", "better", "value", "status")
    body = [(r.method, r.metric, f(r.baseline), f(r.tolerance), r.better, f(r.value), r.status.upper() if r.failed else r.status) for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)] if body else [len(h) for h in header]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(b) for b in body])


def make_baseline(
    results: Mapping[str, Mapping[str, float]],
    previous: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    suite: str = "smoke",
) -> dict:
    """A new baseline from results; tolerances and directions already in `previous` are kept."""
    prev = (previous or {}).get("methods", {})
    methods: dict[str, dict] = {}
    for label, metrics in sorted(results.items()):
        for metric, value in sorted(metrics.items()):
            if not _is_number(value):
                raise ConfigError(f"cannot write a baseline: {label}/{metric} is {value!r}, not a finite number")
            old = prev.get(label, {}).get(metric, {})
            better = old.get("better") or better_direction(metric)
            tol = old.get("tolerance")
            if tol is None:
                tol = max(DEFAULT_ABS_TOL, DEFAULT_REL_TOL * abs(value))
            methods.setdefault(label, {})[metric] = {"value": float(value), "tolerance": float(tol), "better": better}
    return {"suite": suite, "provenance": dict(provenance or {}), "methods": methods}


def write_baseline(path: str | Path, baseline: Mapping[str, Any]) -> Path:
    return atomic_write_json(path, dict(baseline))
