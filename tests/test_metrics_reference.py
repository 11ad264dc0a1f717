"""Reference statistics: caching, identity refusal, EDM / ADM imports, corrupt files."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from onestep.benchmarks.datasets import ArrayImageDataset, load_digits
from onestep.benchmarks.metrics.evaluate import evaluate
from onestep.benchmarks.metrics.extractors.base import ExtractorIdentity, FeatureExtractor
from onestep.benchmarks.metrics.statistics import RankDeficientWarning
from onestep.benchmarks.metrics.reference import (
    INCEPTION_IDENTITY,
    Reference,
    ReferenceFileError,
    ReferenceMismatchError,
    compute_reference,
    import_adm_reference_batch,
    import_edm_reference,
    load_reference_file,
)


class ProjectionExtractor(FeatureExtractor):
    """A test double of the interface: a fixed random projection of the pixels, counting calls."""

    def __init__(self, dim=2048, name="inception-v3-compat", sha="", resize="torch-fidelity-bilinear-299", untrained=False,
                 in_pixels=64):
        g = torch.Generator().manual_seed(0)
        self.proj = torch.randn(in_pixels, dim, generator=g, dtype=torch.float64) / in_pixels ** 0.5
        self.identity = ExtractorIdentity(name, sha, resize, untrained)
        self.feature_dims = {"pool": dim}
        self.calls = 0

    def __call__(self, images):
        self.calls += 1
        x = images.to(torch.float64).mean(1).flatten(1) / 255.0
        x = torch.nn.functional.adaptive_avg_pool1d(x[:, None], self.proj.shape[0])[:, 0]
        return {"pool": (x @ self.proj).float()}


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ONESTEP_CACHE", str(tmp_path / "cache"))  # cache hits/misses are what is tested


@pytest.fixture()
def digits():
    return load_digits(split="test")


def test_reference_is_cached_and_reused(digits):
    ext = ProjectionExtractor(dim=16, name="proj-test", sha="abc")
    first = compute_reference(digits, ext, ["pool"], keep_features=True)
    calls = ext.calls
    second = compute_reference(digits, ext, ["pool"], keep_features=True)
    assert ext.calls == calls  # no extraction the second time
    np.testing.assert_array_equal(first.stats["pool"].sigma, second.stats["pool"].sigma)
    feats = ext(digits.images)["pool"].double().numpy()
    np.testing.assert_allclose(second.stats["pool"].mu, feats.mean(0), rtol=1e-6)
    assert second.n == len(digits) and second.data["content_hash"] == digits.content_hash()
    # another extractor checksum is another cache entry, not a hit
    other = ProjectionExtractor(dim=16, name="proj-test", sha="def")
    compute_reference(digits, other, ["pool"])
    assert other.calls > 0


@pytest.mark.parametrize("change,words", [
    (dict(name="clip-vit-b-32"), "different extractor"),
    (dict(resize="clean-bicubic-299"), "different resize mode"),
    (dict(sha="ffff"), "different weights checksum"),
    (dict(untrained=True), "trained vs untrained"),
])
def test_reference_from_another_extractor_is_refused(digits, change, words):
    base = dict(name="proj-test", sha="abc", resize="r1", untrained=False)
    ref = compute_reference(digits, ProjectionExtractor(dim=8, **base), ["pool"], use_cache=False)
    other = ProjectionExtractor(dim=8, **{**base, **change})
    with pytest.raises(ReferenceMismatchError, match=words) as info:
        evaluate(digits, ref, ["fid"], extractors={"inception": other}, progress=False)
    assert "proj-test" in str(info.value) and other.identity.name in str(info.value)  # names both


def test_edm_reference_npz_import_and_fid(tmp_path):
    rng = np.random.default_rng(0)
    mu, sigma = rng.normal(size=2048), np.diag(rng.uniform(0.01, 1.0, size=2048))
    path = tmp_path / "cifar10-32x32.npz"
    np.savez(path, mu=mu, sigma=sigma)
    ref = import_edm_reference(path)
    assert ref.extractor == INCEPTION_IDENTITY and ref.stats["pool"].sigma.dtype == np.float64
    assert load_reference_file(path).data["kind"] == "edm-npz"

    images = ArrayImageDataset(torch.randint(0, 256, (40, 3, 8, 8), generator=torch.Generator().manual_seed(1),
                                             dtype=torch.uint8))
    ext = ProjectionExtractor()
    with pytest.warns(RankDeficientWarning):
        out = evaluate(images, path, ["fid"], extractors={"inception": ProjectionExtractor()}, progress=False)["FID"]
    feats = ext(images.images)["pool"].double().numpy()
    # independent closed form for a rank-40 covariance S1 = X^T X / (n - 1) against diagonal D:
    # tr (S1 D)^1/2 = sum sqrt eig(X D X^T / (n - 1)), a 40 x 40 problem
    x = feats - feats.mean(0)
    small = (x * np.diag(sigma)) @ x.T / (len(x) - 1)
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(small), 0, None)).sum()
    expected = np.sum((feats.mean(0) - mu) ** 2) + np.trace(x.T @ x) / (len(x) - 1) + np.trace(sigma) - 2 * tr_sqrt
    # rel 1e-7: the ~2000 zero eigenvalues of the rank-40 covariance come out as +-1e-16 rounding noise
    assert out.raw == pytest.approx(expected, rel=1e-7)
    assert out.reference["kind"] == "edm-npz"
    # KID needs reference features, which a statistics file does not have
    with pytest.raises(ReferenceMismatchError, match="KID and precision/recall need the reference images"):
        evaluate(images, path, ["kid"], extractors={"inception": ProjectionExtractor()}, progress=False)
    # the digits network cannot be compared with Inception statistics
    with pytest.raises(ReferenceMismatchError, match="digits-cnn"):
        ref.check_compatible(ExtractorIdentity("digits-cnn", "x", "bilinear-16", False), ["pool"])


def test_adm_reference_batch_import(tmp_path):
    rng = np.random.default_rng(2)
    path = tmp_path / "VIRTUAL_imagenet64_labeled.npz"
    images = rng.integers(0, 256, size=(12, 64, 64, 3), dtype=np.uint8)
    np.savez(path, arr_0=images, mu=rng.normal(size=2048), sigma=np.eye(2048), mu_s=np.zeros(2), sigma_s=np.eye(2))
    ref, dataset = import_adm_reference_batch(path)
    assert ref.stats["pool"].n == 12 and ref.data["kind"] == "adm-npz"
    assert dataset.images.shape == (12, 3, 64, 64)
    np.testing.assert_array_equal(dataset.images[3].permute(1, 2, 0).numpy(), images[3])


def test_bad_reference_files_are_refused(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(ReferenceFileError, match="not a readable .npz"):
        load_reference_file(junk)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, mu=np.zeros(64), sigma=np.eye(64))
    with pytest.raises(ReferenceFileError, match="64-d statistics, but Inception pool_3 features are 2048-d"):
        import_edm_reference(wrong)
    missing = tmp_path / "missing.npz"
    np.savez(missing, mean=np.zeros(3))
    with pytest.raises(ReferenceFileError, match="no 'mu'/'sigma'"):
        import_edm_reference(missing)


def test_reference_round_trip_keeps_identity(tmp_path, digits):
    ext = ProjectionExtractor(dim=8, name="proj-test", sha="abc", untrained=True)
    ref = compute_reference(digits, ext, ["pool"], use_cache=False)
    ref.save(tmp_path / "r.npz")
    back = Reference.load(tmp_path / "r.npz")
    assert back.extractor == ext.identity and back.data == ref.data
    torch.testing.assert_close(back.features["pool"], ref.features["pool"])


def test_psd_check_by_cholesky_agrees_with_the_smallest_eigenvalue():
    """check_stats refuses sigma with an eigenvalue below -1e-6 * max|sigma|: the Cholesky test
    of sigma + tol I says the same as the eigenvalues, on both sides of the threshold, also for
    a rank-deficient covariance (n < D, as a small cached reference is)."""
    from onestep.benchmarks.metrics.reference import _psd_within, check_stats

    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(40, 40)))
    for low in (-1e-3, -2e-6, -5e-7, 0.0, 1e-4):
        w = np.concatenate([[low], rng.uniform(0.1, 1.0, size=39)])
        s = (q * w) @ q.T
        s = (s + s.T) / 2
        tol = 1e-6 * np.abs(s).max()
        assert _psd_within(s, tol) == (np.linalg.eigvalsh(s).min() >= -tol), low
    deficient = np.cov(rng.normal(size=(10, 40)), rowvar=False)
    check_stats("deficient.npz", "pool", np.zeros(40), deficient)  # PSD up to rounding: accepted
    with pytest.raises(ReferenceFileError, match="not positive semi-definite"):
        check_stats("neg.npz", "pool", np.zeros(40), deficient - 0.01 * np.eye(40))


def test_rows_only_reference_keeps_no_moments(digits):
    """Precision/recall (VGG16) needs rows only: no 4096-d covariance is accumulated, cached or
    checked; a later request that needs the moments recomputes the entry with both."""
    ext = ProjectionExtractor(dim=16, name="proj-test", sha="abc")
    rows = compute_reference(digits, ext, ["pool"], keep_features=True, moments=False)
    assert rows.stats == {} and rows.features["pool"].shape == (len(digits), 16)
    calls = ext.calls
    again = compute_reference(digits, ext, ["pool"], keep_features=True, moments=False)
    assert ext.calls == calls and again.stats == {}  # a cache hit
    both = compute_reference(digits, ext, ["pool"], keep_features=True)
    assert ext.calls > calls and "pool" in both.stats
    feats = ext(digits.images)["pool"].double().numpy()
    np.testing.assert_allclose(both.stats["pool"].sigma, np.cov(feats, rowvar=False), rtol=1e-6, atol=1e-9)
