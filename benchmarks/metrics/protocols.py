"""What each metric name means (extractor, feature kind, computation, display name) and the
papers' evaluation protocols (sample count, seeds, repeats, aggregation).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onestep.methods.core.config import suggest


@dataclass(frozen=True)
class MetricSpec:
    key: str  # what users ask for: "fid", "kid_digits", ...
    extractor: str  # key in extractors.registry
    feature: str  # feature kind the extractor returns
    kind: str  # "fd" | "kid" | "prc" | "isc"
    label: str  # display name; PR gives "precision-<suffix>" and "recall-<suffix>"

    @property
    def needs_reference(self) -> bool:
        return self.kind != "isc"

    @property
    def needs_rows(self) -> bool:  # KID, PR and IS need the feature rows, FD only moments
        return self.kind in ("kid", "prc", "isc")

    @property
    def needs_moments(self) -> bool:  # Frechet distances: mean and covariance
        return self.kind == "fd"


METRICS: dict[str, MetricSpec] = {m.key: m for m in [
    MetricSpec("fid", "inception", "pool", "fd", "FID"),
    MetricSpec("isc", "inception", "logits", "isc", "IS"),
    MetricSpec("kid", "inception", "pool", "kid", "KID"),
    # Kynkaanniemi et al. 2019 use VGG16 fc2 features (torch-fidelity's default for prc)
    MetricSpec("prc", "vgg16", "pool", "prc", "PR"),
    MetricSpec("clip_fid", "clip", "pool", "fd", "CLIP-FID"),
    MetricSpec("fd_dinov2", "dinov2", "pool", "fd", "FD-DINOv2"),
    MetricSpec("fd_digits", "digits", "pool", "fd", "FD-digits"),
    MetricSpec("is_digits", "digits", "logits", "isc", "IS-digits"),
    MetricSpec("kid_digits", "digits", "pool", "kid", "KID-digits"),
    MetricSpec("prc_digits", "digits", "pool", "prc", "PR-digits"),
]}

DIGITS_METRICS = ("fd_digits", "is_digits", "kid_digits", "prc_digits")
LOWER_IS_BETTER = ("fd", "kid")


def metric_spec(key: str) -> MetricSpec:
    k = key.strip().lower().replace("-", "_")
    if k not in METRICS:
        raise ValueError(f"unknown metric '{key}'{suggest(k, list(METRICS))}; known: {', '.join(METRICS)}")
    return METRICS[k]


def parse_metrics(spec) -> list[MetricSpec]:
    """'fid,isc' or a list of names / MetricSpecs -> unique MetricSpecs, in order."""
    keys = [s for s in (spec.split(",") if isinstance(spec, str) else spec) if isinstance(s, MetricSpec) or s.strip()]
    if not keys:
        raise ValueError("no metrics requested; e.g. --metrics fd_digits,is_digits or fid,isc")
    specs = []
    for k in keys:
        s = k if isinstance(k, MetricSpec) else metric_spec(k)
        if s not in specs:
            specs.append(s)
    return specs


@dataclass(frozen=True)
class Protocol:
    name: str
    num_samples: int
    repeats: int
    aggregate: str  # "single" | "mean_std" | "best"
    first_seed: int = 0
    source: str = ""

    def seed_ranges(self, num_samples: int | None = None, first_seed: int | None = None) -> list[list[int]]:
        """Disjoint seed ranges, one per repeat: [s, s+n), [s+n, s+2n), ..."""
        n = self.num_samples if num_samples is None else int(num_samples)
        s = self.first_seed if first_seed is None else int(first_seed)
        return [list(range(s + r * n, s + (r + 1) * n)) for r in range(self.repeats)]


PROTOCOLS: dict[str, Protocol] = {p.name: p for p in [
    # EDM (Karras et al. 2022, Sec. 5 / App.): FID over 50k images, seeds 0-49999; the reported
    # number is the minimum over 3 evaluations with different seeds
    Protocol("edm", 50_000, 3, "best", 0, "EDM: min FID of 3 runs of 50k"),
    # SiDA (paper 002, experiments): mean +- std over 10 independent 50k evaluations
    Protocol("sida", 50_000, 10, "mean_std", 0, "SiDA: mean +- std of 10 runs of 50k"),
    Protocol("single", 50_000, 1, "single", 0, "one run of 50k, seeds 0-49999"),
]}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol '{name}'{suggest(name, list(PROTOCOLS))}; known: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def aggregate_values(values: list[float], how: str, lower_is_better: bool) -> dict:
    """Combine repeated evaluations: mean and std (ddof=1, sample std), or the best of them."""
    v = np.asarray(values, dtype=np.float64)
    if how == "single" or len(v) == 1:
        return {"value": float(v[0]), "std": None, "runs": v.tolist()}
    if how == "mean_std":
        return {"value": float(v.mean()), "std": float(v.std(ddof=1)), "runs": v.tolist()}
    if how == "best":
        return {"value": float(v.min() if lower_is_better else v.max()), "std": None, "runs": v.tolist()}
    raise ValueError(f"unknown aggregation '{how}': use single, mean_std or best")
