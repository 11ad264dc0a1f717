"""Frequency helpers of onestep.benchmarks.analyses.frequency against known answers and numpy."""
import math

import numpy as np
import pytest
import torch

from onestep.benchmarks.analyses.frequency import (enhanced_centroid, log_fft_difference, log_magnitude,
                                                   radial_average, radial_profile)


def _wave(h, w, fy, fx, phase=0.3):
    y = torch.arange(h, dtype=torch.float64)[:, None]
    x = torch.arange(w, dtype=torch.float64)[None, :]
    return torch.cos(2 * math.pi * (fy * y / h + fx * x / w) + phase)


@pytest.mark.parametrize("fy,fx,radius", [(0, 3, 3), (5, 0, 5), (3, 4, 5), (0, 7, 7)])
def test_radial_average_of_a_pure_sinusoid_peaks_at_its_frequency(fy, fx, radius):
    img = _wave(32, 32, fy, fx)[None, None]
    prof = radial_average(log_magnitude(img))[0, 0]
    assert int(prof.argmax()) == radius
    # everything away from that ring is ~0 (log(|FFT|+1) of numerical zeros)
    others = torch.cat([prof[:radius], prof[radius + 1:]])
    assert float(others.abs().max()) < 1e-9 < float(prof[radius])


def test_radial_average_equals_a_hand_loop():
    rng = np.random.default_rng(0)
    spec = rng.normal(size=(2, 6, 7))
    got = radial_average(torch.from_numpy(spec)).numpy()
    h, w = 6, 7
    sums, counts = {}, {}
    for i in range(h):
        for j in range(w):
            r = int(round(math.hypot(i - h // 2, j - w // 2)))
            sums.setdefault(r, np.zeros(2))
            sums[r] += spec[:, i, j]
            counts[r] = counts.get(r, 0) + 1
    want = np.stack([sums[r] / counts[r] for r in range(max(sums) + 1)], axis=1)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_log_fft_difference_matches_numpy_and_is_antisymmetric():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(3, 2, 8, 8, generator=g), torch.randn(3, 2, 8, 8, generator=g)
    ref = lambda x: np.log(np.abs(np.fft.fftshift(np.fft.fft2(x.numpy().astype(np.float64)), axes=(-2, -1))) + 1)
    np.testing.assert_allclose(log_fft_difference(a, b).numpy(), ref(a) - ref(b), atol=1e-12)
    assert torch.equal(log_fft_difference(a, a), torch.zeros(3, 2, 8, 8, dtype=torch.float64))
    assert torch.allclose(log_fft_difference(a, b), -log_fft_difference(b, a))
    with pytest.raises(ValueError, match="shapes differ"):
        log_fft_difference(a, b[:, :1])


def test_radial_profile_of_a_scaled_copy_is_negative_everywhere_and_centroid():
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    prof = radial_profile(0.5 * x, x)  # halving every frequency: log(|F|/2+1) < log(|F|+1)
    assert (prof < 0).all()
    assert math.isnan(enhanced_centroid(prof))
    assert enhanced_centroid(torch.tensor([0.0, 0.0, 2.0, 0.0])) == 2.0
    assert enhanced_centroid(torch.tensor([1.0, -5.0, 0.0, 1.0])) == 1.5
