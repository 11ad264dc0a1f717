"""Preconditioner formulas against hand-computed values (EDM Table 1; GDD appendix B.4).

The raw network is replaced by a probe that records what it receives (c_in * x and c_noise)
and returns a known constant F, so D = c_skip * x + c_out * F exposes every coefficient.
Expected numbers are worked out by hand / with `math` from the papers' formulas.
"""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from onestep.methods.core.config import ConfigError
from onestep.methods.zoo import (DDPMPP, EDMPrecond, OneStepPrecond, VEPrecond, VPPrecond, build_network,
                                 iDDPMPrecond, network_config)

F_VALUE = 3.0


class Probe(nn.Module):
    def __init__(self, out_factor=1):
        super().__init__()
        self.out_factor = out_factor
        self.init_kwargs = {}

    def forward(self, x, noise_labels, class_labels=None, **kw):
        self.seen_x, self.seen_noise = x.clone(), noise_labels.clone()
        return torch.full((x.shape[0], x.shape[1] * self.out_factor, *x.shape[2:]), F_VALUE, dtype=x.dtype)


TINY = dict(img_resolution=8, img_channels=1, model_type="SongUNet", model_channels=16, channel_mult=[1, 2],
            num_blocks=1, attn_resolutions=[], dropout=0, **DDPMPP)


def probe(net, out_factor=1):
    net.model = Probe(out_factor)
    return net


def measure(net, sigma, x_value=2.0):
    """(c_skip, c_out, c_in, c_noise) recovered from one call with constant x and F."""
    x = torch.full((1, 1, 8, 8), x_value)
    with torch.no_grad():
        d = net(x, torch.tensor([sigma]))
    c_in = (net.model.seen_x / x).flatten()[0].item()
    c_noise = net.model.seen_noise.item()
    # Second call with another x separates c_skip from c_out.
    with torch.no_grad():
        d2 = net(2 * x, torch.tensor([sigma]))
    c_skip = ((d2 - d) / x).flatten()[0].item()
    c_out = ((d - c_skip * x) / F_VALUE).flatten()[0].item()
    return c_skip, c_out, c_in, c_noise


# EDM, sigma_data = 0.5: c_skip = 0.25/(s^2+0.25), c_out = 0.5 s/sqrt(s^2+0.25),
# c_in = 1/sqrt(s^2+0.25), c_noise = ln(s)/4; worked out by hand.
EDM_CASES = [
    (1.0, 0.2, 0.4472135955, 0.894427191, 0.0),
    (0.5, 0.5, 0.3535533906, 1.4142135624, -0.1732867951),
    (80.0, 3.9060974e-05, 0.4999902347, 0.0124997559, 1.0955066587),
]


@pytest.mark.parametrize("sigma, c_skip, c_out, c_in, c_noise", EDM_CASES)
def test_edm_coefficients(sigma, c_skip, c_out, c_in, c_noise):
    got = measure(probe(EDMPrecond(**TINY)), sigma)
    assert got == pytest.approx((c_skip, c_out, c_in, c_noise), rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("sigma", [0.1, 1.0, 20.0])
def test_ve_coefficients(sigma):
    # EDM Table 1, VE: c_skip 1, c_out sigma, c_in 1, c_noise ln(sigma / 2).
    got = measure(probe(VEPrecond(**TINY)), sigma)
    assert got == pytest.approx((1.0, sigma, 1.0, math.log(0.5 * sigma)), rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("sigma", [0.1, 1.0, 20.0])
def test_vp_coefficients(sigma):
    # EDM Table 1, VP: c_skip 1, c_out -sigma, c_in 1/sqrt(sigma^2+1), c_noise (M-1) sigma^-1(sigma),
    # sigma^-1(s) = (sqrt(beta_min^2 + 2 beta_d ln(s^2+1)) - beta_min) / beta_d, beta_d 19.9, beta_min 0.1.
    t = (math.sqrt(0.1 ** 2 + 2 * 19.9 * math.log(sigma ** 2 + 1)) - 0.1) / 19.9
    got = measure(probe(VPPrecond(**TINY)), sigma)
    assert got == pytest.approx((1.0, -sigma, 1 / math.sqrt(sigma ** 2 + 1), 999 * t), rel=1e-4, abs=1e-6)


def test_vp_noise_range():
    # EDM Table 1 / appendix: sigma(t) = sqrt(exp(0.5 beta_d t^2 + beta_min t) - 1), t in [1e-5, 1].
    net = VPPrecond(**TINY)
    # EDM evaluates this in float32, where exp(1e-6) - 1 cancels to 2^-20: sigma_min = 2^-10,
    # 2.4% below the exact 1.0005e-3. We keep EDM's value (its checkpoints carry it).
    assert net.sigma_min == pytest.approx(math.sqrt(math.exp(0.5 * 19.9 * 1e-10 + 0.1 * 1e-5) - 1), rel=0.03)
    assert net.sigma_max == pytest.approx(math.sqrt(math.exp(0.5 * 19.9 + 0.1) - 1), rel=1e-5)  # ~152


def test_iddpm_grid_and_coefficients():
    # u_{j-1} = sqrt((u_j^2 + 1) / max(abar(j-1)/abar(j), C_1) - 1), abar(j) = sin(pi/2 j / (M (C_2+1)))^2.
    M, C1, C2 = 1000, 0.001, 0.008
    abar = lambda j: math.sin(0.5 * math.pi * j / M / (C2 + 1)) ** 2
    u = [0.0] * (M + 1)
    for j in range(M, 0, -1):
        u[j - 1] = math.sqrt((u[j] ** 2 + 1) / max(abar(j - 1) / abar(j), C1) - 1)
    kw = dict(TINY, model_type="DhariwalUNet", model_channels=64)
    for k in ("embedding_type", "channel_mult_noise", "encoder_type", "decoder_type", "resample_filter"):
        kw.pop(k)
    net = probe(iDDPMPrecond(**kw), out_factor=2)
    # float32 recursion (as EDM) vs float64 here: agreement to ~5e-4 relative at the small end.
    torch.testing.assert_close(net.u.double(), torch.tensor(u, dtype=torch.float64), rtol=1e-3, atol=1e-6)
    assert net.sigma_min == pytest.approx(0.0064, abs=1e-4)  # EDM Table 1: iDDPM sigma_min 0.0064
    j = 700
    c_skip, c_out, c_in, c_noise = measure(net, u[j])
    assert (c_skip, c_out, c_in, c_noise) == pytest.approx((1.0, -u[j], 1 / math.sqrt(u[j] ** 2 + 1), M - 1 - j), rel=1e-4)


# GDD appendix B.4 (paper 000) with sigma_data 0.5, eps 0.002:
# c_skip = 0.25 / ((t-0.002)^2 + 0.25), c_out = 0.5 (t-0.002) / sqrt(0.25 + t^2); worked by hand.
ONESTEP_CASES = [
    (0.002, 1.0, 0.0),
    (1.0, 0.25 / (0.998 ** 2 + 0.25), 0.5 * 0.998 / math.sqrt(1.25)),
    (80.0, 3.90634e-05, 0.4999779),
]


@pytest.mark.parametrize("sigma, c_skip, c_out", ONESTEP_CASES)
def test_onestep_coefficients(sigma, c_skip, c_out):
    got = measure(probe(OneStepPrecond(**TINY)), sigma)
    assert got == pytest.approx((c_skip, c_out, 1 / math.sqrt(0.25 + sigma ** 2), math.log(sigma) / 4), rel=1e-5, abs=1e-7)


def test_onestep_at_sigma_max_ignores_input_and_outputs_the_network():
    net = OneStepPrecond(**TINY)
    assert (net.sigma_min, net.sigma_max, net.epsilon) == (0.002, 80.0, 0.002)
    c_skip, c_out, _, _ = measure(probe(net), net.sigma_max)
    assert c_skip < 1e-4                           # "c_skip ~ 0"
    assert c_out / net.sigma_data == pytest.approx(1, abs=1e-4)  # "c_out ~ 1" in units of sigma_data


def test_onestep_boundary_condition_is_identity():
    torch.manual_seed(0)
    net = OneStepPrecond(**TINY, label_dim=10)
    x = torch.randn(3, 1, 8, 8) * 0.002
    with torch.no_grad():
        torch.testing.assert_close(net(x, 0.002, torch.tensor([1, 2, 3])), x)


def test_from_teacher_copies_weights_and_matches_edm_away_from_eps():
    torch.manual_seed(0)
    teacher = build_network("digits-8x8-cond")
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    student = OneStepPrecond.from_teacher(teacher)
    assert isinstance(student, OneStepPrecond) and student.sigma_max == 80.0
    for (k, a), (k2, b) in zip(teacher.state_dict().items(), student.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    assert student.state_dict().keys() == teacher.state_dict().keys()
    # The copy is independent of the teacher.
    with torch.no_grad():
        next(student.parameters()).add_(1.0)
    assert not torch.equal(next(student.parameters()), next(teacher.parameters()))
    # Same F: D_student - c_skip' x = c_out'/c_out * (D_teacher - c_skip x) at any sigma.
    student = OneStepPrecond.from_teacher(teacher)
    z, labels = torch.randn(2, 1, 8, 8), torch.tensor([4, 5])
    s = 80.0
    with torch.no_grad():
        dt, ds = teacher(z * s, s, labels), student(z * s, s, labels)
        g = student.generate(z, labels)
    sd, eps = 0.5, 0.002
    f_t = (dt - sd ** 2 / (s ** 2 + sd ** 2) * z * s) / (s * sd / math.sqrt(s ** 2 + sd ** 2))
    f_s = (ds - sd ** 2 / ((s - eps) ** 2 + sd ** 2) * z * s) / (sd * (s - eps) / math.sqrt(sd ** 2 + s ** 2))
    torch.testing.assert_close(f_s, f_t, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(g, ds)
    assert network_config(student)["class"] == "OneStepPrecond"
    json.dumps(network_config(student))


def test_from_teacher_refuses_other_parameterizations_and_bad_overrides():
    with pytest.raises(TypeError, match="EDMPrecond teacher"):
        OneStepPrecond.from_teacher(VPPrecond(**TINY))
    with pytest.raises(ConfigError, match="model_channels"):
        OneStepPrecond.from_teacher(EDMPrecond(**TINY), model_channels=8)
    s = OneStepPrecond.from_teacher(EDMPrecond(**TINY), sigma_max=40.0)
    assert s.sigma_max == 40.0
