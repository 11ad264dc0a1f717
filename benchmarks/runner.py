"""One run: train (or load) -> sample -> evaluate -> record, into one store directory.

`execute_run` is idempotent: a complete run is skipped, an interrupted one resumes from the
training loop's checkpoints (kept in the run directory), a failed one is re-run only when
asked. `RunJob` wraps it as a submitit Checkpointable for Slurm/local job arrays: on
preemption or timeout submitit calls `checkpoint()`, which requeues the same call, and the
requeued job resumes. `submit_runs` snapshots the package source into the sweep folder first
and makes jobs import from that snapshot, so later edits never change queued runs.

The stages that need other parts of the project (teacher, data, training loop, metrics,
sample grids) are methods of `Pipeline`; tests of the store and resume semantics substitute a
small pipeline, the smoke suite uses the real one.
"""
from __future__ import annotations

import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping

import submitit

from onestep.methods.core.atomic import atomic_write_json
from onestep.methods.core.config import ConfigError

from .store import ResultsStore, RunBusy, RunDir, StoreError, job_identity
from .suites import RunSpec, setup_problems  # noqa: F401  (re-exported for the CLI)

PACKAGE_FOLDERS = ("methods", "benchmarks", "environments", "reports")
PROVENANCE_PACKAGES = (
    "onestep-bench", "torch", "torchvision", "numpy", "scipy", "torch-fidelity", "clean-fid", "open-clip-torch",
    "timm", "scikit-learn", "pandas", "pyarrow", "submitit", "safetensors", "lpips",
)
SNAPSHOT_FILE = "SNAPSHOT.json"


def default_store_root() -> Path:
    return Path(os.environ.get("ONESTEP_STORE") or "results")


# --- provenance ------------------------------------------------------------------------------
def source_root() -> Path:
    """The folder holding methods/, benchmarks/, ... of the code that is running."""
    return Path(__file__).resolve().parents[1]


def git_info(root: Path | None = None) -> dict[str, Any]:
    root = root or source_root()
    snap = root / SNAPSHOT_FILE
    if snap.exists():  # running from a sweep's code snapshot: its recorded origin
        return {**json.loads(snap.read_text()).get("git", {}), "snapshot": str(root)}

    def git(*args):
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
        return out.stdout.strip() if out.returncode == 0 else None

    try:
        sha = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain")  # untracked source counts: it changes what runs
    except (OSError, subprocess.TimeoutExpired):
        return {"sha": None, "dirty": None}
    return {"sha": sha, "dirty": None if dirty is None else bool(dirty)}


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in PROVENANCE_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def hardware_info() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def provenance(spec: RunSpec) -> dict[str, Any]:
    return {
        "git": git_info(),
        "packages": package_versions(),
        "hardware": hardware_info(),
        "seeds": {"run": spec.seed, "loop": spec.loop_config.get("seed"), "evaluation": spec.evaluation.get("seeds")},
        "code": str(source_root()),
        "argv": sys.argv,
    }


# --- the stages ------------------------------------------------------------------------------
class SetupError(ConfigError):
    """A run could not start (teacher, data, method, device): a configuration problem found
    before its first training step. The run is not marked failed (fixing the configuration and
    running again must not need --rerun-failed); the error propagates as a one-line message."""


_SETUP_ERRORS = (ConfigError, FileNotFoundError, ImportError, ValueError, TypeError, KeyError)


def resolve_device(device: str | None):
    """torch.device for `device` (None: cuda if available, else cpu); ConfigError if it names a
    device this machine does not have (checked here, before any work)."""
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(f"--device {device}: not a torch device ({e}); use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: no CUDA GPU is visible here (torch.cuda.is_available() is False); "
                              "use --device cpu, or run on a GPU node")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {device}: only {torch.cuda.device_count()} GPU(s) visible (cuda:0.."
                              f"cuda:{torch.cuda.device_count() - 1})")
    elif dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"--device {device}: MPS is not available here; use --device cpu")
    return dev


@dataclass
class TrainResult:
    generator: Any  # nn.Module: G(z, class_labels) -> [-1, 1]
    info: dict  # loop facts (steps, kimg, best snapshot, resumed_from, ...)


class Pipeline:
    """The real stages, built from the other parts of the project."""

    def __init__(self, device: str | None = None):
        self.device = resolve_device(device)

    def load_teacher(self, spec: RunSpec):
        """Digits teachers are trained here once and cached; anything else is a checkpoint
        path or a published-checkpoint preset (onestep.benchmarks.teachers.load_teacher)."""
        if not spec.teacher:
            return None
        from onestep.benchmarks.teachers import load_teacher

        return load_teacher(spec.teacher, device=self.device, log=_log)

    def load_data(self, spec: RunSpec, split: str = "train"):
        ds = spec.dataset
        if ds["name"] == "digits":
            from onestep.benchmarks.datasets import load_digits

            return load_digits(ds["resolution"], ds["channels"], split=split, conditional=ds["conditional"])
        from onestep.benchmarks import datasets

        problem = datasets.dataset_path_problem(ds["name"], ds.get("path"), ds.get("resolution"))
        if problem:
            raise ConfigError(problem)
        path = ds.get("path") or datasets.find_named_dataset(ds["name"], ds.get("resolution"))
        # Conditioning follows the suite: EDM's CIFAR-10 zip carries labels even for unconditional runs.
        labels = {} if ds.get("conditional", True) else {"use_labels": False}
        return datasets.load_dataset(path, resolution=ds["resolution"], **labels)

    def train(self, spec: RunSpec, run: RunDir, teacher, data, evaluate: Callable) -> TrainResult:
        from onestep.benchmarks.training import data_spec_of, instantiate_method, train

        # The spec holds fully resolved configs: pass them as whole-section overrides.
        overrides = {f"method.{k}": v for k, v in spec.method_config.items()}
        overrides.update({f"loop.{k}": v for k, v in spec.loop_config.items()})
        try:
            method, loop = instantiate_method(spec.method, None, overrides, teacher=teacher,
                                              data_spec=data_spec_of(data), device=self.device)
        except _SETUP_ERRORS as e:
            raise SetupError(f"{spec.label}: cannot build method '{spec.method}': {e}") from e
        last = [time.time()]

        def heartbeat(step: int, cur_nimg: int) -> None:  # lets `status` tell running from killed
            if time.time() - last[0] > 30:
                last[0] = time.time()
                run.heartbeat(progress=f"step {step}, {cur_nimg / 1000:g} kimg")

        result = train(method, data, loop, run.checkpoint_dir, evaluate=evaluate, device=self.device,
                       identity_extra={"teacher": spec.teacher}, on_step=heartbeat,
                       log=lambda s: _log(f"[{spec.label}] {s}"))
        import torch.distributed as tdist

        world = tdist.get_world_size() if tdist.is_available() and tdist.is_initialized() else 1
        info = {
            # The per-GPU batch: GAN methods' BatchNorm statistics (and official loss scales) depend on it.
            "world_size": world, "per_gpu_batch": loop.batch_size // world,
            "steps": result.step, "cur_nimg": result.cur_nimg, "seconds": round(result.seconds, 3),
            "resumed_from_step": result.resumed_from_step, "loop_config_hash": result.config_hash,
            "best": result.best, "best_snapshot": result.files.get("best"), "files": dict(result.files),
            "method": method.describe(),
        }
        return TrainResult(result.generator, info)

    def evaluate(self, spec: RunSpec, generator, data, metrics: list[str], n: int, seeds: list[int], reference: str) -> dict:
        """{metric key: {value, n, untrained, ...}} from the one metrics harness."""
        from onestep.benchmarks.metrics.evaluate import evaluate
        from onestep.benchmarks.metrics.protocols import parse_metrics

        was_training = generator.training
        generator.eval()
        try:
            result = evaluate(generator, self.reference(spec, reference), list(metrics), num_samples=n, seeds=seeds,
                              batch_size=spec.evaluation.get("batch_size", 250), device=self.device, progress=False,
                              data_floor=bool(spec.evaluation.get("data_floor", False)))
        finally:
            generator.train(was_training)
        # Records carry display names ("FD-digits"); the store uses the suite's metric keys.
        by_label = {m.label: m.key for m in parse_metrics(list(metrics))}
        out = {}
        for rec in result.records:
            key = by_label.get(rec.metric) or rec.metric.lower().replace("-", "_")
            # Keep what a reader needs to judge the number: n, the extractor, and the data floor.
            out[key] = {"value": rec.value, "raw": rec.raw, "n": rec.n, "std": rec.std, "untrained": rec.untrained,
                        "display": rec.metric, "extractor": rec.extractor, "floor": rec.floor,
                        "floor_n": rec.floor_n, "floor_note": rec.floor_note}
        return out

    def reference(self, spec: RunSpec, which: str):
        if which in ("train", "test", "all"):
            return self.load_data(spec, split=which)
        return which  # path to reference statistics

    def save_grid(self, generator, path: Path, n: int) -> None:
        import torch

        from onestep.benchmarks.generate import save_image_grid
        from onestep.benchmarks.sampling import iter_generated

        images = torch.cat([x for _, x in iter_generated(generator, range(n), batch_size=n, device=self.device)])
        scale = max(1, 32 // images.shape[-1])  # 8x8 digits: enlarge (nearest) so a person can see them
        images = images.repeat_interleave(scale, -1).repeat_interleave(scale, -2)
        save_image_grid(images.cpu(), path)


def _plain(v) -> bool:
    return isinstance(v, (int, float, str, bool, type(None), list, dict))


def metric_values(result: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    """({name: float}, details) from a metrics result: plain floats or {value, n, untrained, ...}."""
    values, details = {}, {}
    for name, v in (result or {}).items():
        if isinstance(v, Mapping):
            if "value" in v:
                values[name] = float(v["value"])
                details[name] = {k: x for k, x in v.items() if _plain(x)}
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            values[name] = float(v)
        elif _plain(v):
            details[name] = v
    return values, details


# --- one run ---------------------------------------------------------------------------------
def _log(msg: str) -> None:
    print(msg, flush=True)


def execute_run(
    spec: RunSpec | Mapping[str, Any],
    store: ResultsStore | str | os.PathLike,
    pipeline: Pipeline | None = None,
    force: bool = False,
    rerun_failed: bool = True,
    log: Callable[[str], None] = _log,
) -> str:
    """Run (or resume, or skip) one run; returns its final state. Exceptions of the run are
    recorded in the run's directory and re-raised."""
    spec = spec if isinstance(spec, RunSpec) else RunSpec.from_dict(dict(spec))
    store = store if isinstance(store, ResultsStore) else ResultsStore(store)
    run = store.run(spec.run_id)
    state = run.state().state
    if force and state != "pending":
        run.wipe()
        state = "pending"
    if state == "complete":
        log(f"[{spec.label}] complete, skipped ({run.path})")
        return "complete"
    if state == "failed" and not rerun_failed:
        log(f"[{spec.label}] failed before, skipped (use --rerun-failed): {run.status().get('error', '')}")
        return "failed"
    if state == "running":
        log(f"[{spec.label}] running elsewhere ({run.status().get('owner')}), skipped")
        return "running"
    pipeline = pipeline or Pipeline()
    run.write_config({**spec.to_dict()})
    before = run.status()
    try:
        claim = run.claim()
    except RunBusy as e:
        log(f"[{spec.label}] {e}, skipped")
        return "running"
    prov = provenance(spec)
    old = json.loads(run.provenance_file.read_text()) if run.provenance_file.exists() else {}
    prov["started"] = old.get("started") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    prov["attempts"] = [*old.get("attempts", []), {**job_identity(), "attempt": claim["attempt"], "started": claim["started"]}]
    run.write_provenance(prov)
    if (run.checkpoint_dir / "resume.pt").is_file():
        log(f"[{spec.label}] resuming run {spec.run_id} from its checkpoint -> {run.path}")
    elif state in ("interrupted", "failed"):
        log(f"[{spec.label}] re-running run {spec.run_id} from step 0 (no checkpoint was written) -> {run.path}")
    else:
        log(f"[{spec.label}] starting run {spec.run_id} -> {run.path}")
    t0 = time.time()
    try:
        final = _run_stages(spec, run, pipeline, log)
    except BaseException as e:  # recorded for `onestep status`, then propagated
        if isinstance(e, KeyboardInterrupt) or type(e).__name__ in ("InterruptedError", "SystemExit"):
            run.write_interrupted(f"interrupted ({type(e).__name__})")  # resumes on the next run
            log(f"[{spec.label}] interrupted; {run.state().detail}")
            raise
        if isinstance(e, SetupError):
            # Nothing was trained: give the run back as it was before this attempt.
            if before is None:
                run.status_file.unlink(missing_ok=True)
            else:
                atomic_write_json(run.status_file, before)
            raise
        run.write_failure(f"{type(e).__name__}: {e}", traceback.format_exc())
        log(f"[{spec.label}] FAILED: {type(e).__name__}: {e}")
        raise
    final["duration_s"] = round(time.time() - t0, 3)
    final["ended"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    run.write_final(final)
    shown = ", ".join(f"{k}={v:.4g}" for k, v in final["metrics"].items())
    tag = " UNTRAINED (feature weights are not the released ones)" if final.get("untrained_feature_weights") else ""
    log(f"[{spec.label}] complete in {final['duration_s']:.1f}s: {shown}{tag}")
    return "complete"


def _evaluate_repeats(spec: RunSpec, pipeline: Pipeline, generator, data, metrics, n: int, repeats: int, base_seeds):
    """Mean (and std over repeats) of each metric; repeat r uses seeds shifted by r*n."""
    per: dict[str, list[float]] = {}
    details: dict[str, Any] = {}
    for r in range(repeats):
        seeds = [s + r * n for s in base_seeds]
        vals, det = metric_values(pipeline.evaluate(spec, generator, data, metrics, n, seeds, spec.dataset["reference"]))
        for k, v in vals.items():
            per.setdefault(k, []).append(v)
        details[f"repeat{r}"] = det
    for k, vs in per.items():
        if any(not math.isfinite(v) for v in vs):
            raise ValueError(f"metric {k} is not finite ({vs}); the generator produced invalid samples")
    out = {k: sum(v) / len(v) for k, v in per.items()}
    if repeats > 1:
        out.update({f"{k}_std": (sum((x - out[k]) ** 2 for x in v) / (len(v) - 1)) ** 0.5 for k, v in per.items()})
    return out, details


def _run_stages(spec: RunSpec, run: RunDir, pipeline: Pipeline, log, follower: bool = False) -> dict | None:
    """The stages of one run. A follower (rank > 0 of a multi-GPU job) trains with rank 0 and
    records nothing: the loop broadcasts rank 0's evaluations, and rank 0 alone evaluates the
    final generator and writes the store."""
    from onestep.benchmarks.sampling import parse_seeds

    ev = spec.evaluation
    seeds = parse_seeds(ev["seeds"])
    if len(seeds) < ev["n_samples"]:  # found before training, not after it
        raise SetupError(f"{spec.label}: evaluation.seeds '{ev['seeds']}' gives {len(seeds)} seeds but n_samples is "
                         f"{ev['n_samples']}; give at least n_samples seeds (e.g. seeds: 0-{ev['n_samples'] - 1})")
    try:
        teacher = pipeline.load_teacher(spec)
        data = pipeline.load_data(spec, split="train")
    except _SETUP_ERRORS as e:
        if isinstance(e, SetupError):
            raise
        raise SetupError(f"{spec.label}: {e}") from e
    periodic_metrics = ev.get("periodic_metrics") or ev["metrics"][:1]
    periodic_n = ev.get("periodic_n_samples") or ev["n_samples"]
    protocol = ev.get("protocol", "final")
    if protocol not in ("final", "best_snapshot"):
        raise ConfigError(f"evaluation.protocol {protocol!r}: choose 'final' or 'best_snapshot'")
    if protocol == "best_snapshot":
        # GDD/D2O's README reports the snapshot with the lowest FID: every snapshot gets the
        # full-size first metric (FID-50k), the best is reported beside the final snapshot's.
        periodic_metrics, periodic_n = list(dict.fromkeys([ev["metrics"][0], *periodic_metrics])), ev["n_samples"]
    if follower:
        pipeline.train(spec, run, teacher, data, lambda generator, cur_nimg: {})
        return None

    def periodic(generator, cur_nimg: int) -> dict[str, float]:
        """The loop's evaluation hook: FD vs training images, as the papers' convergence plots."""
        kimg = cur_nimg / 1000
        vals, det = metric_values(
            pipeline.evaluate(spec, generator, data, periodic_metrics, periodic_n, list(range(periodic_n)), "train")
        )
        record = {"kind": "periodic", "kimg": float(kimg), "n": periodic_n, "time": time.time(), **vals}
        if any(d.get("untrained") for d in det.values() if isinstance(d, Mapping)):
            record["untrained"] = True
        run.append_metrics(record)  # a resumed run's recomputed point replaces the old one
        run.heartbeat(progress=f"kimg {kimg:g}")
        # The loop prints the eval line (once), with the UNTRAINED tag when flagged here.
        return {**vals, "untrained": True} if record.get("untrained") else vals

    trained = pipeline.train(spec, run, teacher, data, periodic)
    n = ev["n_samples"]
    metrics, details = _evaluate_repeats(spec, pipeline, trained.generator, data, ev["metrics"], n, ev.get("repeats", 1), seeds[:n])
    if ev.get("grid_samples"):
        pipeline.save_grid(trained.generator, run.samples_file, ev["grid_samples"])
    series = [r for r in run.metrics() if r.get("kind") == "periodic"]
    best = None
    key = (spec.loop_config.get("best_metric") or periodic_metrics[0]) if series else None
    if key and any(key in r for r in series):
        lower = spec.loop_config.get("best_mode", "min") == "min"
        pick = (min if lower else max)((r for r in series if key in r), key=lambda r: r[key])
        best = {"metric": key, "value": pick[key], "kimg": pick["kimg"], "snapshot": trained.info.get("best_snapshot"),
                "n": pick.get("n"), "protocol": protocol}
    untrained = any(isinstance(d, Mapping) and d.get("untrained") for rep in details.values() for d in rep.values())
    return {
        "run_id": spec.run_id,
        "label": spec.label,
        "metrics": metrics,
        "metric_details": details,
        "n_samples": n,
        "repeats": ev.get("repeats", 1),
        "untrained_feature_weights": untrained,
        "nfe": _generator_nfe(trained.generator),  # network evaluations per sample, as evaluated
        "best": best,
        "protocol": protocol,  # 'best_snapshot': compare `best` with published numbers; `metrics` = final snapshot
        "train": trained.info,
    }


def _generator_nfe(generator) -> int | None:
    nfe = getattr(generator, "nfe", None)
    return int(nfe) if isinstance(nfe, (int, float)) and nfe > 0 else None


# --- a suite, locally --------------------------------------------------------------------------
@dataclass
class SuiteOutcome:
    states: dict[str, str]  # run_id -> final state of this invocation
    results: dict[str, dict[str, float]]  # label -> final metrics of complete runs
    summary_csv: Path | None = None

    @property
    def failed(self) -> list[str]:
        return [r for r, s in self.states.items() if s == "failed"]


def run_suite(
    runs: list[RunSpec],
    store: ResultsStore,
    pipeline: Pipeline | None = None,
    force: bool = False,
    rerun_failed: bool = False,
    log: Callable[[str], None] = _log,
    suite_name: str | None = None,
    suite_spec: Any = None,
) -> SuiteOutcome:
    """Run a suite's runs sequentially in this process; failures are recorded and the next run
    goes on. The store must have been checked writable before (see ResultsStore.check_writable)."""
    states: dict[str, str] = {}
    for i, spec in enumerate(runs, 1):
        log(f"=== run {i}/{len(runs)}: {spec.label} ({spec.method}/{spec.preset}) ===")
        try:
            states[spec.run_id] = execute_run(spec, store, pipeline, force=force, rerun_failed=rerun_failed, log=log)
        except SetupError:
            raise  # a configuration problem: the same for the runs after it; one message, exit 2
        except Exception:  # recorded in the run directory by execute_run
            states[spec.run_id] = "failed"
    results = {s.label: (store.run(s.run_id).final() or {}).get("metrics", {}) for s in runs if store.run(s.run_id).is_complete()}
    summary = write_summary(runs, store, suite_name or (runs[0].suite if runs else "suite"), suite_spec)
    return SuiteOutcome(states, results, summary)


def suite_table(runs: list[RunSpec], store: ResultsStore):
    """One row per run of a suite: label, state, metrics (a pandas DataFrame)."""
    import pandas as pd

    rows = []
    for spec in runs:
        run = store.run(spec.run_id)
        st = run.state()
        final = run.final() or {}
        row = {"label": spec.label, "method": spec.method, "preset": spec.preset, "run_id": spec.run_id, "state": st.state}
        row.update(final.get("metrics", {}))
        if final.get("duration_s") is not None:
            row["duration_s"] = final["duration_s"]
        if st.detail:
            row["detail"] = st.detail[:80]
        rows.append(row)
    return pd.DataFrame(rows)


def format_table(df) -> str:
    """A suite table for people: runs without a value show '-' (not NaN)."""
    return df.astype(object).where(df.notna(), "-").to_string(index=False) if len(df) else "(no runs)"


def write_summary(runs: list[RunSpec], store: ResultsStore, suite: str, suite_spec: Any = None) -> Path:
    """STORE/summaries/SUITE.{csv,json}, the suite itself with its published numbers
    (SUITE.suite.json, for reports: run label -> published value) and the store index."""
    from onestep.methods.core.atomic import atomic_write_text
    from onestep.methods.core.config import to_dict

    out = store.root / "summaries" / f"{suite}.csv"
    # Built from the store under its lock, so two `onestep run` of one suite cannot leave an
    # older view on disk: the last writer reads every run's current state.
    with store.locked(".summary.lock"):
        df = suite_table(runs, store)
        atomic_write_text(out, df.to_csv(index=False))
        atomic_write_text(out.with_suffix(".json"), df.to_json(orient="records", indent=2))
        if suite_spec is not None:
            atomic_write_json(store.root / "summaries" / f"{suite}.suite.json",
                              {"suite": to_dict(suite_spec), "runs": {r.run_id: r.label for r in runs}})
    store.write_index()
    return out


# --- jobs ------------------------------------------------------------------------------------
class RunJob(submitit.helpers.Checkpointable):
    """The function a job array runs: `RunJob()(run_spec_dict, store_root)`.

    Importable from the installed package (or the sweep's code snapshot), never from a test
    module. Re-running it is safe: complete runs are skipped and interrupted ones resume from
    the loop's checkpoints, so submitit's default `checkpoint()` (resubmit the same call) is a
    correct requeue."""

    def __init__(self, device: str | None = None, pipeline: Any = None):
        self.device = device
        self.pipeline = pipeline  # None: the real Pipeline (tests pass a picklable stand-in)

    def __call__(self, run_spec: Mapping[str, Any], store_root: str) -> dict:
        from onestep.environments.distributed import detect_env, distributed

        store = ResultsStore(store_root)
        spec = RunSpec.from_dict(dict(run_spec))
        if detect_env().world_size > 1:  # one task per GPU: every task trains, rank 0 records
            with distributed(self.device) as (env, device):
                state = _distributed_run(spec, store, self.pipeline or Pipeline(str(device)), env.rank)
        else:
            store.check_writable()
            state = execute_run(spec, store, self.pipeline or Pipeline(self.device), rerun_failed=True)
        run = store.run(spec.run_id)
        return {"run_id": run.run_id, "state": state, "final": run.final(), "code": str(source_root())}

    def checkpoint(self, *args, **kwargs):
        # The loop's periodic checkpoints are the resume state; requeue the same call.
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def _distributed_run(spec: RunSpec, store: ResultsStore, pipeline, rank: int) -> str:
    """Rank 0 decides (skip / run) and records; the other ranks follow its decision so no
    rank waits in a collective that the others never enter."""
    import torch.distributed as dist

    decision = [None]
    if rank == 0:
        try:
            store.check_writable()
            st = store.run(spec.run_id).state().state
            decision[0] = "skip:" + st if st in ("complete", "running") else "run"
        except StoreError as e:
            decision[0] = f"error:{e}"
    dist.broadcast_object_list(decision, src=0)
    verdict = decision[0]
    if verdict.startswith("error:"):
        raise StoreError(verdict[len("error:"):])
    if verdict.startswith("skip:"):
        return verdict[len("skip:"):]
    if rank == 0:
        return execute_run(spec, store, pipeline, rerun_failed=True)
    _run_stages(spec, store.run(spec.run_id), pipeline, log=lambda s: None, follower=True)
    return "follower"


def snapshot_code(dest: str | os.PathLike) -> Path:
    """Copy the running package's source into DEST/onestep/ (a regular package that shadows an
    editable install when DEST is first on PYTHONPATH) and record its git origin."""
    dest = Path(dest)
    root = source_root()
    pkg = dest / "onestep"
    if pkg.exists():
        shutil.rmtree(pkg)
    pkg.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for name in PACKAGE_FOLDERS:
        shutil.copytree(root / name, pkg / name, ignore=ignore)
    (pkg / "__init__.py").write_text('"""Code snapshot of onestep-bench taken at sweep submission."""\n')
    atomic_write_json(pkg / SNAPSHOT_FILE, {"git": git_info(root), "source": str(root), "time": time.time()})
    return dest


def submit_runs(
    runs: list[RunSpec],
    store_root: str | os.PathLike,
    profile,
    folder: str | os.PathLike,
    device: str | None = None,
    snapshot: bool = True,
    pipeline: Any = None,
) -> list[Any]:
    """Submit runs as one job array (non-blocking); returns the submitit jobs."""
    from onestep.environments.executors import load_profile, make_executor

    prof = load_profile(profile)
    folder = Path(folder)
    executor = make_executor(prof, folder / "logs")
    code = snapshot_code(folder / "code") if snapshot else None
    env_line = f"export PYTHONPATH={code}${{PYTHONPATH:+:$PYTHONPATH}}" if code else None
    if prof.executor == "slurm" and env_line:
        executor.update_parameters(slurm_setup=[*prof.setup, env_line])
    old = os.environ.get("PYTHONPATH")
    if code and prof.executor == "local":  # local jobs inherit the submitter's environment
        os.environ["PYTHONPATH"] = f"{code}{os.pathsep + old if old else ''}"
    try:
        job_fn = RunJob(device, pipeline)
        with executor.batch():
            jobs = [executor.submit(job_fn, spec.to_dict(), str(Path(store_root).resolve())) for spec in runs]
    finally:
        if code and prof.executor == "local":
            if old is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = old
    atomic_write_json(
        folder / "submission.json",
        {
            "profile": prof.name,
            "store": str(Path(store_root).resolve()),
            "code": str(code) if code else None,
            "jobs": [{"job_id": j.job_id, "run_id": s.run_id, "label": s.label} for j, s in zip(jobs, runs)],
        },
    )
    return jobs


__all__ = [
    "Pipeline", "TrainResult", "RunJob", "execute_run", "submit_runs", "snapshot_code", "provenance",
    "default_store_root", "metric_values", "StoreError", "SetupError", "resolve_device", "run_suite", "suite_table", "write_summary", "SuiteOutcome",
]
