"""Smoke presets on the digits teacher must clearly improve the one-step generator.

FD-digits (1000 samples vs the real digits, 128-d digits-net features) of the teacher used as a
one-step generator at sigma_max is the starting point (paper 000 B.4 init); after the
method's smoke preset (100 updates at batch 64) it must fall below half of that. Verified by
hand: flipping the sign of the generator loss, or feeding the discriminator fakes as reals,
makes the GDD case fail (see the report of issue 4).
"""
import time

import numpy as np
import pytest
import scipy.linalg
import torch

from onestep.benchmarks.datasets import load_digits, to_model_range
from onestep.methods.solvers import OneStepGenerator
from onestep.methods.zoo import OneStepPrecond

# FD helpers, computed here with numpy/scipy (independent of the method code); the FD-digits
# features are the digits net's 128-d `embed`.
N_SAMPLES = 1000


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


@torch.no_grad()
def embed(net, images: torch.Tensor) -> np.ndarray:
    return torch.cat([net.embed(images[i:i + 500]) for i in range(0, len(images), 500)]).double().numpy()


@torch.no_grad()
def generate(generator, n: int, label_dim: int, seed: int = 123) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, generator.img_channels, generator.img_resolution, generator.img_resolution, generator=g)
    labels = torch.nn.functional.one_hot(torch.arange(n) % label_dim, label_dim).float() if label_dim else None
    generator.eval()
    out = torch.cat([generator(z[i:i + 250], None if labels is None else labels[i:i + 250]) for i in range(0, n, 250)])
    return out.float().clamp(-1, 1)


def fd_digits(generator, feature_net, real_features: np.ndarray, label_dim: int) -> float:
    imgs = generate(generator, N_SAMPLES, label_dim)
    if not torch.isfinite(imgs).all():
        return float("inf")
    return frechet_distance(embed(feature_net, imgs), real_features)


def run_smoke(method_name: str, preset: str, teacher, dataset, run_dir, overrides=None):
    """Train a method's smoke preset with the real loop; returns (method, result, seconds)."""
    from onestep.benchmarks.training import instantiate_method, train
    from onestep.benchmarks.training.build import data_spec_of

    method, loop = instantiate_method(method_name, preset, overrides or {}, teacher=teacher,
                                      data_spec=data_spec_of(dataset), device="cpu")
    t0 = time.perf_counter()
    result = train(method, dataset, loop, run_dir, resume=False, log=lambda s: None)
    return method, result, time.perf_counter() - t0


IMPROVEMENT = 0.5  # final FD must be below half the initial FD


@pytest.fixture(scope="module")
def digits_setup(digits_teacher, digits_feature_net):
    ds = load_digits(8, 1, "all")
    real = embed(digits_feature_net, to_model_range(torch.as_tensor(ds.images)))
    init = fd_digits(OneStepGenerator(OneStepPrecond.from_teacher(digits_teacher)), digits_feature_net, real, 10)
    return ds, real, init


@pytest.mark.parametrize("method,preset", [("gdd", "smoke"), ("gdd", "smoke-i"), ("cd", "smoke")])
def test_smoke_preset_improves_fd(method, preset, digits_setup, digits_teacher, digits_feature_net, tmp_path):
    ds, real, init = digits_setup
    m, result, seconds = run_smoke(method, preset, digits_teacher, ds, tmp_path)
    final = fd_digits(result.generator, digits_feature_net, real, 10)
    print(f"{method}/{preset}: FD-digits {init:.1f} -> {final:.1f} in {result.step} steps, {seconds:.0f}s")
    assert result.step == 100
    assert final < IMPROVEMENT * init, f"{method}/{preset}: FD-digits {init:.1f} -> {final:.1f}"
