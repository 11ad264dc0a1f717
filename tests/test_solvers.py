"""Solvers and schedules against an exactly solvable teacher (data ~ N(m, s^2)).

For Gaussian data the ideal denoiser is D(x; sigma) = m + (x - m) s^2 / (s^2 + sigma^2) and the
probability-flow ODE dx/dsigma = (x - D)/sigma has the solution
x(sigma) - m = (x(sigma0) - m) sqrt(s^2 + sigma^2) / sqrt(s^2 + sigma0^2). The reference values
below are written out from that formula here, independently of the library's helpers.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from onestep.methods.core.config import ConfigError
from onestep.methods.solvers import (SOLVERS, GaussianDenoiser, OneStepGenerator, SolverGenerator, count_nfe,
                                     edm_sigmas, euler, exact_ode_solution, heun, logsnr_uniform_sigmas, make_sigmas,
                                     reversed_index_sigma, solve, time_uniform_sigmas)

M, S = 0.3, 0.5


def exact(x_start, sigma_start, sigma_end, m=M, s=S):
    """The closed-form PF-ODE solution, written out independently of the library."""
    return m + (x_start - m) * math.sqrt(s ** 2 + float(sigma_end) ** 2) / math.sqrt(s ** 2 + float(sigma_start) ** 2)


@pytest.fixture
def teacher():
    return GaussianDenoiser(mean=M, std=S)


@pytest.fixture
def x_start():
    g = torch.Generator().manual_seed(0)
    return torch.randn(8, 1, 2, 2, generator=g, dtype=torch.float64) * 80.0


class SpyDenoiser(torch.nn.Module):
    """Wraps a denoiser and records the noise levels it is called at."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, []
        for a in ("img_resolution", "img_channels", "label_dim", "sigma_min", "sigma_max", "sigma_data"):
            setattr(self, a, getattr(inner, a))

    def round_sigma(self, s):
        return self.inner.round_sigma(s)

    def forward(self, x, sigma, class_labels=None, force_fp32=False):
        self.calls.append(float(torch.as_tensor(sigma).reshape(-1)[0]))
        return self.inner(x, sigma, class_labels)


# --- schedules ------------------------------------------------------------------------------

def test_edm_sigmas_endpoints_rho_spacing_and_trailing_zero():
    sig = edm_sigmas(18)  # EDM defaults: 0.002..80, rho 7
    assert sig.dtype == torch.float64 and sig.shape == (19,)
    assert sig[0].item() == pytest.approx(80.0, rel=1e-12) and sig[17].item() == pytest.approx(0.002, rel=1e-12)
    assert sig[18].item() == 0.0
    # The rho schedule is uniform in sigma^(1/rho) (EDM eq. 5).
    root = sig[:18] ** (1 / 7)
    assert torch.allclose(root.diff(), root.diff()[0].expand(17), rtol=1e-10)
    assert edm_sigmas(5, trailing_zero=False).shape == (5,)


def test_edm_sigmas_applies_round_sigma():
    sig = edm_sigmas(6, round_sigma=lambda s: torch.round(s))
    assert torch.equal(sig[:-1], torch.round(edm_sigmas(6)[:-1]))


def test_reversed_index_schedule_is_edm_reversed():
    # Paper 000 B.2: T(i, N) indexes from sigma_min (i = 0) to sigma_max (i = N): the EDM
    # schedule with N + 1 levels read backwards.
    N = 18
    T = torch.stack([reversed_index_sigma(i, N) for i in range(N + 1)])
    assert T[0].item() == pytest.approx(0.002) and T[N].item() == pytest.approx(80.0)
    assert torch.allclose(T.flip(0), edm_sigmas(N + 1, trailing_zero=False), rtol=1e-12)
    assert torch.allclose(reversed_index_sigma(torch.tensor([0, 9, 18]), N), T[[0, 9, 18]])
    with pytest.raises(ValueError, match="index"):
        reversed_index_sigma(19, N)


def test_logsnr_and_time_uniform_schedules():
    lg = logsnr_uniform_sigmas(10)
    assert torch.allclose(torch.log(lg).diff(), torch.log(lg).diff()[0].expand(9), rtol=1e-10)
    tu = time_uniform_sigmas(10)
    assert tu[0].item() == pytest.approx(80.0, rel=1e-6) and tu[-1].item() == pytest.approx(0.002, rel=1e-6)
    assert (tu.diff() < 0).all()
    # VP time grid: sigma(t) = sqrt(exp(beta_d t^2/2 + beta_min t) - 1) with t uniform on [1e-3, 1].
    a_min, a_max, eps = math.log(0.002 ** 2 + 1), math.log(80.0 ** 2 + 1), 1e-3
    beta_d = 2 * (a_min / eps - a_max) / (eps - 1)
    beta_min = a_max - beta_d / 2
    t = np.linspace(1, eps, 10)
    assert np.allclose(tu.numpy(), np.sqrt(np.expm1(beta_d * t ** 2 / 2 + beta_min * t)), rtol=1e-9)
    with pytest.raises(ConfigError, match="logsnr"):
        make_sigmas("logsrn", 10)


def test_bad_schedules_are_rejected(teacher, x_start):
    with pytest.raises(ValueError, match="decrease"):
        euler(teacher, x_start, torch.tensor([1.0, 2.0, 0.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="positive"):
        euler(teacher, x_start, torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        edm_sigmas(10, sigma_min=5.0, sigma_max=1.0)


# --- convergence order ----------------------------------------------------------------------

def _errors(solver, teacher, x_start, steps, schedule="edm", **opts):
    errs = []
    for n in steps:
        sig = make_sigmas(schedule, n + 1, trailing_zero=False)  # n steps, ending at sigma_min
        x, _ = solve(solver, teacher, x_start * (sig[0] / 80.0), sig, **opts)
        ref = exact(x_start * (sig[0] / 80.0), sig[0], sig[-1])
        errs.append((x - ref).abs().max().item())
    return np.array(errs)


def _order(steps, errs):
    return -np.polyfit(np.log(steps), np.log(errs), 1)[0]


@pytest.mark.parametrize("solver, order, steps, opts", [
    ("euler", 1, [32, 64, 128, 256], {}),
    ("heun", 2, [32, 64, 128, 256], {}),
    ("dpm_solver_2", 2, [32, 64, 128, 256], {}),
    ("dpm_solver_pp_3m", 3, [32, 64, 128, 256], {"lower_order_final": False, "corrected_d2": True}),
])
@pytest.mark.parametrize("schedule", ["edm", "logsnr"])
def test_solvers_reach_their_order(solver, order, steps, opts, schedule, teacher, x_start):
    errs = _errors(solver, teacher, x_start, steps, schedule, **opts)
    assert (np.diff(errs) < 0).all(), errs
    measured = _order(steps, errs)
    if schedule == "edm":  # EDM's rho = 7 schedule, the one used for sampling: the nominal order
        assert abs(measured - order) < 0.3, (errs, measured)
    else:  # uniform logSNR steps: at least the nominal order (3M converges faster on this problem)
        assert measured > order - 0.3, (errs, measured)


def test_published_dpmpp_3m_update_is_second_order(teacher, x_start):
    """The published 3M update (dpm-solver, diffusers, diff-sampler) halves the x0'' term, so
    it converges with order 2; the default follows it (SFD's results come from it)."""
    steps = [64, 128, 256]
    published = _errors("dpm_solver_pp_3m", teacher, x_start, steps, "logsnr", lower_order_final=False)
    corrected = _errors("dpm_solver_pp_3m", teacher, x_start, steps, "logsnr", lower_order_final=False,
                        corrected_d2=True)
    assert abs(_order(steps, published) - 2) < 0.3, published
    assert (corrected < published).all()


def test_dpmpp_third_order_update_local_error_is_fourth_order(teacher):
    """Exact history (x0 predictions on the true trajectory) -> one 3M step has local error
    O(h^4) with corrected_d2, the defining property of a third-order multistep method."""
    from onestep.methods.solvers.samplers import _dpmpp_update

    x_T = torch.full((1, 1, 1, 1), 1.3 * 80, dtype=torch.float64)
    errs, hs = [], [0.2, 0.1, 0.05, 0.025]
    for h in hs:
        sig = [torch.tensor(math.exp(-k * h), dtype=torch.float64) for k in (-2, -1, 0, 1)]  # lambda = -log sigma
        xs = [exact(x_T, 80.0, s) for s in sig]
        den = [teacher(x, s) for x, s in zip(xs, sig)]
        step = _dpmpp_update(xs[2], sig[3], sig[:3], den[:3], 3, corrected_d2=True)
        errs.append((step - xs[3]).abs().item())
    assert abs(_order(1 / np.array(hs), np.array(errs)) - 4) < 0.4, errs


@pytest.mark.parametrize("solver, tol", [("euler", 1e-2), ("heun", 3e-4), ("dpm_solver_2", 3e-4),
                                         ("dpm_solver_pp_3m", 3e-4)])
def test_many_steps_agree_with_exact_solution(solver, tol, teacher, x_start):
    sig = edm_sigmas(512)  # with the trailing 0, as used for sampling
    x, _ = solve(solver, teacher, x_start, sig)
    ref = exact(x_start, 80.0, 0.0)  # x - m is of order s = 0.5 here
    assert (x - ref).abs().max().item() < tol


@pytest.mark.parametrize("solver", sorted(SOLVERS))
@pytest.mark.parametrize("to_zero", [False, True])
def test_per_sample_schedules_equal_separate_solves(solver, to_zero, teacher):
    x = torch.randn(3, 1, 2, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    per_sample = torch.stack([edm_sigmas(5, sigma_max=smax, trailing_zero=to_zero) for smax in (80.0, 10.0, 1.5)], 1)
    batched, nfe = solve(solver, teacher, x * per_sample[0].reshape(-1, 1, 1, 1), per_sample, afs=True)
    for b in range(3):
        alone, nfe_b = solve(solver, teacher, x[b:b + 1] * per_sample[0, b], per_sample[:, b], afs=True)
        assert torch.allclose(batched[b:b + 1], alone, rtol=1e-12, atol=1e-12) and nfe == nfe_b
    with pytest.raises(ValueError, match="columns"):
        solve(solver, teacher, x, per_sample[:, :2])


# --- NFE, AFS, churn ------------------------------------------------------------------------

@pytest.mark.parametrize("solver, nfe", [("euler", 18), ("heun", 35), ("dpm_solver_2", 35), ("dpm_solver_pp_3m", 18)])
def test_nfe_reported_and_counted(solver, nfe, teacher, x_start):
    for afs in (False, True):
        spy = SpyDenoiser(teacher)
        _, reported = solve(solver, spy, x_start, edm_sigmas(18), afs=afs)
        assert reported == len(spy.calls) == nfe - afs
        assert count_nfe(solver, edm_sigmas(18), afs=afs) == nfe - afs
        # AFS: the network is never evaluated at sigma_max.
        assert (80.0 in spy.calls) != afs


def test_afs_direction_is_close_to_the_true_one_at_sigma_max():
    # m = 0, s = 1: the exact first direction is x sigma / (1 + sigma^2); AFS uses x / sqrt(1 + sigma^2).
    unit = GaussianDenoiser(mean=0.0, std=1.0)
    z = torch.randn(64, 1, 2, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    sig = edm_sigmas(18)
    for solver in SOLVERS:
        a, _ = solve(solver, unit, z * 80, sig, afs=True)
        b, _ = solve(solver, unit, z * 80, sig, afs=False)
        assert (a - b).abs().max().item() < 1e-3, solver
        assert not torch.equal(a, b)


def test_heun_churn_draws_noise_per_step_and_stays_on_distribution(teacher):
    n = 20000
    z = torch.randn(n, 1, 1, 1, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    draws = []

    def randn_like(x):
        draws.append(x.shape)
        return torch.randn(x.shape, generator=gen, dtype=x.dtype)

    gen = torch.Generator().manual_seed(3)
    x, nfe = heun(teacher, z * 80, edm_sigmas(64), S_churn=40, S_min=0.05, S_max=50, randn_like=randn_like)
    assert len(draws) == 64 and nfe == 127
    assert x.mean().item() == pytest.approx(M, abs=0.015) and x.std().item() == pytest.approx(S, rel=0.03)
    deterministic, _ = heun(teacher, z * 80, edm_sigmas(64))
    assert (x - deterministic).abs().max().item() > 1e-3  # churn did change the samples


@pytest.mark.parametrize("solver, steps", [("euler", 256), ("heun", 64), ("dpm_solver_2", 64),
                                           ("dpm_solver_pp_3m", 32)])
def test_samples_from_noise_have_the_data_distribution(solver, steps, teacher):
    """z * 80 with z ~ N(0, 1) through the ODE ends at N(m, s^2): the exact map gives
    mean m (1 - s/sqrt(s^2 + 80^2)) and std s 80 / sqrt(s^2 + 80^2). (At 18 steps this
    narrow Gaussian is visibly off: Heun's std is 6% high, Euler's 15% low.)"""
    z = torch.randn(20000, 1, 1, 1, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    G = SolverGenerator(teacher, solver, steps)
    x = G(z)
    r = math.sqrt(S ** 2 + 80 ** 2)
    assert x.mean().item() == pytest.approx(M * (1 - S / r), abs=0.012)
    assert x.std().item() == pytest.approx(S * 80 / r, rel=0.02)


# --- generators -----------------------------------------------------------------------------

def test_solver_generator_matches_edm_defaults(teacher):
    G = SolverGenerator(teacher)
    assert (G.solver, G.num_steps, G.nfe, G.uses_per_seed_noise) == ("heun", 18, 35, False)
    assert torch.allclose(G.sigmas(), edm_sigmas(18))
    z = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    x = G(z)
    assert x.dtype == torch.float64
    assert torch.allclose(x, heun(teacher, z.double() * 80, edm_sigmas(18)).x)
    # The noise range is clipped to what the network supports (EDM generate.py).
    narrow = GaussianDenoiser(mean=M, std=S, sigma_min=0.01, sigma_max=20.0)
    Gn = SolverGenerator(narrow, "euler", 5)
    assert Gn.sigmas()[0].item() == pytest.approx(20.0) and Gn.sigmas()[-2].item() == pytest.approx(0.01)
    assert SolverGenerator(teacher, "heun", 18, S_churn=10).uses_per_seed_noise


def test_solver_generator_rejects_unknown_solver_and_option(teacher):
    with pytest.raises(ConfigError, match="did you mean 'heun'"):
        SolverGenerator(teacher, "huen")
    with pytest.raises(ConfigError, match="S_churn"):
        SolverGenerator(teacher, "heun", 18, S_chrun=1)
    with pytest.raises(ConfigError, match="no option 'S_churn'"):
        SolverGenerator(teacher, "euler", 18, S_churn=1)
    with pytest.raises(TypeError, match="Denoiser"):
        SolverGenerator(torch.nn.Identity())


def test_one_step_generator_is_one_call_at_sigma_with_gradients(teacher):
    G = OneStepGenerator(teacher, 2.5)  # SiD's sigma_init
    spy = SpyDenoiser(teacher)
    Gs = OneStepGenerator(spy, 2.5)
    z = torch.randn(3, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    x = Gs(z)
    assert spy.calls == [2.5] and Gs.nfe == 1
    assert torch.allclose(x, M + (2.5 * z - M) * S ** 2 / (S ** 2 + 2.5 ** 2))
    x.sum().backward()
    assert z.grad is not None and torch.allclose(z.grad, torch.full_like(z, 2.5 * S ** 2 / (S ** 2 + 2.5 ** 2)))
    assert OneStepGenerator(teacher).sigma == 80.0  # default: the denoiser's sigma_max (GDD/D2O)
    with pytest.raises(ValueError, match="sigma"):
        OneStepGenerator(teacher, -1.0)
    assert G.img_resolution == teacher.img_resolution


def test_exact_solution_helper_matches_formula(x_start):
    assert torch.allclose(exact_ode_solution(x_start, 80.0, 0.002, M, S), exact(x_start, 80.0, 0.002))
