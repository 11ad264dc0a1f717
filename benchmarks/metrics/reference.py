"""Reference statistics: what generated features are compared with.

A `Reference` holds, per feature kind of one extractor, Gaussian statistics (mu, sigma, n) and
optionally the raw feature rows (KID and precision/recall need them). It records the identity
of the extractor that made it and of the data; using it with another extractor identity
(name, weights checksum, resize mode, or trained vs untrained) is refused with both named.

Sources:
- a dataset (`compute_reference`), cached under `cache_dir('reference_stats')` by a key over
  the data's content hash, extractor name, weights sha256, resize mode, feature kinds and n;
  written atomically (one .npz: arrays + a JSON metadata string, read with allow_pickle=False);
- EDM's reference .npz (mu, sigma of Inception pool_3 features) via `import_edm_reference`;
- the ADM/ImageNet-64 reference batch .npz (arr_0 images + mu/sigma, also mu_s/sigma_s) via
  `import_adm_reference_batch`: its mu/sigma become an Inception reference, its images a dataset.
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from onestep.methods.core.atomic import atomic_write
from onestep.methods.core.paths import cache_dir

from .extractors.base import ExtractorIdentity, FeatureExtractor
from .statistics import FeatureCollector, FeatureNeeds, GaussianStats

FORMAT = "onestep-reference-v1"
# EDM's and ADM's statistics come from the TF Inception-v3 graph (pool_3), which torch-fidelity's
# 'inception-v3-compat' ports together with TF's resize to 299.
INCEPTION_IDENTITY = ExtractorIdentity("inception-v3-compat", "", "torch-fidelity-bilinear-299", False)


class ReferenceMismatchError(ValueError):
    pass


class ReferenceFileError(ValueError):
    pass


@dataclass
class Reference:
    extractor: ExtractorIdentity
    data: dict  # {"kind": "dataset"|"edm-npz"|"adm-npz"|..., "name": ..., "content_hash": ...}
    stats: dict[str, GaussianStats]  # feature kind -> statistics
    features: dict[str, torch.Tensor] = field(default_factory=dict)  # feature kind -> rows (float32)

    @property
    def n(self) -> int:
        counts = [s.n for s in self.stats.values()] + [len(f) for f in self.features.values()]
        return min(counts) if counts else 0

    def describe(self) -> str:
        return f"{self.data.get('name', '?')} (n={self.n}, {self.data.get('kind', '?')})"

    def identity_record(self) -> dict:
        return {**self.data, "n": self.n, "extractor": asdict(self.extractor)}

    def check_compatible(self, identity: ExtractorIdentity, kinds: Iterable[str] = (), need_features: bool = False) -> None:
        """Refuse a reference made by another extractor, weights, resize mode or training state."""
        mine, theirs = self.extractor, identity
        problems = []
        if mine.name != theirs.name:
            problems.append("extractor")
        if mine.resize_mode != theirs.resize_mode:
            problems.append("resize mode")
        # an imported file (EDM/ADM) carries no checksum: only the name/resize are known
        if mine.weights_sha256 and theirs.weights_sha256 and mine.weights_sha256 != theirs.weights_sha256:
            problems.append("weights checksum")
        if mine.untrained != theirs.untrained:
            problems.append("trained vs untrained weights")
        if problems:
            raise ReferenceMismatchError(
                f"reference statistics {self.describe()} were made with {mine.describe()}, but the features being "
                f"evaluated come from {theirs.describe()} (different {', '.join(problems)}); recompute the "
                f"reference with the same extractor (its cache key includes all of these)")
        for kind in kinds:
            if kind not in self.stats and kind not in self.features:
                raise ReferenceMismatchError(f"reference {self.describe()} has no '{kind}' features (it has "
                                             f"{sorted({*self.stats, *self.features})}); recompute it from the "
                                             "reference images")
            if need_features and kind not in self.features:
                raise ReferenceMismatchError(
                    f"reference {self.describe()} holds only mean/covariance of '{kind}' features; KID and "
                    f"precision/recall need the reference images (give a dataset, not a statistics file)")

    # --- persistence -------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        arrays = {}
        for kind, s in self.stats.items():
            arrays[f"{kind}.mu"], arrays[f"{kind}.sigma"] = s.mu, s.sigma
            arrays[f"{kind}.n"] = np.array(s.n)
        for kind, f in self.features.items():
            arrays[f"{kind}.features"] = f.numpy()
        meta = {"format": FORMAT, "extractor": asdict(self.extractor), "data": self.data}
        arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))

        def write(f):
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            f.write(buf.getvalue())

        return atomic_write(path, write)

    @classmethod
    def load(cls, path: str | Path) -> "Reference":
        try:
            with np.load(path, allow_pickle=False) as z:
                files = set(z.files)
                if "meta" not in files:
                    raise ReferenceFileError(f"'{path}' is not an onestep reference file (no 'meta'); for EDM or "
                                             "ADM statistics use import_edm_reference / import_adm_reference_batch")
                meta = json.loads(str(z["meta"]))
                if meta.get("format") != FORMAT:
                    raise ReferenceFileError(f"'{path}' has format {meta.get('format')!r}, expected {FORMAT!r}")
                kinds = sorted({k.split(".")[0] for k in files if k.endswith(".mu")})
                stats = {k: GaussianStats(z[f"{k}.mu"], z[f"{k}.sigma"], int(z[f"{k}.n"])) for k in kinds}
                feats = {k.split(".")[0]: torch.from_numpy(z[k]) for k in files if k.endswith(".features")}
        except (zipfile.BadZipFile, OSError, EOFError, KeyError, json.JSONDecodeError) as exc:
            raise ReferenceFileError(f"'{path}' is not a readable reference file ({exc}); delete it to recompute") from exc
        for k, st in stats.items():
            check_stats(path, k, st.mu, st.sigma)
        return cls(ExtractorIdentity(**meta["extractor"]), meta["data"], stats, feats)


def reference_cache_key(data_hash: str, identity: ExtractorIdentity, kinds: Iterable[str], n: int) -> str:
    text = json.dumps({"format": FORMAT, "data": data_hash, "extractor": identity.name,
                       "weights": identity.weights_sha256, "resize": identity.resize_mode,
                       "untrained": identity.untrained, "kinds": sorted(kinds), "n": int(n)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def extract_features(batches: Iterable[torch.Tensor], extractors: dict[str, FeatureExtractor],
                     kinds: dict[str, dict[str, FeatureNeeds]], total: int | None = None,
                     progress: Callable[[int], None] | None = None) -> dict[str, dict[str, FeatureCollector]]:
    """Feed every uint8 batch once to every extractor; kinds[key][kind] = what to collect."""
    collectors = {key: {kind: FeatureCollector(needs) for kind, needs in kinds[key].items()} for key in kinds}
    done = 0
    for images in batches:
        for key, ext in extractors.items():
            if key not in kinds:
                continue
            feats = ext(images)
            for kind, col in collectors[key].items():
                col.update(feats[kind])
        done += images.shape[0]
        if progress:
            progress(done)
    return collectors


def dataset_batches(images: torch.Tensor, batch_size: int) -> Iterable[torch.Tensor]:
    for i in range(0, len(images), batch_size):
        yield images[i : i + batch_size]


def compute_reference(dataset, extractor: FeatureExtractor, kinds: Iterable[str] = ("pool",), keep_features: bool = True,
                      n: int | None = None, batch_size: int = 250, use_cache: bool = True,
                      progress: Callable[[int], None] | None = None, moments: bool = True) -> Reference:
    """Statistics (and rows) of `dataset` (an ArrayImageDataset) under `extractor`, cached.

    moments=False (rows only: VGG16 for precision/recall) skips the mean/covariance: at 4096-d
    that is a 128 MB float64 matrix to accumulate, write, read back and check on every later
    load, for no metric. A later request that needs them recomputes the entry with both."""
    kinds = sorted(set(kinds))
    images = dataset.images if n is None else dataset.images[:n]
    if len(images) < 2:
        raise ValueError(f"reference dataset '{dataset.name}' has {len(images)} images; need at least 2")
    data_hash = dataset.content_hash()
    data = {"kind": "dataset", "name": dataset.name, "content_hash": data_hash,
            "resolution": int(dataset.resolution)}  # lets a stats file be checked against the images scored
    key = reference_cache_key(data_hash, extractor.identity, kinds, len(images))
    path = cache_dir("reference_stats") / f"{extractor.identity.name}-{key}.npz"
    if use_cache and path.exists():
        try:
            ref = Reference.load(path)
            if all((not moments or k in ref.stats) and (not keep_features or k in ref.features) for k in kinds):
                ref.check_compatible(extractor.identity, kinds, need_features=keep_features)
                return ref
        except (ReferenceFileError, ReferenceMismatchError):
            pass  # a corrupt or stale cache entry is recomputed and replaced
    if not (moments or keep_features):
        raise ValueError("compute_reference: nothing to compute (moments=False and keep_features=False)")
    needs = FeatureNeeds(rows=keep_features, moments=moments)
    cols = extract_features(dataset_batches(images, batch_size), {"x": extractor}, {"x": {k: needs for k in kinds}},
                            progress=progress)["x"]
    ref = Reference(extractor.identity, data, {k: c.moments() for k, c in cols.items()} if moments else {},
                    {k: c.features() for k, c in cols.items()} if keep_features else {})
    if use_cache:
        ref.save(path)
    return ref


def check_stats(path, kind: str, mu: np.ndarray, sigma: np.ndarray) -> None:
    """Refuse statistics that would give a clean-looking but wrong distance: NaN/inf values, a
    sigma that is not symmetric (the Frechet distance reads only part of it) or not positive
    semi-definite (a negative raw distance, displayed as 0). Names the file."""
    where = f"reference statistics '{path}' ({kind})"
    if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(sigma))):
        bad = "mu" if not np.all(np.isfinite(mu)) else "sigma"
        raise ReferenceFileError(f"{where}: {bad} holds NaN or inf values; the file is corrupt or was computed from "
                                 "invalid features: recompute it (delete it if it is a cache file)")
    s = np.asarray(sigma, dtype=np.float64)
    scale = float(np.abs(s).max()) or 1.0
    asym = float(np.abs(s - s.T).max())
    if asym > 1e-6 * scale:
        raise ReferenceFileError(f"{where}: sigma is not symmetric (max |sigma - sigma^T| = {asym:.3g}, entries up to "
                                 f"{scale:.3g}); a covariance is symmetric: the file is corrupt, recompute it")
    if not _psd_within(s, 1e-6 * scale):
        low = float(np.linalg.eigvalsh(s).min())  # only to name the figure in the error
        raise ReferenceFileError(f"{where}: sigma is not positive semi-definite (smallest eigenvalue {low:.3g}); a "
                                 "covariance has none below 0: the file is corrupt, recompute it")


def _psd_within(s: np.ndarray, tol: float) -> bool:
    """Smallest eigenvalue of symmetric `s` >= -tol, by a Cholesky factorisation of s + tol I
    (it exists iff every eigenvalue of s is above -tol): the eigenvalue test's answer at a
    fraction of its cost (measured on one core: 4096-d 1.9 instead of 7.4 CPU s, 2048-d 0.28
    instead of 0.63, symmetry check included)."""
    try:
        np.linalg.cholesky(s + tol * np.eye(len(s)))
        return True
    except np.linalg.LinAlgError:
        return False


def _read_npz(path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ReferenceFileError(f"'{path}' is not a readable .npz file ({exc})") from exc


def _stats_from_arrays(path, arrays, mu_key="mu", sigma_key="sigma", n: int = 0) -> GaussianStats:
    if mu_key not in arrays or sigma_key not in arrays:
        raise ReferenceFileError(f"'{path}' has no '{mu_key}'/'{sigma_key}' arrays (found {sorted(arrays)}); "
                                 "an EDM/ADM reference holds Inception pool_3 mean and covariance")
    mu, sigma = arrays[mu_key], arrays[sigma_key]
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ReferenceFileError(f"'{path}': mu {mu.shape} and sigma {sigma.shape} are not a (D,) mean and (D, D) covariance")
    if mu.shape[0] != 2048:
        raise ReferenceFileError(f"'{path}': {mu.shape[0]}-d statistics, but Inception pool_3 features are 2048-d; "
                                 "this file was not made with the Inception network")
    check_stats(path, sigma_key, mu, sigma)
    return GaussianStats(mu.astype(np.float64), sigma.astype(np.float64), n)


def import_edm_reference(path: str | Path, identity: ExtractorIdentity = INCEPTION_IDENTITY) -> Reference:
    """EDM's fid-refs/*.npz (mu, sigma; float64). The sample count is not stored (EDM: the dataset)."""
    arrays = _read_npz(path)
    stats = _stats_from_arrays(path, arrays)
    content = hashlib.sha256(stats.mu.tobytes() + stats.sigma.tobytes()).hexdigest()[:16]
    return Reference(identity, {"kind": "edm-npz", "name": Path(path).name, "content_hash": content}, {"pool": stats})


def import_adm_reference_batch(path: str | Path, identity: ExtractorIdentity = INCEPTION_IDENTITY):
    """ADM's reference batch (e.g. VIRTUAL_imagenet64_labeled.npz): returns (Reference from its
    mu/sigma, ArrayImageDataset of its arr_0 images or None)."""
    from onestep.benchmarks.datasets import ArrayImageDataset

    arrays = _read_npz(path)
    images = arrays.get("arr_0")
    n = 0 if images is None else len(images)
    stats = _stats_from_arrays(path, arrays, n=n)
    content = hashlib.sha256(stats.mu.tobytes() + stats.sigma.tobytes()).hexdigest()[:16]
    ref = Reference(identity, {"kind": "adm-npz", "name": Path(path).name, "content_hash": content}, {"pool": stats})
    dataset = None
    if images is not None:
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise ReferenceFileError(f"'{path}': arr_0 must be uint8 (N, H, W, C) images, got {images.dtype} {images.shape}")
        dataset = ArrayImageDataset(np.ascontiguousarray(images.transpose(0, 3, 1, 2)), name=Path(path).stem)
    return ref, dataset


def load_reference_file(path: str | Path) -> Reference:
    """Any statistics file: ours, EDM's (mu, sigma) or ADM's reference batch (mu/sigma used)."""
    arrays_keys = set(_read_npz(path))
    if "meta" in arrays_keys:
        return Reference.load(path)
    if "arr_0" in arrays_keys:
        return import_adm_reference_batch(path)[0]
    return import_edm_reference(path)
