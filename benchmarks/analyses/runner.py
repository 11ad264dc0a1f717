"""One analysis run: resolve config -> claim a store run directory -> run -> record.

The same run directories, provenance and resume semantics as training runs
(onestep.benchmarks.runner / store): STORE/runs/analysis-<name>-<hash of the resolved config>/
holds config.json (kind "analysis"), provenance.json, status.json, stages/ (finished stages,
read back on resume), checkpoints/ (the trainings' loop state), the figures (PNG), the data
(CSV) and final.json, whose existence means complete. final.json is the record the report
renders without torch: {kind: "analysis", analysis, title, summary, claims, figures, tables, ...}.
"""
from __future__ import annotations

import json
import time
import traceback
from typing import Any, Callable, Mapping

from onestep.methods.core.config import build_config, config_hash, override, to_dict

from ..store import ResultsStore, RunBusy, job_identity
from .base import AnalysisContext, AnalysisResult, get_analysis, resolve_analysis_preset

ANALYSIS_SCHEMA = 1  # part of the run hash: bump when an analysis' meaning changes


def resolve(name: str, preset: str = "smoke", overrides: Mapping[str, Any] | None = None):
    """(analysis class, Config instance) for a registered name, preset and field overrides."""
    cls = get_analysis(name)
    cfg = build_config(cls.Config, resolve_analysis_preset(cls, preset), where=f"analysis {name} preset {preset}")
    if overrides:
        cfg = override(cfg, dict(overrides), where=f"analysis {name} overrides")
    return cls, cfg


def analysis_run_id(name: str, config: Any) -> str:
    return f"analysis-{name}-{config_hash({'schema': ANALYSIS_SCHEMA, 'analysis': name, 'config': to_dict(config)}, 12)}"


def _provenance(config: Mapping[str, Any]) -> dict:
    from ..runner import git_info, hardware_info, package_versions, source_root
    import sys

    return {"git": git_info(), "packages": package_versions(), "hardware": hardware_info(),
            "seeds": {"analysis": config.get("seed")}, "code": str(source_root()), "argv": sys.argv}


def execute_analysis(name: str, preset: str = "smoke", overrides: Mapping[str, Any] | None = None,
                     store: ResultsStore | str = "results", device: str | None = None, force: bool = False,
                     log: Callable[[str], None] = print) -> tuple[str, Any]:
    """Run (or resume, or skip when complete) an analysis; returns (state, RunDir)."""
    import torch

    cls, cfg = resolve(name, preset, overrides)
    store = store if isinstance(store, ResultsStore) else ResultsStore(store)
    store.check_writable()
    run_id = analysis_run_id(name, cfg)
    run = store.run(run_id)
    if force:
        run.wipe()
    state = run.state().state
    if state == "complete":
        log(f"[analysis {name}] complete, skipped ({run.path})")
        return "complete", run
    if state == "running":
        log(f"[analysis {name}] running elsewhere ({run.status().get('owner')}), skipped")
        return "running", run
    config = {"kind": "analysis", "run_id": run_id, "analysis": name, "preset": preset, "suite": "analyses",
              "label": f"{name}-{preset}", "method": f"analysis:{name}", "config": to_dict(cfg)}
    run.write_config(config)
    try:
        claim = run.claim()
    except RunBusy as e:
        log(f"[analysis {name}] {e}, skipped")
        return "running", run
    old = json.loads(run.provenance_file.read_text()) if run.provenance_file.exists() else {}
    prov = _provenance(to_dict(cfg))
    prov["started"] = old.get("started") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    prov["attempts"] = [*old.get("attempts", []), {**job_identity(), "attempt": claim["attempt"], "started": claim["started"]}]
    run.write_provenance(prov)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    ctx = AnalysisContext(run.path, dev, log)
    log(f"[analysis {name}] {'resuming' if state in ('interrupted', 'failed') else 'starting'} {run_id} -> {run.path}")
    t0 = time.time()
    try:
        result = cls(cfg).run(ctx)
        if not isinstance(result, AnalysisResult):
            raise TypeError(f"analysis {name}: run() must return an AnalysisResult, got {type(result).__name__}")
        for f in [*result.figures, *result.tables]:
            if not (run.path / f).is_file():
                raise FileNotFoundError(f"analysis {name} lists {f} but did not write it into {run.path}")
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt) or type(e).__name__ in ("InterruptedError", "SystemExit"):
            raise
        run.write_failure(f"{type(e).__name__}: {e}", traceback.format_exc())
        log(f"[analysis {name}] FAILED: {type(e).__name__}: {e}")
        raise
    final = {"kind": "analysis", "run_id": run_id, "analysis": name, "title": cls.title, "preset": preset,
             "summary": result.summary, "claims": result.claims, "figures": list(result.figures),
             "tables": list(result.tables), "data": result.data, "untrained_feature_weights": bool(result.untrained),
             "metrics": {}, "duration_s": round(time.time() - t0, 3),
             "ended": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    run.write_final(final)
    log(f"[analysis {name}] complete in {final['duration_s']:.1f}s -> {run.path}\n{result.summary}")
    return "complete", run
