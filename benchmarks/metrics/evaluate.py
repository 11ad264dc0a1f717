"""One call evaluates a generator or an image set against a reference, for a list of metrics.

Images are generated once (benchmarks.sampling.iter_generated, per-seed noise, EDM's uint8
quantization; never written to disk) and every batch goes to every extractor the requested
metrics need. The reference is a dataset (statistics cached), a statistics file (ours, EDM's
or ADM's), or another generator / image set (then FD is rel-FID: the distance between two
generators). Each result is a MetricRecord with its n, extractor identity (incl. untrained),
reference identity and, on request, the data floor: the same metric between two disjoint real
sets at the same n.
"""
from __future__ import annotations

import csv
import io
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import torch

from onestep.benchmarks import sampling
from onestep.benchmarks.datasets import ArrayImageDataset

from .extractors.base import FeatureExtractor
from .extractors.registry import build_extractor
from .frechet import display_value, frechet_distance_stats
from .isc import inception_score
from .kid import NotEnoughSamplesError, kernel_inception_distance
from .prc import precision_recall
from .protocols import LOWER_IS_BETTER, MetricSpec, aggregate_values, parse_metrics
from .reference import Reference, compute_reference, dataset_batches, extract_features, import_adm_reference_batch, \
    load_reference_file
from .statistics import FeatureNeeds

GENERATOR_SUFFIXES = (".pkl", ".safetensors", ".pt", ".pth", ".json")  # load_generator checkpoints
DEFAULT_NUM_SAMPLES = 50_000  # papers' protocol: 50k images, seeds 0-49999


@dataclass
class MetricRecord:
    metric: str  # display name, e.g. "FD-digits", "precision-digits", "rel-FID"
    value: float  # what to show (FD/KID clamped at 0)
    raw: float  # as computed
    n: int  # evaluated samples
    extractor: dict
    reference: dict | None
    untrained: bool
    std: float | None = None  # KID/IS: over subsets/splits; protocols: over runs
    floor: float | None = None  # same metric, real vs disjoint real, at floor_n
    floor_n: int | None = None
    floor_note: str | None = None
    runs: list[float] | None = None
    aggregate: str | None = None  # protocols: "mean_std" or "best" over `runs`
    seeds: str | None = None
    lower_is_better: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    def format(self) -> str:
        s = f"{self.metric} {self.value:.4g}"
        if self.std is not None:
            s += f" ± {self.std:.2g}"
        s += f" (n={self.n}"
        if self.runs and len(self.runs) > 1:
            s += f" x {len(self.runs)} runs, " + ("best" if self.aggregate == "best" else "mean ± std")
        if self.floor is not None:
            s += f"; real-vs-real floor {self.floor:.4g} at n={self.floor_n}"
            if self.floor_n != self.n and self.floor_note:
                s += f" ({self.floor_note})"
        elif self.floor_note:
            s += f"; floor: {self.floor_note}"
        s += ")"
        return s + (" [UNTRAINED feature network: not a real measurement]" if self.untrained else "")


@dataclass
class EvalResult:
    records: list[MetricRecord] = field(default_factory=list)

    def __getitem__(self, metric: str) -> MetricRecord:
        for r in self.records:
            if r.metric == metric:
                return r
        raise KeyError(f"no result '{metric}'; have {[r.metric for r in self.records]}")

    def to_dicts(self) -> list[dict]:
        return [r.to_dict() for r in self.records]

    def to_json(self) -> str:
        return json.dumps(self.to_dicts(), indent=2, default=str)

    def to_csv(self) -> str:
        cols = ["metric", "value", "std", "raw", "n", "floor", "floor_n", "untrained", "extractor", "reference"]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for d in self.to_dicts():
            d["extractor"] = (d["extractor"] or {}).get("name")
            d["reference"] = (d["reference"] or {}).get("name")
            w.writerow(d)
        return buf.getvalue()

    def table(self) -> str:
        return "\n".join(r.format() for r in self.records)


@dataclass
class MetricOptions:
    kid_subsets: int = 100  # torch-fidelity defaults
    kid_subset_size: int = 1000
    isc_splits: int = 10
    prc_k: int = 3
    prc_batch_size: int = 1000


from onestep.benchmarks.progress import Progress  # noqa: E402  (one progress display everywhere)


# ---- sources and references ------------------------------------------------------------------
def _is_generator(obj) -> bool:
    return isinstance(obj, torch.nn.Module) and hasattr(obj, "img_resolution")


def _resolve(obj, device, what: str):
    """-> ('generator', module) | ('images', ArrayImageDataset) | ('stats', Reference)."""
    if isinstance(obj, Reference):
        return "stats", obj
    if isinstance(obj, ArrayImageDataset):
        return "images", obj
    if isinstance(obj, torch.Tensor):
        return "images", ArrayImageDataset(obj, name=f"{what}-tensor")
    if isinstance(obj, torch.nn.Module):
        missing = [a for a in ("img_resolution", "img_channels", "label_dim") if not hasattr(obj, a)]
        if missing:
            # without label_dim a conditional generator would silently get no class labels
            raise TypeError(f"{what}: a generator module needs attributes img_resolution, img_channels and label_dim "
                            f"(missing {missing}; label_dim = number of classes, 0 if unconditional); wrap the "
                            "network as a Generator (onestep.methods.solvers.as_generator)")
        return "generator", obj
    if isinstance(obj, (str, os.PathLike)):
        path = Path(obj)
        if path.suffix.lower() in GENERATOR_SUFFIXES:
            from onestep.methods.solvers import load_generator

            return "generator", load_generator(path, device=device).eval()
        if path.suffix.lower() == ".npz" and path.is_file():
            import numpy as np

            with np.load(path, allow_pickle=False) as z:
                keys = set(z.files)
            if "meta" in keys or ({"mu", "sigma"} <= keys and "arr_0" not in keys and "images" not in keys):
                return "stats", load_reference_file(path)
            if {"mu", "sigma", "arr_0"} <= keys:  # ADM reference batch: Inception stats + images
                ref, ds = import_adm_reference_batch(path)
                return "adm", (ref, ds)
        from onestep.benchmarks.datasets import load_dataset

        return "images", load_dataset(os.fspath(obj))
    raise TypeError(f"{what}: cannot evaluate a {type(obj).__name__}; give a Generator module, an ArrayImageDataset, "
                    "a uint8 tensor, a dataset name/path, a statistics .npz or a Reference")


def _check_generator(gen, class_idx) -> None:
    label_dim = getattr(gen, "label_dim", None)
    if not isinstance(label_dim, int) or label_dim < 0:
        raise TypeError(f"generator.label_dim must be an int >= 0 (0 for unconditional), got {label_dim!r}")


def _resolution_of(kind: str | None, obj) -> int | None:
    if obj is None:
        return None
    if kind == "generator":
        return int(getattr(obj, "img_resolution", 0)) or None
    return int(obj.resolution) if hasattr(obj, "resolution") else None


def _check_resolutions(src_kind, src, ref_kind, ref_obj, ref_stats) -> None:
    """Images of one resolution scored against a reference of another would be resized
    silently by the extractor and give a plausible, meaningless number: refuse it."""
    a = _resolution_of(src_kind, src)
    b = _resolution_of("generator" if ref_kind == "generator" else "images", ref_obj)
    if b is None and ref_stats is not None:
        b = (ref_stats.data or {}).get("resolution")
    if a and b and int(a) != int(b):
        what = "generator" if src_kind == "generator" else "image set"
        ref_name = getattr(ref_obj, "name", None) or (ref_stats.describe() if ref_stats is not None else "reference")
        raise ValueError(f"resolution mismatch: the {what} makes {a}x{a} images but the reference '{ref_name}' is "
                         f"{b}x{b}; score against a reference of the same resolution (e.g. --ref digits-{a} for digits)")


def _image_batches(kind: str, obj, n: int | None, seeds, batch_size: int, device, class_idx) -> tuple[Iterator, int, str | None]:
    if kind == "generator":
        seed_list = sampling.parse_seeds(seeds) if seeds is not None else list(range(n or DEFAULT_NUM_SAMPLES))
        _check_generator(obj, class_idx)
        it = (imgs for _, imgs in sampling.iter_generated(obj, seed_list, batch_size, device, class_idx))
        spec = seeds if isinstance(seeds, str) else f"{seed_list[0]}-{seed_list[-1]}"
        return it, len(seed_list), spec
    images = obj.images if n is None else obj.images[:n]
    if len(images) == 0:
        raise ValueError(f"image set '{obj.name}' is empty: nothing to evaluate")
    if n is not None and len(images) < n:
        raise ValueError(f"image set '{obj.name}' has {len(images)} images but num_samples={n} was requested")
    return dataset_batches(images, batch_size), len(images), None


# ---- metric computation ------------------------------------------------------------------------
def _collected_reference(cols, identity, data) -> Reference:
    return Reference(identity, data, {k: c.moments() for k, c in cols.items() if c.needs.moments},
                     {k: c.features() for k, c in cols.items() if c.needs.rows})


def _compute(spec: MetricSpec, a: Reference, b: Reference | None, opts: MetricOptions, prefix: str = "") -> list[tuple]:
    """-> [(display name, value, raw, std)] for metric `spec` of `a` (generated) against `b`."""
    label = prefix + spec.label
    if spec.kind == "isc":
        mean, std = inception_score(a.features[spec.feature], opts.isc_splits)
        return [(label, mean, mean, std)]
    if spec.kind == "fd":
        raw = frechet_distance_stats(a.stats[spec.feature], b.stats[spec.feature], label)
        return [(label, display_value(raw), raw, None)]
    if spec.kind == "kid":
        mean, std = kernel_inception_distance(a.features[spec.feature], b.features[spec.feature], opts.kid_subsets,
                                              opts.kid_subset_size)
        return [(label, max(0.0, mean), mean, std)]
    if spec.kind == "prc":
        pr = precision_recall(a.features[spec.feature], b.features[spec.feature], opts.prc_k, opts.prc_batch_size)
        suffix = spec.label[len("PR"):]
        return [(f"{prefix}precision{suffix}", pr["precision"], pr["precision"], None),
                (f"{prefix}recall{suffix}", pr["recall"], pr["recall"], None)]
    raise ValueError(f"unknown metric kind {spec.kind}")


def _needed_kinds(specs: list[MetricSpec]) -> dict[str, dict[str, FeatureNeeds]]:
    """extractor key -> feature kind -> what the metrics need (VGG16 for PR alone: rows, no 4096-d moments)."""
    kinds: dict[str, dict[str, FeatureNeeds]] = {}
    for s in specs:
        k = kinds.setdefault(s.extractor, {})
        old = k.get(s.feature, FeatureNeeds(rows=False, moments=False))
        k[s.feature] = FeatureNeeds(rows=old.rows or s.needs_rows, moments=old.moments or s.needs_moments)
    return kinds


def _floor_halves(dataset: ArrayImageDataset, n: int) -> tuple[ArrayImageDataset, ArrayImageDataset]:
    """Two disjoint random subsets (fixed seed 0) of min(n, N // 2) real images each."""
    m = min(n, len(dataset) // 2)
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))
    return (dataset.subset(order[:m].sort().values, f"{dataset.name}-floorA{m}"),
            dataset.subset(order[m : 2 * m].sort().values, f"{dataset.name}-floorB{m}"))


def evaluate(source, reference=None, metrics=("fd_digits",), *, num_samples: int | None = None, seeds=None,
             batch_size: int = 64, device: torch.device | str = "cpu", class_idx: int | None = None,
             data_floor: bool = False, extractors: dict[str, FeatureExtractor] | None = None,
             weights: dict[str, str] | None = None, untrained: Iterable[str] = (), options: MetricOptions | None = None,
             reference_seeds=None, relative: bool | None = None, use_cache: bool = True,
             progress: bool = True) -> EvalResult:
    """Evaluate `source` (generator / image set) against `reference` for `metrics`.

    source: a Generator module, a checkpoint path (.pkl/.safetensors/...), an ArrayImageDataset, a
      uint8 tensor, or a dataset name/path (folder, EDM zip, .npz, 'digits-8-test').
    reference: a dataset (name/path/ArrayImageDataset; statistics cached), a statistics file or
      Reference (FD only), an ADM reference batch .npz, or another generator/image set
      (rel-metrics: 'rel-FID', 'rel-FD-digits').
    num_samples / seeds: generator seeds (default 0..num_samples-1, num_samples default 50,000);
      image sets use their first num_samples images (default: all).
    data_floor: also report each metric between two disjoint halves of the reference dataset at
      the same n (or N//2 if the dataset is smaller; the record says which).
    extractors: prebuilt extractors by registry key; otherwise built with `weights[key]` and
      `untrained` keys.
    relative: name the metrics 'rel-...' (default: when the reference is a generator); set it
      when the reference image set is another model's samples rather than real data.
    """
    specs = parse_metrics(metrics)
    opts = options or MetricOptions()
    kinds = _needed_kinds(specs)
    weights = weights or {}
    untrained = set(untrained)
    exts: dict[str, FeatureExtractor] = dict(extractors or {})
    for key in kinds:
        if key not in exts:
            exts[key] = build_extractor(key, weights.get(key), untrained=key in untrained, device=device)

    src_kind, src = _resolve(source, device, "source")
    if src_kind in ("stats", "adm"):
        raise ValueError("source must be a generator or an image set, not reference statistics")
    ref_kind, ref = (None, None) if reference is None else _resolve(reference, device, "reference")
    if ref is None and any(s.needs_reference for s in specs):
        raise ValueError(f"metrics {[s.key for s in specs if s.needs_reference]} need a reference "
                         "(a dataset, statistics file or generator)")
    ref_stats, ref_dataset = None, None
    if ref_kind == "stats":
        ref_stats = ref
    elif ref_kind == "adm":
        ref_stats, ref_dataset = ref
    elif ref_kind == "images":
        ref_dataset = ref

    _check_resolutions(src_kind, src, ref_kind, ref_dataset if ref_kind != "generator" else ref, ref_stats)

    # lazily: nothing is generated before the reference has been checked
    batches, n, seed_spec = _image_batches(src_kind, src, num_samples, seeds, batch_size, device, class_idx)

    # 1. the reference, per extractor (refused before any generation if it does not fit)
    ref_by_key: dict[str, Reference] = {}
    prefix = "rel-" if (relative if relative is not None else ref_kind == "generator") else ""
    if ref_kind == "generator":
        rb, rn, _ = _image_batches("generator", ref, num_samples, reference_seeds if reference_seeds is not None else seeds,
                                   batch_size, device, class_idx)
        bar = Progress("reference generator", rn, progress)
        rcols = extract_features(rb, exts, kinds, progress=bar)
        bar.close()
        ref_by_key = {k: _collected_reference(c, exts[k].identity, {"kind": "generator", "name": "reference generator"})
                      for k, c in rcols.items()}
    elif ref is not None:
        for key, feats in kinds.items():
            needed = [f for f in feats if any(s.extractor == key and s.feature == f and s.needs_reference for s in specs)]
            if not needed:
                continue
            rows = any(feats[f].rows for f in needed)
            if ref_stats is not None and ref_stats.extractor.name == exts[key].identity.name and not rows:
                ref_stats.check_compatible(exts[key].identity, needed)
                ref_by_key[key] = ref_stats
            elif ref_dataset is not None:
                bar = Progress(f"reference {ref_dataset.name} [{key}]", len(ref_dataset), progress)
                ref_by_key[key] = compute_reference(ref_dataset, exts[key], needed, keep_features=rows,
                                                    batch_size=batch_size, use_cache=use_cache, progress=bar,
                                                    moments=any(feats[f].moments for f in needed))
                bar.close()
                ref_by_key[key].check_compatible(exts[key].identity, needed, need_features=rows)
            else:
                ref_stats.check_compatible(exts[key].identity, needed, need_features=rows)

    # 2. the source: generated once, every batch to every extractor
    bar = Progress("generating + extracting" if src_kind == "generator" else "extracting", n, progress)
    cols = extract_features(batches, exts, kinds, progress=bar)
    bar.close()
    gen_refs = {key: _collected_reference(c, exts[key].identity, {"kind": src_kind, "name": getattr(src, "name", "generator")})
                for key, c in cols.items()}

    # 3. metrics, and the data floor on two disjoint real halves
    floors: dict[str, tuple] = {}
    if data_floor:
        floors = _data_floor(specs, ref_dataset, n, exts, kinds, opts, batch_size, use_cache)
    records = []
    for spec in specs:
        b = ref_by_key.get(spec.extractor)
        ident = exts[spec.extractor].identity
        for name, value, raw, std in _compute(spec, gen_refs[spec.extractor], b, opts, prefix):
            fl = floors.get(name[len(prefix):])
            rec = MetricRecord(name, value, raw, n, asdict(ident), None if (b is None or spec.kind == "isc") else b.identity_record(),
                               ident.untrained, std, seeds=seed_spec, lower_is_better=spec.kind in LOWER_IS_BETTER)
            if data_floor:
                if fl is None or isinstance(fl, str):
                    rec.floor_note = fl or "needs a reference dataset of real images"
                else:
                    rec.floor, rec.floor_n = fl
                    if rec.floor_n != n:  # say why the floor is not at the metric's n
                        rec.floor_note = (f"floor at n={rec.floor_n}, not n={n}: the reference has {len(ref_dataset)} "
                                          f"images, fewer than the {2 * n} that two disjoint sets of {n} need")
            records.append(rec)
    return EvalResult(records)


def _data_floor(specs, dataset, n, exts, kinds, opts, batch_size, use_cache) -> dict:
    """{display name without prefix: (value, n) or a note why there is none}."""
    if dataset is None:
        return {}
    if len(dataset) < 4:
        return {s.label: "reference dataset too small for a floor" for s in specs}
    half_a, half_b = _floor_halves(dataset, n)
    out: dict = {}
    for key, feats in kinds.items():
        rows = any(f.rows for f in feats.values())
        ra = compute_reference(half_a, exts[key], list(feats), keep_features=rows, batch_size=batch_size,
                               use_cache=use_cache)
        rb = compute_reference(half_b, exts[key], list(feats), keep_features=rows, batch_size=batch_size,
                               use_cache=use_cache)
        for spec in (s for s in specs if s.extractor == key):
            try:
                for name, value, raw, std in _compute(spec, ra, rb, opts):
                    out[name] = (value, ra.n)
            except NotEnoughSamplesError as exc:
                names = [spec.label] if spec.kind != "prc" else ["precision" + spec.label[2:], "recall" + spec.label[2:]]
                for name in names:
                    out[name] = f"not available at n={ra.n} ({exc})"
    return out


def evaluate_repeated(source, reference, metrics, *, seed_ranges: list[list[int]], aggregate: str = "mean_std",
                      **kwargs) -> EvalResult:
    """Evaluate over disjoint seed ranges and combine: mean ± std (SiDA) or best-of (EDM's min FID of 3)."""
    if len(seed_ranges) < 1:
        raise ValueError("need at least one seed range")
    flat = [s for r in seed_ranges for s in r]
    if len(set(flat)) != len(flat):
        raise ValueError("repeated evaluations must use disjoint seed ranges")
    runs = []
    for i, seeds in enumerate(seed_ranges):
        if kwargs.get("progress", True):
            print(f"run {i + 1}/{len(seed_ranges)}: seeds {seeds[0]}-{seeds[-1]}", file=sys.stderr)
        runs.append(evaluate(source, reference, metrics, seeds=seeds, **kwargs))
    out = []
    for rec in runs[0].records:
        values = [r[rec.metric].value for r in runs]
        agg = aggregate_values(values, aggregate, rec.lower_is_better)
        merged = MetricRecord(**{**rec.to_dict(), "value": agg["value"], "std": agg["std"], "runs": agg["runs"],
                                 "raw": agg["value"], "aggregate": aggregate, "seeds": ";".join(f"{r[0]}-{r[-1]}" for r in seed_ranges)})
        out.append(merged)
    return EvalResult(out)
