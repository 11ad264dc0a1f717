"""Suites: YAML files that expand into runs.

A suite names a teacher, a dataset and reference, method presets with overrides, an
evaluation protocol, resources, sweep axes (a grid over any method or loop config key) and the
published numbers it reproduces. Everything is checked before anything runs: the schema is a
set of dataclasses built with `build_config`, so a typo gets the closest valid key.

    name: smoke
    teacher: digits                 # teacher preset name or checkpoint path
    dataset: {name: digits, resolution: 8}
    methods: all                    # every registered method that has `preset`
    preset: smoke
    evaluation: {metrics: [fd_digits], n_samples: 1000, seeds: "0-999"}
    resources: {profile: local, gpus: 0}
    sweep: {method.gamma_r1: [1.0e-3, 1.0e-4]}
    published: [{label: GDD, ref: gdd/3a/GDD}]   # cells of benchmarks/paper_tables/
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from onestep.methods.core.config import ConfigError, build_config, config_hash, suggest, to_dict

SUITE_DIR = Path(__file__).parent / "suites"
SCHEMA_VERSION = 1  # part of every run's hash: bump when a run's meaning changes


@dataclass
class DatasetSpec:
    name: str = "digits"
    resolution: int = 8
    channels: int = 1
    conditional: bool = True
    path: str | None = None  # image folder / zip for datasets not embedded (CIFAR-10, ...)
    reference: str = "train"  # what metrics compare against: train | test | all | path to stats (.npz)


@dataclass
class MethodEntry:
    method: str = ""
    preset: str | None = None  # None: the suite's default preset
    label: str | None = None  # how the run is named in tables; defaults to method[-preset]
    method_overrides: dict[str, Any] = field(default_factory=dict)  # Config fields
    loop_overrides: dict[str, Any] = field(default_factory=dict)  # LoopConfig fields
    sweep: dict[str, list] = field(default_factory=dict)  # per-entry axes, added to the suite's


@dataclass
class EvaluationSpec:
    metrics: list[str] = field(default_factory=lambda: ["fd_digits"])
    n_samples: int = 1000
    seeds: str = "0-999"
    repeats: int = 1  # independent sample sets (seed offset n_samples * r)
    batch_size: int = 250
    every_kimg: float | None = None  # periodic evaluation during training (None: loop default)
    periodic_n_samples: int | None = None  # smaller n for the periodic curve
    periodic_metrics: list[str] | None = None  # default: the first metric
    keep_best: bool = True  # keep the snapshot with the best periodic value of the first metric
    grid_samples: int = 64
    data_floor: bool = False  # also score real vs disjoint real at the same n, shown beside the value
    # 'final': the last snapshot; 'best_snapshot': also the best first metric at n_samples over the
    # periodic snapshots (GDD/D2O README: "checkpoints are with lowest FID"), reported beside it.
    protocol: str = "final"


@dataclass
class ResourceSpec:
    profile: str = "local"
    gpus: int = 0  # GPUs one run needs (the papers: 8)
    batch_size: int | None = None  # global batch the papers used, checked against loop config


@dataclass
class PublishedEntry:
    """A published number the suite reproduces, named by a selector into the papers' tables
    (benchmarks/paper_tables/, the one copy of every published number):

        - {label: GDD, ref: gdd/3a/GDD}                        # every metric the suite evaluates
        - {label: GDD-I, ref: d2o/11/cifar10/D2O-F, metric: clip_fid}
        - {label: no-aug, ref: gdd/1b/no-aug-r1=1e-3, where: {method.r1_gamma: 1.0e-3}}

    `ref` is paper/table/row (paper keys: gdd d2o sida dmd sfd; row ids are the `row` column of
    benchmarks/paper_tables/<paper>.csv; `alpha` may be written for `α`, e.g. sida/1/SiDA (alpha=1.0)). List them: python -m onestep.benchmarks.paper_tables [TABLE]. The suite's dataset (name, resolution, conditional)
    picks the cells of that row it can reproduce; `metric` / `nfe` narrow further."""

    ref: str = ""
    label: str | None = None  # which method entry it belongs to
    where: dict[str, Any] = field(default_factory=dict)  # sweep point it belongs to
    metric: Any = None  # a metric key or a list; default: those of evaluation.metrics the row has
    nfe: int | None = None
    note: str = ""
    # The retired inline form (a second copy of the number): accepted by the schema only so the
    # error can name the cell to reference instead.
    paper: str = ""
    table: str = ""
    row: str = ""
    value: float | None = None


@dataclass
class SuiteSpec:
    name: str = ""
    description: str = ""
    teacher: str | None = None
    dataset: DatasetSpec = field(default_factory=DatasetSpec)
    methods: Any = "all"  # "all" or a list of MethodEntry mappings
    preset: str = "smoke"
    # With methods: all, another preset for some methods, e.g. {d2o: smoke-f} (D2O-F, freezing).
    method_presets: dict[str, str] = field(default_factory=dict)
    seed: int = 0
    evaluation: EvaluationSpec = field(default_factory=EvaluationSpec)
    resources: ResourceSpec = field(default_factory=ResourceSpec)
    sweep: dict[str, list] = field(default_factory=dict)
    published: list[PublishedEntry] = field(default_factory=list)
    path: str | None = None


@dataclass
class RunSpec:
    """One run, fully resolved. `run_id` is the hash of `identity()`."""

    suite: str
    label: str
    method: str
    preset: str
    method_config: dict
    loop_config: dict
    teacher: str | None
    dataset: dict
    evaluation: dict
    seed: int
    sweep_point: dict = field(default_factory=dict)
    resources: dict = field(default_factory=dict)

    def identity(self) -> dict:
        # Suite name, label and resources do not change what a run computes: two suites asking
        # for the same run share its directory.
        return {
            "schema": SCHEMA_VERSION,
            "method": self.method,
            "method_config": self.method_config,
            "loop_config": self.loop_config,
            "teacher": self.teacher,
            "dataset": self.dataset,
            "evaluation": self.evaluation,
            "seed": self.seed,
        }

    @property
    def run_id(self) -> str:
        return f"{self.method}-{config_hash(self.identity(), 12)}"

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["run_id"] = self.run_id
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RunSpec":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: copy.deepcopy(v) for k, v in d.items() if k in names})


# --- loading -----------------------------------------------------------------------------
def available_suites() -> list[str]:
    return sorted(p.stem for p in SUITE_DIR.glob("*.yaml"))


def suite_path(name_or_path: str | os.PathLike) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.exists():
            raise ConfigError(f"suite file {path} does not exist")
        return path
    candidate = SUITE_DIR / f"{name_or_path}.yaml"
    if not candidate.exists():
        names = available_suites()
        raise ConfigError(f"unknown suite '{name_or_path}'{suggest(str(name_or_path), names)}; available: {', '.join(names)}")
    return candidate


def load_suite(name_or_path: str | os.PathLike | dict) -> SuiteSpec:
    if isinstance(name_or_path, SuiteSpec):
        return name_or_path
    if isinstance(name_or_path, dict):
        data, where, path = dict(name_or_path), "suite", None
    else:
        path = suite_path(name_or_path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"suite {path} is not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"suite {path}: expected a mapping at the top level, got {type(data).__name__}")
        data.setdefault("name", path.stem)
        where = f"suite {path}"
    suite = build_config(SuiteSpec, data, where=where)
    suite.path = str(path) if path else None
    if suite.methods != "all":
        if not isinstance(suite.methods, list):
            raise ConfigError(f"{where}: `methods` must be 'all' or a list of entries, got {suite.methods!r}")
        suite.methods = [
            build_config(MethodEntry, {"method": m} if isinstance(m, str) else m, where=f"{where}.methods[{i}]")
            for i, m in enumerate(suite.methods)
        ]
    for axes, w in [(suite.sweep, "sweep")] + [
        (m.sweep, f"methods[{i}].sweep") for i, m in enumerate(suite.methods if isinstance(suite.methods, list) else [])
    ]:
        for key, values in axes.items():
            if not isinstance(values, list) or not values:
                raise ConfigError(f"{where}.{w}: axis '{key}' needs a non-empty list of values, got {values!r}")
    return suite


# --- expansion ---------------------------------------------------------------------------
def loop_config_class():
    """The training loop's LoopConfig (None while the loop is not installed)."""
    try:
        from onestep.benchmarks.training import LoopConfig
    except ImportError:
        return None
    return LoopConfig


def method_entries(suite: SuiteSpec, only: list[str] | None = None) -> list[MethodEntry]:
    from onestep.methods.plugin import available_methods, get_method

    if suite.methods == "all":
        registered = available_methods()
        for name in suite.method_presets:
            if name not in registered:
                raise ConfigError(f"suite {suite.name}: method_presets names unknown method '{name}'"
                                  f"{suggest(name, registered)}; registered: {', '.join(sorted(registered))}")
        entries = []
        for name, cls in registered.items():
            preset = suite.method_presets.get(name, suite.preset)
            if preset in cls.presets:
                entries.append(MethodEntry(method=name, preset=preset))
            elif name in suite.method_presets:
                raise ConfigError(f"suite {suite.name}: method '{name}' has no preset '{preset}'"
                                  f"{suggest(preset, cls.presets)}; presets: {', '.join(sorted(cls.presets))}")
    else:
        entries = list(suite.methods)
        for e in entries:
            get_method(e.method)  # unknown method: ConfigError with a suggestion
    if only:
        names = {e.method for e in entries}
        for m in only:
            if m not in names:
                raise ConfigError(f"--method {m}: not in suite '{suite.name}'{suggest(m, names)}; it has {', '.join(sorted(names)) or 'no methods'}")
        entries = [e for e in entries if e.method in only]
    return entries


def _split_axis(key: str) -> tuple[str, str]:
    section, _, name = key.partition(".")
    if section not in ("method", "loop") or not name:
        raise ConfigError(f"sweep axis '{key}' must be 'method.<Config field>' or 'loop.<LoopConfig field>'")
    return section, name


def _check_field(cls, name: str, where: str) -> None:
    fields = {f.name for f in dataclasses.fields(cls)}
    head = name.split(".")[0]
    if head not in fields:
        raise ConfigError(f"{where}: '{name}' is not a field of {cls.__name__}{suggest(head, fields)}; fields: {', '.join(sorted(fields))}")


def _loop_from_suite(suite: SuiteSpec, LoopConfig) -> dict[str, Any]:
    """Loop settings the suite decides: the run seed and the periodic evaluation (interval and
    the metric whose best snapshot is kept)."""
    fields = {f.name for f in dataclasses.fields(LoopConfig)}
    ev = suite.evaluation
    upd: dict[str, Any] = {"seed": suite.seed}
    if ev.every_kimg is not None:
        upd["eval_kimg"] = ev.every_kimg
        if ev.keep_best:
            upd["best_metric"] = (ev.periodic_metrics or ev.metrics)[0]
            upd["best_mode"] = "max" if _higher_is_better(upd["best_metric"]) else "min"
    return {k: v for k, v in upd.items() if k in fields}


def _higher_is_better(metric: str) -> bool:
    from .gate import better_direction

    try:
        return better_direction(metric) == "higher"
    except ConfigError:
        return False


def expand_runs(suite: SuiteSpec, only_methods: list[str] | None = None) -> list[RunSpec]:
    """Every run of the suite: method entries x the grid of sweep axes. Raises ConfigError on
    an unknown method, preset, override key or sweep axis."""
    from onestep.methods.core.config import override
    from onestep.methods.plugin import get_method, resolve_preset

    LoopConfig = loop_config_class()
    if LoopConfig is None:
        raise ConfigError("the training loop (onestep.benchmarks.training.LoopConfig) is not installed; runs cannot be resolved")
    runs: list[RunSpec] = []
    for entry in method_entries(suite, only_methods):
        cls = get_method(entry.method)
        preset_name = entry.preset or suite.preset
        preset = resolve_preset(cls, preset_name)
        where = f"suite {suite.name}: {entry.method}/{preset_name}"
        axes = {**suite.sweep, **entry.sweep}
        for key in axes:
            section, name = _split_axis(key)
            _check_field(cls.Config if section == "method" else LoopConfig, name, f"{where} sweep axis '{key}'")
        base_method = build_config(cls.Config, {**preset.get("method", {})}, where=f"{where} preset")
        base_method = override(base_method, entry.method_overrides, where=f"{where} method_overrides")
        base_loop = build_config(LoopConfig, {**preset.get("loop", {})}, where=f"{where} preset loop")
        base_loop = override(base_loop, entry.loop_overrides, where=f"{where} loop_overrides")
        base_loop = override(base_loop, _loop_from_suite(suite, LoopConfig), where=f"{where} evaluation")
        keys = list(axes)
        for values in itertools.product(*(axes[k] for k in keys)) if keys else [()]:
            point = dict(zip(keys, values))
            m_upd = {_split_axis(k)[1]: v for k, v in point.items() if k.startswith("method.")}
            l_upd = {_split_axis(k)[1]: v for k, v in point.items() if k.startswith("loop.")}
            mcfg = override(base_method, m_upd, where=f"{where} sweep") if m_upd else base_method
            lcfg = override(base_loop, l_upd, where=f"{where} sweep") if l_upd else base_loop
            label = entry.label or (entry.method if preset_name == suite.preset else f"{entry.method}-{preset_name}")
            if point:
                label += "[" + ",".join(f"{k.split('.', 1)[1]}={v}" for k, v in point.items()) + "]"
            runs.append(
                RunSpec(
                    suite=suite.name,
                    label=label,
                    method=entry.method,
                    preset=preset_name,
                    method_config=to_dict(mcfg),
                    loop_config=to_dict(lcfg),
                    teacher=suite.teacher if cls.needs_teacher else None,
                    dataset=to_dict(suite.dataset),
                    evaluation=to_dict(suite.evaluation),
                    seed=suite.seed,
                    sweep_point=point,
                    resources=to_dict(suite.resources),
                )
            )
    ids = [r.run_id for r in runs]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise ConfigError(f"suite {suite.name}: several entries resolve to the same run(s) {sorted(dup)}; remove the duplicates")
    return runs


# --- validation --------------------------------------------------------------------------
def _teacher_problem(teacher: str | None) -> str | None:
    """Why the teacher cannot be loaded, without loading (or downloading) it; None if fine."""
    if not teacher:
        return None
    if any(teacher.endswith(ext) for ext in (".pkl", ".safetensors", ".pt", ".pth")) or os.sep in teacher:
        return None if Path(teacher).expanduser().exists() else f"teacher checkpoint {teacher} does not exist"
    from onestep.methods import zoo

    try:
        from onestep.benchmarks import teachers
        trained_here = set(getattr(teachers, "TEACHERS", None) or getattr(teachers, "PRESETS", None) or ["digits"])
    except ImportError:
        trained_here = {"digits"}
    if teacher in trained_here:
        return None  # trained by the suite itself and cached
    if teacher in zoo.PRESETS:
        if not zoo.PRESETS[teacher].checkpoint:
            return None
        from onestep.methods.checkpoints import CheckpointError, locate_checkpoint

        try:
            locate_checkpoint(teacher, download=False)
        except CheckpointError as e:
            return f"teacher weights missing: {e}"
        return None
    known = sorted(trained_here | set(zoo.PRESETS))
    return f"unknown teacher '{teacher}'{suggest(teacher, known)}; give a checkpoint path or one of: {', '.join(known)}"


# Which feature-network weights each published metric needs (onestep.benchmarks.metrics.weights).
METRIC_WEIGHTS = {
    "fid": "inception-v3-compat", "isc": "inception-v3-compat", "kid": "inception-v3-compat",
    "prc": "vgg16", "clip_fid": "clip-vit-b-32", "fd_dinov2": "dinov2-vitl14",
}


def _metric_name_problems(metrics: list[str], where: str) -> list[str]:
    try:
        from onestep.benchmarks.metrics.protocols import metric_spec
    except ImportError:
        return []
    problems = []
    for m in metrics:
        try:
            metric_spec(m)
        except ValueError as e:
            problems.append(f"{where}: {e}")
    return problems


def _metric_weight_problems(metrics: list[str]) -> list[str]:
    try:
        from onestep.benchmarks.metrics.weights import locate_weights
    except ImportError:
        return []
    problems = []
    for key in sorted({METRIC_WEIGHTS[m] for m in metrics if m in METRIC_WEIGHTS}):
        try:
            locate_weights(key, download=False)
        except (FileNotFoundError, ValueError) as e:
            problems.append(f"metric weights missing: {e}")
    return problems


def setup_problems(suite: SuiteSpec) -> list[str]:
    """Problems a run would otherwise find only after training (checked by `run` and
    `validate` before any work): fewer evaluation seeds than n_samples."""
    from .sampling import parse_seeds

    ev = suite.evaluation
    try:
        n_seeds = len(parse_seeds(ev.seeds))
    except ValueError as e:
        return [f"suite {suite.name}: evaluation.seeds: {e}"]
    if n_seeds < ev.n_samples:
        return [f"suite {suite.name}: evaluation.seeds '{ev.seeds}' gives {n_seeds} seeds but n_samples is "
                f"{ev.n_samples}; give at least n_samples seeds (e.g. seeds: \"0-{ev.n_samples - 1}\")"]
    return []


def validate_suite(suite: SuiteSpec, check_files: bool = True, profile: str | None = None) -> tuple[list[RunSpec], list[str], list[str]]:
    """(runs, errors, warnings) without running anything."""
    errors: list[str] = []
    warnings: list[str] = []
    runs: list[RunSpec] = []
    try:
        runs = expand_runs(suite)
    except ConfigError as e:
        errors.append(str(e))
    if suite.methods == "all" and not errors and not runs:
        errors.append(f"suite {suite.name}: no registered method has a '{suite.preset}' preset")
    ev = suite.evaluation
    errors.extend(_metric_name_problems(ev.metrics, "evaluation.metrics"))
    errors.extend(_metric_name_problems(ev.periodic_metrics or [], "evaluation.periodic_metrics"))
    if ev.protocol not in ("final", "best_snapshot"):
        errors.append(f"evaluation.protocol {ev.protocol!r}: choose 'final' or 'best_snapshot'")
    elif ev.protocol == "best_snapshot" and ev.every_kimg is None:
        errors.append("evaluation.protocol best_snapshot needs evaluation.every_kimg (the snapshots to choose from)")
    if ev.n_samples <= 0 or ev.repeats <= 0:
        errors.append(f"evaluation: n_samples ({ev.n_samples}) and repeats ({ev.repeats}) must be positive")
    else:
        errors.extend(setup_problems(suite))
    if check_files:
        problem = _teacher_problem(suite.teacher)
        if problem:
            errors.append(problem)
        ds = suite.dataset
        if ds.name != "digits":
            from onestep.benchmarks.datasets import dataset_path_problem

            problem = dataset_path_problem(ds.name, ds.path, ds.resolution)
            if problem:
                errors.append(problem)
        errors.extend(_metric_weight_problems(suite.evaluation.metrics))
        from .preflight import class_embedding_problems, method_weight_problems

        errors.extend(method_weight_problems(runs))  # discriminators' feature networks
        emb_errors, emb_warnings = class_embedding_problems(runs, bool(ds.conditional))
        errors.extend(emb_errors)
        warnings.extend(emb_warnings)
        ref = ds.reference
        if ref not in ("train", "test", "all") and not Path(ref).expanduser().exists():
            errors.append(f"reference statistics {ref} do not exist")
    prof_name = profile or suite.resources.profile
    try:
        from onestep.environments.executors import load_profile

        prof = load_profile(prof_name)
        gpus = prof.gpus_per_node * prof.nodes
        if suite.resources.gpus > gpus:
            from onestep.environments.executors import profiles_with_gpus

            fits = profiles_with_gpus(suite.resources.gpus)
            errors.append(
                f"suite {suite.name} asks for {suite.resources.gpus} GPU(s) per run but profile '{prof.name}' gives "
                f"{gpus}; " + (f"use --profile with one that does: {', '.join(fits)} (Slurm profiles submit from the "
                               f"cluster's login node)" if fits else
                               f"write a profile with gpus_per_node >= {suite.resources.gpus} (environments/profiles/)")
            )
    except ConfigError as e:
        errors.append(str(e))
    if suite.resources.batch_size:
        for r in runs:
            b = r.loop_config.get("batch_size")
            if b is not None and b != suite.resources.batch_size:
                warnings.append(f"{r.label}: loop batch_size {b} differs from the paper's {suite.resources.batch_size}")
    labels = {r.label.split("[")[0] for r in runs}
    try:
        entries = published_entries(suite)
    except ConfigError as e:
        errors.append(str(e))
        entries = []
    for p in entries:
        if p["label"] and runs and p["label"] not in labels:
            errors.append(f"published entry {p['ref']}: label '{p['label']}' matches no run{suggest(p['label'], labels)}")
    return runs, errors, warnings


# --- published numbers -------------------------------------------------------------------
def computed_metrics(suite: SuiteSpec) -> set[str]:
    """Metric keys a run of the suite records (prc records precision and recall)."""
    ms = set(suite.evaluation.metrics)
    return ms | ({"precision", "recall"} if "prc" in ms else set())


def _retired_inline_error(where: str, p: PublishedEntry) -> ConfigError:
    from onestep.benchmarks.paper_tables import find_by_value

    hint = ""
    if p.value is not None:
        cells = find_by_value(p.value, p.metric if isinstance(p.metric, str) else None)
        if cells:
            hint = "; cells printing that value: " + ", ".join(
                f"ref: {c.ref}" + (f" (nfe {c.nfe})" if c.nfe not in (None, 1) else "") + f" [{c.metric}, {c.dataset}]" for c in cells[:6])
    return ConfigError(f"{where}: published numbers are no longer written inline (paper/table/row/value); name the "
                       f"paper-table cell instead, e.g. {{label: {p.label or 'LABEL'}, ref: gdd/3a/GDD}} "
                       f"(cells: benchmarks/paper_tables/*.csv){hint}")


def published_entries(suite: SuiteSpec) -> list[dict[str, Any]]:
    """The suite's published entries resolved into paper-table cells: one dict per (entry,
    metric) with the number, its paper (by title), table, protocol and notes. Raises
    ConfigError on a selector that names no cell, or several cells for one metric."""
    from onestep.benchmarks.paper_tables import PaperTableError, load, select

    data = load()
    ds = suite.dataset
    computed = computed_metrics(suite)
    out: list[dict[str, Any]] = []
    for i, p in enumerate(suite.published):
        where = f"suite {suite.name}: published[{i}]"
        if not p.ref:
            raise _retired_inline_error(where, p)
        if p.value is not None or p.paper or p.table or p.row:
            raise ConfigError(f"{where}: give only ref (and label, where, metric, nfe, note); the number, paper, table "
                              f"and row come from the paper-table data")
        wanted = p.metric if p.metric is not None else None
        if isinstance(wanted, str):
            wanted = [wanted]
        if wanted is not None:
            for m in wanted:
                if m not in computed:
                    raise ConfigError(f"{where} ({p.ref}): metric '{m}' is not in evaluation.metrics{suggest(m, computed)}")
        try:
            cells = select(p.ref, metric=wanted, nfe=p.nfe, dataset=ds.name, resolution=ds.resolution,
                           conditional=ds.conditional, data=data)
        except PaperTableError as e:
            raise ConfigError(f"{where}: {e}") from None
        if wanted is None:
            cells = [c for c in cells if c.metric in computed]
            if not cells:
                raise ConfigError(f"{where} ({p.ref}): the row's metrics are not among evaluation.metrics "
                                  f"({', '.join(sorted(computed))}); add metric: or the metric to the evaluation")
        by_metric: dict[str, list] = {}
        for c in cells:
            by_metric.setdefault(c.metric, []).append(c)
        for metric, cs in by_metric.items():
            if len(cs) > 1:
                raise ConfigError(f"{where} ({p.ref}): {len(cs)} cells for {metric} (nfe {sorted({c.nfe for c in cs}, key=str)}, "
                                  f"datasets {sorted({str(c.dataset) for c in cs})}); add nfe: to pick one")
            c = cs[0]
            paper = data.papers[c.paper]
            table = data.tables[f"{c.paper}/{c.table}"]
            out.append({
                "ref": p.ref, "cell": c.key, "label": p.label, "where": dict(p.where), "metric": metric,
                "value": c.value, "value_text": c.display, "pm": c.pm, "paper": paper.title, "paper_key": c.paper,
                "paper_number": paper.number, "arxiv": paper.arxiv, "venue": paper.venue, "table": table.label,
                "row": c.printed if c.printed and " | " not in c.printed else f"{c.method}: {c.row}", "method": c.method, "nfe": c.nfe, "n": c.n, "best_of": c.best_of,
                "mean_of": c.mean_of, "training_images": c.training_images,
                "note": "; ".join(x for x in (c.note, p.note) if x),
            })
    return out
