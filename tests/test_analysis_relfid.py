"""rel-FID building blocks: PD teachers on T(i, N), the two-step schedule, rel-FID of a model
against itself."""
import pytest
import torch

from onestep.benchmarks.analyses.common import measure
from onestep.methods.solvers.pd import pd_generator, rho_for_midpoint
from onestep.methods.core.config import ConfigError
from onestep.methods.solvers.generator import OneStepGenerator, load_generator, save_generator
from onestep.methods.solvers.schedules import edm_sigmas, reversed_index_sigma
from onestep.methods.zoo import build_network


@pytest.fixture(scope="module")
def student_net():
    torch.manual_seed(0)
    return build_network("digits-8x8-cond", precond="OneStepPrecond", sigma_max=80.0).eval()


@pytest.mark.parametrize("k", [2, 4, 10])
def test_pd_teacher_schedule_is_T_i_N(student_net, k):
    g = pd_generator(student_net, k)
    want = reversed_index_sigma(torch.arange(k, -1, -1), k)  # T(k, k) = 80 ... T(0, k) = 0.002
    got = g.sigmas()
    assert torch.allclose(got[:-1], want, rtol=1e-12, atol=0) and float(got[-1]) == 0.0


def test_pd_teacher_is_k_nested_network_steps(student_net):
    """H = F(F(x_t2, t2, t1), t1, t0): DDIM steps x <- D + (t_next / t)(x - D), by hand."""
    z = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    c = torch.eye(10)[:4]
    t = reversed_index_sigma(torch.tensor([2, 1, 0]), 2).tolist()
    with torch.no_grad():
        x = z.double() * t[0]
        for cur, nxt in zip(t[:-1], t[1:]):
            d = student_net(x, torch.tensor(cur, dtype=torch.float64), c)
            x = d + (nxt / cur) * (x - d)
        got = pd_generator(student_net, 2)(z, c)
    assert got.dtype == z.dtype
    assert torch.allclose(got.double(), x, atol=1e-5)


@pytest.mark.parametrize("s", [0.5, 2.5, 10.0, 40.0, 50.0])
def test_two_step_teacher_hits_the_requested_intermediate_sigma(student_net, s):
    rho = rho_for_midpoint(s)
    assert float(edm_sigmas(3, rho=rho, trailing_zero=False)[1]) == pytest.approx(s, rel=1e-9)
    g = pd_generator(student_net, 2, sigma_mid=s)
    assert g.sigmas()[:3].tolist() == pytest.approx([80.0, s, 0.002], rel=1e-9)


def test_two_step_sigma_out_of_range_and_k_mismatch(student_net):
    with pytest.raises(ConfigError, match="must lie in"):
        rho_for_midpoint(0.3)  # below sqrt(0.002 * 80) = 0.4
    with pytest.raises(ConfigError, match="must lie in"):
        rho_for_midpoint(80.0)
    with pytest.raises(ConfigError, match="too close to sigma_max"):
        rho_for_midpoint(70.0)
    with pytest.raises(ConfigError, match="two-step"):
        pd_generator(student_net, 4, sigma_mid=10.0)


def test_pd_teacher_saves_and_reloads_as_the_same_sampler(student_net, tmp_path):
    g = pd_generator(student_net, 2, sigma_mid=10.0)
    save_generator(tmp_path / "g", g)
    back = load_generator(tmp_path / "g")
    assert back.sigmas().tolist() == pytest.approx(g.sigmas().tolist(), rel=1e-12)
    z = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert torch.allclose(back(z, torch.eye(10)[:2]).float(), g(z, torch.eye(10)[:2]), atol=1e-6)


def test_one_step_model_has_rel_fid_zero_against_itself_up_to_the_data_floor(student_net, digits_feature_net):
    from onestep.benchmarks.datasets import load_digits

    G = OneStepGenerator(student_net, 80.0)
    data = load_digits(8, 1, split="train")
    seeds = list(range(200))
    rel = measure(G, G, "fd_digits", 200, seeds, "cpu", batch_size=100)
    absm = measure(G, data, "fd_digits", 200, seeds, "cpu", batch_size=100, data_floor=True)
    assert rel["metric"] == "rel-FD-digits"
    # same seeds: identical images, so rel-FID is 0 up to float error, far below the real-vs-real floor
    assert abs(rel["value"]) < 1e-3 * absm["floor"]
    # a different sampler of the same network is measurably apart
    other = measure(pd_generator(student_net, 2), G, "fd_digits", 200, seeds, "cpu", batch_size=100)
    assert other["value"] > 1e-3
