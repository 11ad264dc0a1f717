"""Report sections of analysis runs, read from the store's files only (no torch).

An analysis run (onestep.benchmarks.analyses) writes into STORE/runs/<run_id>/ its figures
(PNG), data (CSV) and final.json with kind "analysis", analysis, title, summary, claims,
figures and tables (file names relative to the run directory).

    for s in analysis_sections("results"):
        s["title"], s["summary"], s["figures"], s["tables"], s["run_dir"]
"""
from __future__ import annotations

import json
import os
from pathlib import Path


def analysis_sections(store_dir: str | os.PathLike) -> list[dict]:
    """One dict per complete analysis run: title, summary, claims, figures and tables (absolute
    paths of the files that exist), run_dir, analysis, preset, ended. Newest first within an
    analysis; analyses in name order. Unreadable records are skipped."""
    runs = Path(store_dir) / "runs"
    if not runs.is_dir():
        return []
    out = []
    for run_dir in sorted(p for p in runs.iterdir() if p.is_dir() and not p.name.startswith(".")):
        final = run_dir / "final.json"
        try:
            rec = json.loads(final.read_text())
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            continue
        if not isinstance(rec, dict) or rec.get("kind") != "analysis":
            continue

        def files(key: str) -> list[str]:
            names = rec.get(key) or []
            return [str(run_dir / n) for n in names if isinstance(n, str) and (run_dir / n).is_file()]

        out.append({"title": str(rec.get("title") or rec.get("analysis") or run_dir.name),
                    "summary": str(rec.get("summary") or ""), "claims": list(rec.get("claims") or []),
                    "figures": files("figures"), "tables": files("tables"), "run_dir": str(run_dir),
                    "analysis": rec.get("analysis"), "preset": rec.get("preset"), "ended": rec.get("ended"),
                    "untrained": bool(rec.get("untrained_feature_weights"))})
    out.sort(key=lambda s: (str(s["analysis"]), str(s["ended"] or "")), reverse=False)
    # newest first within an analysis
    grouped: dict[str, list[dict]] = {}
    for s in out:
        grouped.setdefault(str(s["analysis"]), []).append(s)
    return [s for name in sorted(grouped) for s in reversed(grouped[name])]
