"""The results store: a directory, one sub-directory per run, no server.

Layout (every file written atomically with onestep.methods.core.atomic):

    STORE/runs/<run_id>/config.json       resolved run config (run_id = hash of it)
                        provenance.json   git sha + dirty flag, packages, torch/CUDA, hardware,
                                          seeds, start time, host, job ids
                        status.json       current attempt: state running|failed, owner, heartbeat
                        metrics.jsonl     metric time series (periodic evaluation)
                        final.json        final metrics + end time; its existence = complete
                        error.json        traceback of the last failure
                        checkpoints/      the training loop's resume state and snapshots
                        samples.png       sample grid
    STORE/index.parquet, STORE/index.csv  aggregate, rebuilt from the run directories

Nothing is shared between runs: N processes (Slurm array tasks on a shared filesystem)
finishing runs at once only write inside their own run directory, and the index is an
aggregate recomputed from the run directories and renamed into place, so no writer can lose
another's result.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from onestep.methods.core.atomic import atomic_write, atomic_write_json, atomic_write_text
from onestep.methods.core.config import ConfigError
from onestep.methods.core.processes import pid_alive

# A run whose owner stopped updating its heartbeat for this long is considered dead (killed,
# node lost): its directory is resumable. Owners on the same host are checked by pid instead.
STALE_AFTER_S = 15 * 60

STATES = ("complete", "running", "failed", "interrupted", "pending")


class StoreError(RuntimeError):
    """The store directory cannot be used (read-only, not a directory, ...)."""


class RunBusy(RuntimeError):
    """Another live process owns this run."""


def _now() -> float:
    return time.time()


def _iso(t: float | None) -> str | None:
    return None if t is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:  # atomic writes make this rare: report, do not crash
        return {"_unreadable": f"{path.name}: {e}"}


def job_identity() -> dict[str, Any]:
    """Who is running this attempt: host, pid and (under Slurm) the job/array ids."""
    ident = {"host": socket.gethostname(), "pid": os.getpid()}
    for key in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT"):
        if os.environ.get(key):
            ident[key.lower()] = os.environ[key]
    return ident


def owner_alive(owner: Mapping[str, Any] | None, heartbeat: float | None, me: Mapping[str, Any] | None = None) -> bool:
    """Whether the process that wrote a 'running' status is still working on the run."""
    if not owner:
        return False
    me = me or job_identity()
    # A requeued Slurm job keeps its job id: the previous attempt is over by definition.
    if owner.get("slurm_job_id") and owner.get("slurm_job_id") == me.get("slurm_job_id"):
        return False
    if owner.get("host") == me.get("host") and owner.get("pid"):
        if owner.get("pid") == me.get("pid"):
            return False
        return pid_alive(int(owner["pid"]))
    return heartbeat is not None and _now() - float(heartbeat) < STALE_AFTER_S


@dataclass
class RunState:
    run_id: str
    state: str  # one of STATES
    detail: str = ""
    path: Path | None = None


class RunDir:
    """One run's directory and the only code that writes into it."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.run_id = self.path.name

    # --- paths -----------------------------------------------------------------------
    config_file = property(lambda self: self.path / "config.json")
    provenance_file = property(lambda self: self.path / "provenance.json")
    status_file = property(lambda self: self.path / "status.json")
    metrics_file = property(lambda self: self.path / "metrics.jsonl")
    final_file = property(lambda self: self.path / "final.json")
    error_file = property(lambda self: self.path / "error.json")
    checkpoint_dir = property(lambda self: self.path / "checkpoints")
    samples_file = property(lambda self: self.path / "samples.png")

    # --- reading -----------------------------------------------------------------------
    def config(self) -> dict | None:
        return _read_json(self.config_file)

    def final(self) -> dict | None:
        return _read_json(self.final_file)

    def status(self) -> dict | None:
        return _read_json(self.status_file)

    def metrics(self) -> list[dict]:
        try:
            lines = self.metrics_file.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]

    def is_complete(self) -> bool:
        return self.final_file.exists()

    def state(self) -> RunState:
        if self.final_file.exists():
            return RunState(self.run_id, "complete", path=self.path)
        status = self.status()
        if not status:
            return RunState(self.run_id, "pending", path=self.path)
        if status.get("state") == "failed":
            return RunState(self.run_id, "failed", status.get("error", ""), self.path)
        if status.get("state") == "running":
            if owner_alive(status.get("owner"), status.get("heartbeat")):
                prog = status.get("progress")
                return RunState(self.run_id, "running", f"{prog}" if prog else "", self.path)
            return RunState(self.run_id, "interrupted", f"owner gone; {self.resume_text()}", self.path)
        if status.get("state") == "interrupted":
            return RunState(self.run_id, "interrupted", f"{status.get('error') or 'interrupted'}; {self.resume_text()}",
                            self.path)
        return RunState(self.run_id, "pending", path=self.path)

    def resume_text(self) -> str:
        """What a re-run of this run will do: resume from the loop's checkpoint, or start over."""
        ckpt = self.checkpoint_dir / "resume.pt"
        return "resumes from its checkpoint" if ckpt.is_file() else "no checkpoint yet: a re-run starts at step 0"

    # --- writing -----------------------------------------------------------------------
    def write_config(self, config: Mapping[str, Any]) -> None:
        existing = self.config()
        if existing and existing.get("run_id") not in (None, config.get("run_id")):
            raise StoreError(f"{self.config_file} belongs to run {existing.get('run_id')}, not {config.get('run_id')}")
        atomic_write_json(self.config_file, dict(config))

    def claim(self, me: Mapping[str, Any] | None = None, force: bool = False) -> dict:
        """Mark this run as running for the calling process; RunBusy if a live owner has it."""
        me = dict(me or job_identity())
        status = self.status() or {}
        if not force and status.get("state") == "running" and owner_alive(status.get("owner"), status.get("heartbeat"), me):
            raise RunBusy(f"run {self.run_id} is being run by {status.get('owner')}")
        attempt = int(status.get("attempt", 0)) + 1
        new = {"state": "running", "owner": me, "attempt": attempt, "started": _now(), "heartbeat": _now()}
        atomic_write_json(self.status_file, new)
        return new

    def heartbeat(self, progress: str | None = None) -> None:
        status = self.status() or {}
        if status.get("state") != "running":
            return
        status["heartbeat"] = _now()
        if progress is not None:
            status["progress"] = progress
        atomic_write_json(self.status_file, status)

    def write_provenance(self, provenance: Mapping[str, Any]) -> None:
        atomic_write_json(self.provenance_file, dict(provenance))

    def append_metrics(self, record: Mapping[str, Any], replace_same: tuple[str, ...] = ("kind", "kimg")) -> None:
        """Add one record to the time series. The file is rewritten atomically (readers never
        see half a line); a record equal to an old one on `replace_same` (a point a resumed run
        recomputes) replaces it instead of duplicating it."""
        record = dict(record)
        keep = [r for r in self.metrics() if not all(r.get(k) == record.get(k) for k in replace_same)] if replace_same else self.metrics()
        atomic_write_text(self.metrics_file, "".join(json.dumps(r, sort_keys=True, default=float) + "\n" for r in keep + [record]))

    def write_final(self, final: Mapping[str, Any]) -> None:
        """Record completion: the final record is written last, after everything it refers to."""
        atomic_write_json(self.final_file, dict(final))
        status = self.status() or {}
        status.update(state="complete", heartbeat=_now())
        atomic_write_json(self.status_file, status)
        try:
            self.error_file.unlink()
        except FileNotFoundError:
            pass

    def write_failure(self, error: str, traceback_text: str) -> None:
        atomic_write_json(self.error_file, {"error": error, "traceback": traceback_text, "time": _iso(_now())})
        status = self.status() or {}
        status.update(state="failed", error=error, heartbeat=_now())
        atomic_write_json(self.status_file, status)

    def write_interrupted(self, why: str = "interrupted (ctrl-C)") -> None:
        """Record that this process stopped the run (not a failure: the next run resumes it)."""
        status = self.status() or {}
        status.update(state="interrupted", error=why, heartbeat=_now())
        atomic_write_json(self.status_file, status)

    def write_bytes(self, name: str, data: bytes) -> Path:
        return atomic_write(self.path / name, lambda f: f.write(data))

    def wipe(self) -> None:
        """Remove everything of a run (for --force)."""
        shutil.rmtree(self.path, ignore_errors=True)


class ResultsStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser()

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def check_writable(self) -> None:
        """Raise StoreError (before any work starts) unless runs can be recorded here."""
        root = self.root
        probe_base = root
        while not probe_base.exists():
            if probe_base.parent == probe_base:
                break
            probe_base = probe_base.parent
        if probe_base.exists() and not probe_base.is_dir():
            raise StoreError(f"results store {root} is not a directory ({probe_base} is a file); pass --store DIR")
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            probe = atomic_write_text(self.runs_dir / f".write-probe-{os.getpid()}", "ok")
            probe.unlink()
        except OSError as e:
            raise StoreError(
                f"results store {root} is not writable ({e.strerror or e}); fix its permissions or pass --store DIR "
                f"pointing to a writable directory"
            ) from None

    def run(self, run_id: str) -> RunDir:
        if not run_id or "/" in run_id or run_id.startswith("."):
            raise ConfigError(f"invalid run id {run_id!r}")
        return RunDir(self.runs_dir / run_id)

    def run_ids(self) -> list[str]:
        if not self.runs_dir.is_dir():
            return []
        return sorted(p.name for p in self.runs_dir.iterdir() if p.is_dir() and not p.name.startswith("."))

    def states(self, run_ids: Iterable[str] | None = None) -> list[RunState]:
        ids = self.run_ids() if run_ids is None else list(run_ids)
        return [self.run(i).state() for i in ids]

    # --- index -------------------------------------------------------------------------
    def index_rows(self) -> list[dict]:
        return [index_row(self.run(i)) for i in self.run_ids()]

    def build_index(self):
        import pandas as pd

        rows = self.index_rows()
        df = pd.DataFrame(rows)
        if not df.empty:
            df = df.sort_values(["suite", "label", "run_id"], na_position="last").reset_index(drop=True)
        return df

    def fingerprint(self) -> tuple:
        """What the index depends on: every run directory's state files (name, size, mtime)."""
        out = []
        for rid in self.run_ids():
            for name in ("config.json", "status.json", "final.json", "provenance.json"):
                try:
                    st = (self.runs_dir / rid / name).stat()
                except OSError:
                    continue
                out.append((rid, name, st.st_size, st.st_mtime_ns))
        return tuple(out)

    @contextlib.contextmanager
    def locked(self, name: str = ".index.lock"):
        """An exclusive advisory lock on STORE/NAME (flock; a no-op where the filesystem has none).
        Aggregates (index, summaries) are written under it, so a slow writer holding an older
        view can never rename its file over a newer one."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / name, "a") as f:
            try:
                import fcntl

                fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            except (ImportError, OSError):  # no flock here: the rebuild-until-stable loop still holds
                pass
            yield

    def write_index(self) -> tuple[Path, Path]:
        """index.parquet + index.csv from the run directories, under the store lock and rebuilt
        until no run directory changed while it was built: the last writer's index holds every
        run complete at that time (atomic renames: a reader never sees half a file)."""
        with self.locked():
            for _ in range(10):
                before = self.fingerprint()
                paths = self._write_index_once()
                if self.fingerprint() == before:
                    break
        return paths

    def _write_index_once(self) -> tuple[Path, Path]:
        df = self.build_index()
        parquet, csv = self.root / "index.parquet", self.root / "index.csv"
        # Mixed-type object columns (e.g. a config key that is a list in one run) break parquet.
        for col in df.columns:
            if df[col].dtype == object:
                df[col] = df[col].map(lambda v: v if v is None or isinstance(v, str) else json.dumps(v, default=str))
        atomic_write(parquet, lambda f: df.to_parquet(f, index=False))
        atomic_write_text(csv, df.to_csv(index=False))
        return parquet, csv


def _flatten(prefix: str, obj: Any, out: dict) -> None:
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = obj


def index_row(run: RunDir) -> dict:
    """One flat row per run; partial, failed and unreadable runs still get a row."""
    state = run.state()
    row: dict[str, Any] = {"run_id": run.run_id, "state": state.state, "detail": state.detail}
    config = run.config() or {}
    row.update(
        suite=config.get("suite"),
        label=config.get("label"),
        method=config.get("method"),
        preset=config.get("preset"),
    )
    for key in ("method_config", "loop_config"):
        flat: dict = {}
        _flatten("", config.get(key) or {}, flat)
        prefix = "method." if key == "method_config" else "loop."
        row.update({prefix + k: v for k, v in flat.items()})
    for k, v in (config.get("sweep_point") or {}).items():
        row[f"sweep.{k}"] = v
    prov = _read_json(run.provenance_file) or {}
    row.update(git_sha=(prov.get("git") or {}).get("sha"), started=prov.get("started"))
    final = run.final() or {}
    row["ended"] = final.get("ended")
    row["duration_s"] = final.get("duration_s")
    for k, v in (final.get("metrics") or {}).items():
        if isinstance(v, (int, float)) or v is None:
            row[f"metric.{k}"] = v
    if "_unreadable" in config or "_unreadable" in final:
        row["detail"] = (config.get("_unreadable") or final.get("_unreadable"))
    return row
