"""onestep.reports: leaderboard and report rendering (jinja2, matplotlib, CSV/JSON exports).
Reads the results store's schema only (never torch or onestep.methods)."""
from .build import ReportResult, build_report
from .store_files import ReportError, RunFiles, read_store

__all__ = ["ReportError", "ReportResult", "RunFiles", "build_report", "read_store"]
