"""The analysis plugin interface and its registry (the counterpart of onestep.methods.plugin).

An analysis is a mechanism study of the papers (rel-FID, frequency response, activations,
freezing shares): it trains or loads what it needs through the project's own parts (GDD
plugin, the one training loop, the metrics harness, the solvers, the zoo) and writes figures
(PNG) and data (CSV) into one run directory of the results store. A subclass sets `name`,
`title`, a dataclass `Config` and `presets` ({preset: {Config field: value}}; every analysis
has `smoke`), and implements `run(ctx) -> AnalysisResult`. Built-ins are the modules of
onestep.benchmarks.analyses; other packages register through the `onestep.analyses`
entry-point group.

Resume: `ctx.stage(key, fn)` stores each stage's JSON result in the run directory, so an
interrupted analysis redoes only unfinished stages; trainings keep their loop checkpoints under
`ctx.checkpoint_dir(key)` and resume from them.
"""
from __future__ import annotations

import abc
import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Mapping

from onestep.methods.core.atomic import atomic_write, atomic_write_json, atomic_write_text
from onestep.methods.core.config import config_hash
from onestep.methods.core.registry import PluginRegistry

ENTRY_POINT_GROUP = "onestep.analyses"
_INFRA = {"base", "runner", "common", "hooks"}  # modules of this package that hold no analysis


@dataclass
class AnalysisResult:
    """What `run` returns; the runner writes it into final.json (kind 'analysis')."""

    summary: str  # the findings in a few sentences, with numbers
    claims: list[dict] = field(default_factory=list)  # {claim, holds: bool|None, evidence}
    figures: list[str] = field(default_factory=list)  # file names in the run directory (PNG)
    tables: list[str] = field(default_factory=list)  # file names in the run directory (CSV)
    data: dict[str, Any] = field(default_factory=dict)  # small JSON facts (numbers behind the claims)
    untrained: bool = False  # measured with an untrained feature network


class AnalysisContext:
    """What the runner offers an analysis: its run directory, device, resume and file helpers."""

    def __init__(self, run_dir: Path, device, log: Callable[[str], None] = print):
        self.run_dir = Path(run_dir)
        self.device = device
        self.log = log
        self.stage_dir = self.run_dir / "stages"

    # --- resume --------------------------------------------------------------------------
    def stage(self, key: str, fn: Callable[[], Any]) -> Any:
        """fn()'s JSON-able result, computed once: a finished stage is read back on resume."""
        path = self.stage_dir / f"{_safe(key)}.json"
        if path.is_file():
            return json.loads(path.read_text())["result"]
        result = fn()
        atomic_write_json(path, {"key": key, "result": result})
        return result

    def checkpoint_dir(self, key: str) -> Path:
        """Where a training of this analysis keeps the loop's resume state and generators."""
        return self.run_dir / "checkpoints" / _safe(key)

    # --- outputs -------------------------------------------------------------------------
    def write_csv(self, name: str, rows: Iterable[Mapping[str, Any]]) -> str:
        rows = list(rows)
        cols: list[str] = []
        for r in rows:
            cols += [k for k in r if k not in cols]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({k: _csv_value(v) for k, v in r.items()})
        atomic_write_text(self.run_dir / name, buf.getvalue())
        return name

    def save_figure(self, fig, name: str) -> str:
        """Write a matplotlib figure as PNG (atomically) and close it."""
        import matplotlib.pyplot as plt

        atomic_write(self.run_dir / name, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"))
        plt.close(fig)
        return name


def _safe(key: str) -> str:
    s = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)
    return s if len(s) <= 80 else f"{s[:60]}-{config_hash(key, 8)}"


def _csv_value(v):
    if isinstance(v, float):
        return repr(v)
    return json.dumps(v) if isinstance(v, (list, dict)) else v


class Analysis(abc.ABC):
    """Base class of analysis plugins. Subclasses set `name`, `title`, `Config`, `presets`."""

    name: ClassVar[str]
    title: ClassVar[str]
    Config: ClassVar[type]
    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, config: Any):
        self.config = config

    @abc.abstractmethod
    def run(self, ctx: AnalysisContext) -> AnalysisResult:
        ...


# --- registry -------------------------------------------------------------------------------
def _needs_smoke(cls) -> None:
    if "smoke" not in cls.presets:
        raise TypeError(f"analysis {cls.name}: needs a 'smoke' preset (CPU, digits, seconds to minutes)")


REGISTRY: PluginRegistry = PluginRegistry("analysis", Analysis, "onestep.benchmarks.analyses", ENTRY_POINT_GROUP,
                                          skip_modules=_INFRA, check=_needs_smoke)


def register_analysis(cls: type[Analysis]) -> type[Analysis]:
    return REGISTRY.register(cls)


def available_analyses() -> dict[str, type[Analysis]]:
    return REGISTRY.available()


def get_analysis(name: str) -> type[Analysis]:
    return REGISTRY.get(name)


def resolve_analysis_preset(cls: type[Analysis], preset: str) -> dict[str, Any]:
    return dict(REGISTRY.preset(cls, preset))
