"""SiD / SiDA smoke presets on the digits teacher must clearly improve the one-step generator.

The starting point is the teacher itself as SiD's one-step generator, D(2.5 z; 2.5) (paper 002:
G initialised from the teacher at sigma_init = 2.5); FD-digits (1000 samples vs all digits,
128-d digits-net features, computed with numpy/scipy in test_gdd_smoke) must fall below half of
it after the smoke preset (100 updates at batch 64; SiDA's phase boundaries shortened to
1.6k / 3.2k images for smoke only). Measured (issue 12): sid 74.1 -> 10.3, sida 74.1 -> 14.1.
Checked by hand that it can fail: flipping the sign of the SiD generator loss gives sid 74.1 ->
870.0 and sida 74.1 -> 1040.2; swapping teacher and fake score in the generator loss gives
sid 74.1 -> 715.9 and sida 74.1 -> 839.3.
"""
import pytest
import torch

from onestep.benchmarks.datasets import load_digits, to_model_range
from onestep.methods.solvers import OneStepGenerator

from test_gdd_smoke import IMPROVEMENT, embed, fd_digits, run_smoke


@pytest.fixture(scope="module")
def sid_setup(digits_teacher, digits_feature_net):
    ds = load_digits(8, 1, "all")
    real = embed(digits_feature_net, to_model_range(torch.as_tensor(ds.images)))
    init = fd_digits(OneStepGenerator(digits_teacher, sigma=2.5), digits_feature_net, real, 10)
    return ds, real, init


@pytest.mark.parametrize("method", ["sid", "sida"])
def test_smoke_preset_improves_fd(method, sid_setup, digits_teacher, digits_feature_net, tmp_path):
    ds, real, init = sid_setup
    m, result, seconds = run_smoke(method, "smoke", digits_teacher, ds, tmp_path)
    final = fd_digits(result.generator, digits_feature_net, real, 10)
    print(f"{method}/smoke: FD-digits {init:.1f} -> {final:.1f} in {result.step} steps, {seconds:.0f}s")
    assert result.step == 100
    assert final < IMPROVEMENT * init, f"{method}/smoke: FD-digits {init:.1f} -> {final:.1f}"
