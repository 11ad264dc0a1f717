"""The DMD / DMD2 smoke presets on the digits teacher must clearly improve the one-step generator.

Start: the teacher as G(z) = D(80 z; 80) (DMD's initialisation), FD-digits about 120 (1000
samples, digits-net features, helpers of test_gdd_smoke). After the smoke preset it must fall
below half of that. `dmd` first builds its 2,000-pair Heun-18 dataset of the session teacher
(cached under $ONESTEP_CACHE; about a minute on 2 free cores). Verified by hand: with the real
and fake scores swapped in the DM gradient the generator diverges and this test fails (report
of issue 13).
"""
import copy

import pytest

from onestep.methods.solvers import OneStepGenerator

from test_gdd_smoke import IMPROVEMENT, digits_setup, fd_digits, run_smoke  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def dmd_init_fd(digits_setup, digits_teacher, digits_feature_net):
    _, real, _ = digits_setup
    return fd_digits(OneStepGenerator(copy.deepcopy(digits_teacher), sigma=80.0), digits_feature_net, real, 10)


@pytest.mark.parametrize("method,steps", [("dmd", 100), ("dmd2", 200)])
def test_dmd_smoke_improves_fd(method, steps, digits_setup, dmd_init_fd, digits_teacher, digits_feature_net, tmp_path):
    ds, real, _ = digits_setup
    m, result, seconds = run_smoke(method, "smoke", digits_teacher, ds, tmp_path)
    final = fd_digits(result.generator, digits_feature_net, real, 10)
    print(f"{method}/smoke: FD-digits {dmd_init_fd:.1f} -> {final:.1f} in {result.step} steps, {seconds:.0f}s")
    assert result.step == steps
    assert final < IMPROVEMENT * dmd_init_fd, f"{method}/smoke: FD-digits {dmd_init_fd:.1f} -> {final:.1f}"
