"""Read a results store from its files (the schema written by onestep.benchmarks.store).

Reports depend on these files only, never on the training or metrics code, so a report can be
rendered on any machine that has the store directory (no torch needed):

    STORE/runs/<run_id>/config.json, provenance.json, status.json, metrics.jsonl,
                        final.json (its existence = complete), error.json, samples.png

Nothing here raises on a damaged run: an unreadable file becomes a problem note on that run,
so one corrupt directory never hides the rest of the leaderboard.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping


class ReportError(RuntimeError):
    """The report cannot be built (missing store, unusable output folder); the message says why."""


@dataclass
class RunFiles:
    """Everything the store holds about one run, as plain data."""

    run_id: str
    path: Path | None
    config: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    status: dict = field(default_factory=dict)
    final: dict | None = None
    error: dict | None = None
    series: list[dict] = field(default_factory=list)  # metrics.jsonl records, file order
    samples: Path | None = None
    state: str = "pending"
    detail: str = ""
    problems: list[str] = field(default_factory=list)  # unreadable files, bad lines

    @property
    def label(self) -> str:
        return str(self.config.get("label") or self.run_id)

    @property
    def suite(self) -> str | None:
        return self.config.get("suite")

    @property
    def complete(self) -> bool:
        return self.state == "complete"


def _read_json(path: Path, problems: list[str]) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        problems.append(f"{path.name} is unreadable ({e}); the run's directory is damaged")
        return None


def _read_series(path: Path, problems: list[str]) -> list[dict]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as e:
        problems.append(f"{path.name} is unreadable ({e})")
        return []
    records = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"{path.name} line {i} is not JSON ({e}); skipped")
            continue
        if isinstance(rec, dict):
            records.append(rec)
    return records


def state_from_files(final: Mapping | None, status: Mapping | None, error: Mapping | None) -> tuple[str, str]:
    """(state, detail) from the files alone. The store's own RunDir.state() also knows whether a
    'running' owner is still alive; callers that can import it pass its states in instead."""
    if final is not None:
        return "complete", ""
    status = status or {}
    if status.get("state") == "failed" or error:
        return "failed", str(status.get("error") or (error or {}).get("error") or "failed (no message recorded)")
    if status.get("state") == "running":
        prog = status.get("progress")
        return "running", f"last progress: {prog}" if prog else ""
    return "pending", ""


def read_run(path: Path, state: tuple[str, str] | None = None) -> RunFiles:
    path = Path(path)
    problems: list[str] = []
    config = _read_json(path / "config.json", problems)
    if config is not None and not isinstance(config, dict):
        problems.append("config.json is not a JSON object")
        config = None
    run = RunFiles(run_id=path.name, path=path, config=config or {}, problems=problems)
    run.provenance = _read_json(path / "provenance.json", problems) or {}
    run.status = _read_json(path / "status.json", problems) or {}
    final_exists = (path / "final.json").exists()
    final = _read_json(path / "final.json", problems)
    run.final = final if isinstance(final, dict) else ({} if final_exists else None)
    run.error = _read_json(path / "error.json", problems)
    run.series = _read_series(path / "metrics.jsonl", problems)
    samples = path / "samples.png"
    run.samples = samples if samples.is_file() else None
    if config is None and not problems:
        problems.append("config.json is missing (the run never started writing)")
    run.state, run.detail = state or state_from_files(run.final, run.status, run.error)
    return run


def read_store(root: str | Path, states: Mapping[str, tuple[str, str]] | None = None) -> list[RunFiles]:
    """Every run directory of the store, sorted by run id. `states`: run_id -> (state, detail)
    from the store's own liveness check; missing entries are derived from the files."""
    root = Path(root).expanduser()
    if not root.exists():
        raise ReportError(f"results store {root} does not exist; pass --store DIR (the folder `onestep run` wrote to)")
    if not root.is_dir():
        raise ReportError(f"results store {root} is not a directory; pass --store DIR")
    runs_dir = root / "runs"
    if not runs_dir.is_dir():
        return []
    states = states or {}
    runs = []
    for p in sorted(runs_dir.iterdir()):
        if p.is_dir() and not p.name.startswith("."):
            run = read_run(p, states.get(p.name))
            if run.config.get("kind") == "analysis":  # rendered as analysis sections, not leaderboard rows
                continue
            runs.append(run)
    return runs
