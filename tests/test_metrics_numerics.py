"""FD / KID / PR / IS against closed forms and against torch-fidelity's own functions."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg
import torch

from onestep.benchmarks.metrics.frechet import display_value, frechet_distance, frechet_distance_stats, trace_sqrt_product
from onestep.benchmarks.metrics.isc import inception_score
from onestep.benchmarks.metrics.kid import NotEnoughSamplesError, kernel_inception_distance
from onestep.benchmarks.metrics.prc import precision_recall
from onestep.benchmarks.metrics.statistics import FeatureCollector, FeatureNeeds, RankDeficientWarning, RunningStats, \
    stats_from_features


def _random_cov(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_fd_equals_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(0)
    d = 16
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = rng.uniform(0.1, 3, size=d), rng.uniform(0.1, 3, size=d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-12)


def test_fd_full_covariance_matches_scipy_sqrtm_formula():
    rng = np.random.default_rng(1)
    d = 24
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    c1, c2 = _random_cov(rng, d), _random_cov(rng, d)
    covmean = scipy.linalg.sqrtm(c1 @ c2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(c1 + c2 - 2 * covmean)
    assert frechet_distance(mu1, c1, mu2, c2) == pytest.approx(expected, rel=1e-9)


def test_fd_matches_torch_fidelity_statistics_to_metric():
    from torch_fidelity.metric_fid import fid_statistics_to_metric

    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(300, 20)), rng.normal(0.3, 1.2, size=(250, 20))
    sa, sb = stats_from_features(a), stats_from_features(b)
    ref = fid_statistics_to_metric({"mu": sa.mu, "sigma": sa.sigma}, {"mu": sb.mu, "sigma": sb.sigma}, False)
    assert frechet_distance_stats(sa, sb) == pytest.approx(ref["frechet_inception_distance"], rel=1e-9)


@pytest.fixture(scope="module")
def full_rank_inception_like_stats():
    """Two sets of 2,100 correlated, non-negative 2048-d features (Inception pool_3 is post-ReLU):
    more samples than dimensions, the regime of every real FID (n = 50,000)."""
    rng = np.random.default_rng(8)
    mix = rng.normal(size=(2048, 2048)) / np.sqrt(2048)
    a = np.maximum(rng.normal(size=(2100, 2048)) @ mix, 0).astype(np.float32)
    b = np.maximum(rng.normal(0.05, 1.1, size=(2100, 2048)) @ mix, 0).astype(np.float32)
    return stats_from_features(a), stats_from_features(b)


def test_fd_equals_torch_fidelity_and_clean_fid_at_full_rank(full_rank_inception_like_stats):
    """Our FD (symmetric eigenvalues) vs torch-fidelity's (eigvals of S1 S2) and clean-fid's
    (scipy sqrtm) on the same float64 statistics: 1e-6 relative, the harness's FID tolerance."""
    from cleanfid import fid as cf
    from torch_fidelity.metric_fid import fid_statistics_to_metric

    from onestep.benchmarks.metrics.naive import cleanfid_sqrtm_compat

    sa, sb = full_rank_inception_like_stats
    ours = frechet_distance_stats(sa, sb)
    tf = fid_statistics_to_metric({"mu": sa.mu, "sigma": sa.sigma}, {"mu": sb.mu, "sigma": sb.sigma}, False)
    with cleanfid_sqrtm_compat():
        clean = cf.frechet_distance(sa.mu, sa.sigma, sb.mu, sb.sigma)
    assert ours > 1.0
    assert ours == pytest.approx(tf["frechet_inception_distance"], rel=1e-6)
    assert ours == pytest.approx(float(clean), rel=1e-6)


def test_fd_of_a_set_with_itself_is_zero_and_display_is_clamped():
    rng = np.random.default_rng(3)
    s = stats_from_features(rng.normal(size=(200, 32)))
    raw = frechet_distance_stats(s, s)
    assert abs(raw) < 1e-8
    assert display_value(raw) >= 0.0
    assert display_value(-1e-9) == 0.0 and display_value(2.5) == 2.5


def test_rank_deficient_fd_equals_the_full_matrix_square_root():
    """n < D on both sides (no Cholesky): the eigh path gives the trace of
    (S1^{1/2} S2 S1^{1/2})^{1/2} computed the long way (scipy sqrtm of the full D x D matrices)."""
    rng = np.random.default_rng(7)
    s1 = np.cov(rng.normal(size=(12, 48)), rowvar=False)
    s2 = np.cov(rng.normal(size=(20, 48)) * 1.5 + 0.3, rowvar=False)
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.cholesky(s1)  # the path under test
    root = scipy.linalg.sqrtm(s1).real
    expected = float(np.trace(scipy.linalg.sqrtm(root @ s2 @ root).real))
    assert trace_sqrt_product(s1, s2) == pytest.approx(expected, rel=1e-7)
    assert trace_sqrt_product(s1, s1) == pytest.approx(np.trace(s1), rel=1e-7)  # (S^2)^{1/2} = S


def test_rank_deficient_covariance_warns():
    s = stats_from_features(np.random.default_rng(4).normal(size=(10, 32)))
    with pytest.warns(RankDeficientWarning, match="n=10 samples for 32-d"):
        frechet_distance_stats(s, s)
    big = stats_from_features(np.random.default_rng(4).normal(size=(100, 32)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frechet_distance_stats(big, big)


def test_running_stats_equal_numpy_over_uneven_batches():
    x = np.random.default_rng(5).normal(3.0, 2.0, size=(1003, 12)).astype(np.float32)
    rs = RunningStats()
    for lo, hi in [(0, 1), (1, 100), (100, 613), (613, 1003)]:
        rs.update(torch.from_numpy(x[lo:hi]))
    st = rs.result()
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(st.mu, x64.mean(0), rtol=1e-12)
    np.testing.assert_allclose(st.sigma, np.cov(x64, rowvar=False), rtol=1e-10, atol=1e-12)
    assert st.n == 1003


def test_running_stats_reject_nonfinite_features():
    rs = RunningStats()
    bad = torch.ones(4, 3)
    bad[1, 2] = float("nan")
    with pytest.raises(FloatingPointError, match="1 feature vectors contain NaN"):
        rs.update(bad)


def test_collector_moments_equal_numpy_across_block_flushes():
    x = np.random.default_rng(7).normal(1.0, 3.0, size=(2600, 6)).astype(np.float32)
    col = FeatureCollector(FeatureNeeds(rows=True, moments=True))
    for chunk in np.array_split(x, 41):  # batches of ~63 rows: flushes at 1024-row blocks and a tail
        col.update(torch.from_numpy(chunk))
    st = col.moments()
    np.testing.assert_allclose(st.mu, x.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(st.sigma, np.cov(x.astype(np.float64), rowvar=False), rtol=1e-10, atol=1e-12)
    assert st.n == 2600 and torch.equal(col.features(), torch.from_numpy(x))


def test_collector_keeps_only_what_the_metrics_need():
    rows_only = FeatureCollector(FeatureNeeds(rows=True, moments=False))
    rows_only.update(torch.randn(5, 4096))
    assert rows_only.stats.n == 0  # no 4096-d covariance for precision/recall alone
    with pytest.raises(RuntimeError, match="moments were not collected"):
        rows_only.moments()
    moments_only = FeatureCollector(FeatureNeeds(rows=False, moments=True))
    moments_only.update(torch.randn(5, 3))
    assert moments_only.moments().n == 5
    with pytest.raises(RuntimeError, match="features were not kept"):
        moments_only.features()
    bad = torch.ones(4, 3)
    bad[2, 0] = float("inf")
    with pytest.raises(FloatingPointError, match="1 feature vectors contain NaN/Inf"):
        rows_only.update(bad)


def test_metric_needs_per_extractor():
    from onestep.benchmarks.metrics.evaluate import _needed_kinds
    from onestep.benchmarks.metrics.protocols import parse_metrics

    needs = _needed_kinds(parse_metrics(["fid", "isc", "kid", "prc"]))
    assert needs["inception"]["pool"] == FeatureNeeds(rows=True, moments=True)  # FID + KID
    assert needs["inception"]["logits"] == FeatureNeeds(rows=True, moments=False)  # IS
    assert needs["vgg16"]["pool"] == FeatureNeeds(rows=True, moments=False)  # PR only
    assert _needed_kinds(parse_metrics(["fid"]))["inception"] == {"pool": FeatureNeeds(rows=False, moments=True)}


@pytest.mark.parametrize("subset_size,subsets", [(50, 10), (120, 3)])
def test_kid_matches_torch_fidelity(subset_size, subsets):
    from torch_fidelity.metric_kid import kid_features_to_metric

    rng = np.random.default_rng(6)
    f1 = torch.from_numpy(rng.normal(size=(150, 40)))
    f2 = torch.from_numpy(rng.normal(0.2, 1.1, size=(170, 40)))
    ref = kid_features_to_metric(f1, f2, kid_subsets=subsets, kid_subset_size=subset_size, verbose=False)
    mean, std = kernel_inception_distance(f1, f2, subsets=subsets, subset_size=subset_size)
    assert mean == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-10)
    assert std == pytest.approx(ref["kernel_inception_distance_std"], rel=1e-10)


def test_kid_needs_subset_size_samples():
    f = torch.randn(30, 8)
    with pytest.raises(NotEnoughSamplesError, match="KID subset size 1000 exceeds the samples available"):
        kernel_inception_distance(f, f)


def _tf_prc_full(f1, f2, k=3):
    from torch_fidelity.metric_prc import calculate_precision_recall_full

    return calculate_precision_recall_full(f1, f2, k, 10000)


@pytest.mark.parametrize("batch_size,column_block", [(7, 10_000), (64, 10_000), (1000, 10_000), (64, 45)])
def test_batched_precision_recall_equals_torch_fidelity_full(batch_size, column_block, monkeypatch):
    from onestep.benchmarks.metrics import prc

    monkeypatch.setattr(prc, "COLUMN_BLOCK", column_block)
    g = torch.Generator().manual_seed(7)
    gen = torch.randn(301, 10, generator=g) * 1.3 + 0.4
    real = torch.randn(257, 10, generator=g)
    precision, recall = _tf_prc_full(gen, real)
    out = precision_recall(gen, real, k=3, batch_size=batch_size)
    assert out["precision"] == pytest.approx(precision, abs=1e-12)
    assert out["recall"] == pytest.approx(recall, abs=1e-12)
    assert 0 < out["precision"] < 1 and 0 < out["recall"] < 1  # a non-trivial case


def test_precision_recall_never_builds_the_full_distance_matrix(monkeypatch):
    seen = []
    real_cdist = torch.cdist

    def spy(a, b, *args, **kwargs):
        seen.append((a.shape[0], b.shape[0]))
        return real_cdist(a, b, *args, **kwargs)

    monkeypatch.setattr(torch, "cdist", spy)
    gen, real = torch.randn(500, 6), torch.randn(400, 6)
    from onestep.benchmarks.metrics import prc

    monkeypatch.setattr(prc, "COLUMN_BLOCK", 120)
    precision_recall(gen, real, batch_size=50)
    assert seen and max(r for r, _ in seen) <= 50  # blocks of 50 x N, never N x N
    assert max(c for _, c in seen) <= 120  # cdist's copy of the support: one column block


def test_precision_recall_needs_more_than_k_samples():
    with pytest.raises(NotEnoughSamplesError, match="k=3 needs more than 3 samples"):
        precision_recall(torch.randn(3, 4), torch.randn(20, 4))


def test_inception_score_matches_torch_fidelity_and_analytic_cases():
    from torch_fidelity.metric_isc import isc_features_to_metric

    logits = torch.randn(503, 17, generator=torch.Generator().manual_seed(8)) * 3
    ref = isc_features_to_metric(logits, splits=10)
    mean, std = inception_score(logits, splits=10)
    assert mean == pytest.approx(ref["inception_score_mean"], rel=1e-10)
    assert std == pytest.approx(ref["inception_score_std"], rel=1e-10)
    # identical predictions: KL = 0 -> IS 1; confident, balanced over 10 classes -> IS 10
    assert inception_score(torch.zeros(100, 10), splits=2)[0] == pytest.approx(1.0)
    confident = torch.eye(10).repeat(20, 1) * 60.0
    assert inception_score(confident, splits=2, shuffle=False)[0] == pytest.approx(10.0, rel=1e-6)
