"""Analysis plugins: the papers' mechanism studies as runs of the results store.

    onestep analyze --help                 # lists the analyses
    onestep analyze relfid --preset smoke  # -> STORE/runs/analysis-relfid-<hash>/

Built-ins: relfid (paper 000 Fig. 2), frequency (paper 001 Sec. 4.5, Figs. 4/6), activations
(paper 000 Sec. 4.1, Fig. 3), freezing (paper 000 Table 2 / paper 001 Table 3). Interface:
onestep.benchmarks.analyses.base; runner: onestep.benchmarks.analyses.runner.
"""
from .base import (ENTRY_POINT_GROUP, Analysis, AnalysisContext, AnalysisResult, available_analyses, get_analysis,
                   register_analysis)
from .runner import analysis_run_id, execute_analysis, resolve

__all__ = ["Analysis", "AnalysisContext", "AnalysisResult", "register_analysis", "available_analyses", "get_analysis",
           "execute_analysis", "resolve", "analysis_run_id", "ENTRY_POINT_GROUP"]
