"""The SiD / SiDA / SiD2A contract functions (onestep.methods.losses.sid) against hand computations.

Values, and gradients with respect to the generator output y and the two denoisings, are
derived by hand from the formulas of note section 5 (official sida_loss.py); where the official
code uses no_grad (the weight factor) the gradient must stop.
"""
import math

import pytest
import torch
from torch.nn import functional as F

from onestep.methods.losses import (edm_lognormal_sigma, edm_loss_weight, sid_fake_score_loss, sid_generator_loss,
                                    sid_generator_sigma, sid_weight_factor, sida_discriminator_loss,
                                    sida_fake_score_total, sida_generator_adv_loss, sida_generator_total, sida_phase)


def test_generator_sigma_range():
    u = torch.tensor([0.0, 0.5, 1.0]).view(3, 1, 1, 1)
    s = sid_generator_sigma(u)
    assert s.shape == u.shape
    assert s[0].item() == pytest.approx(0.002, rel=1e-5)  # t = 0 -> sigma_min
    lo, hi = 0.002 ** (1 / 7), 80 ** (1 / 7)
    assert s[2].item() == pytest.approx((hi + 0.2 * (lo - hi)) ** 7, rel=1e-5)  # t = 0.8
    assert 24 < s[2].item() < 25  # never sigma_max = 80 with t_max = 800
    assert sid_generator_sigma(torch.ones(1), t_max=1000).item() == pytest.approx(80, rel=1e-5)
    assert bool((s[1:] > s[:-1]).all())


def test_lognormal_and_weight():
    assert edm_lognormal_sigma(torch.tensor([0.0])).item() == pytest.approx(math.exp(-1.2))
    assert edm_lognormal_sigma(torch.tensor([1.0])).item() == pytest.approx(1.0)
    assert edm_lognormal_sigma(torch.tensor([1.0]), p_mean=0.0, p_std=2.0).item() == pytest.approx(math.exp(2))
    sigma = torch.tensor([0.5, 2.0])
    assert torch.allclose(edm_loss_weight(sigma), 1 / sigma ** 2 + 4)  # (s^2 + 0.25)/(0.25 s^2)
    assert edm_loss_weight(torch.tensor(0.5)).item() == pytest.approx(8.0)


def test_weight_factor_is_mean_abs_clipped_and_detached():
    y = torch.tensor([[1.0, -1.0], [0.5, 0.5]]).view(2, 1, 2, 1).requires_grad_(True)
    yr = torch.tensor([[0.0, 0.0], [0.5, 0.5]]).view(2, 1, 2, 1).requires_grad_(True)
    w = sid_weight_factor(y, yr)
    assert w.shape == (2, 1, 1, 1) and w.dtype == torch.float32
    assert w.flatten().tolist() == pytest.approx([1.0, 1e-5])
    assert not w.requires_grad


def _sid_tensors(seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(3, 2, 4, 4, generator=g).requires_grad_(True)
    yr = torch.randn(3, 2, 4, 4, generator=g).requires_grad_(True)
    yf = torch.randn(3, 2, 4, 4, generator=g).requires_grad_(True)
    return y, yr, yf


def test_sid_generator_loss_value():
    y, yr, yf = (torch.tensor([v]).view(1, 1, 1, 1) for v in (0.0, 1.0, 0.5))
    w = torch.ones(1, 1, 1, 1)
    # (1 - 0.5) * ((1 - 0) - alpha (1 - 0.5))
    assert sid_generator_loss(y, yr, yf, 1.0, w).item() == pytest.approx(0.25)
    assert sid_generator_loss(y, yr, yf, 1.2, w).item() == pytest.approx(0.5 * (1 - 0.6))
    assert sid_generator_loss(y, yr, yf, 1.0, 2 * w).item() == pytest.approx(0.125)
    # default weight factor: mean |y - y_real| = 1
    assert sid_generator_loss(y, yr, yf, 1.0).item() == pytest.approx(0.25)


@pytest.mark.parametrize("alpha", [1.0, 1.2])
def test_sid_generator_loss_gradients(alpha):
    y, yr, yf = _sid_tensors()
    w = sid_weight_factor(y, yr)
    loss = sid_generator_loss(y, yr, yf, alpha)  # weight factor computed inside: no gradient through it
    gy, gr, gf = torch.autograd.grad(loss.sum(), (y, yr, yf))
    d, e = (yr - yf).detach(), (yr - y).detach()
    assert torch.allclose(gy, -d / w, atol=1e-6)  # only the explicit (y_real - y) term
    assert torch.allclose(gr, (e - alpha * d + (1 - alpha) * d) / w, atol=1e-5)
    assert torch.allclose(gf, (-(e - alpha * d) + alpha * d) / w, atol=1e-5)


def test_sid_generator_loss_reaches_y_through_the_denoisings():
    # y_real / y_fake are functions of y (the networks' inputs): gradients flow through them too.
    y = torch.randn(2, 1, 2, 2).requires_grad_(True)
    yr, yf = 0.5 * y, 0.25 * y
    loss = sid_generator_loss(y, yr, yf, 1.0)
    (g,) = torch.autograd.grad(loss.sum(), y)
    w = sid_weight_factor(y, yr)
    yd = y.detach()
    # L = 0.25 y ((-0.5 y) - 0.25 y) / w = -0.1875 y^2 / w  ->  dL/dy = -0.375 y / w
    assert torch.allclose(g, -0.375 * yd / w, atol=1e-6)


def test_fake_score_loss():
    yf = torch.tensor([1.0, 3.0]).view(2, 1, 1, 1).requires_grad_(True)
    y = torch.tensor([0.0, 1.0]).view(2, 1, 1, 1)
    sigma = torch.tensor([0.5, 1.0]).view(2, 1, 1, 1)
    loss = sid_fake_score_loss(yf, y, sigma)
    lam = 1 / sigma ** 2 + 4
    assert torch.allclose(loss, lam * torch.tensor([1.0, 4.0]).view(2, 1, 1, 1))
    (g,) = torch.autograd.grad(loss.sum(), yf)
    assert torch.allclose(g, 2 * lam * (yf.detach() - y))


def test_generator_adv_loss_groups_clamp_and_detach():
    logits = torch.tensor([0.0, 2.0, 12.0, -1.0]).view(4, 1, 1, 1).requires_grad_(True)
    w = torch.tensor([1.0, 2.0, 1.0, 4.0]).view(4, 1, 1, 1).requires_grad_(True)
    out = sida_generator_adv_loss(logits, w, group_size=2)
    sp = lambda v: math.log1p(math.exp(-v))  # noqa: E731  BCE(l, 1) = softplus(-l)
    m1, m2 = (sp(0) + sp(2)) / 2, (sp(10) + sp(-1)) / 2  # 12 is clamped to 10
    assert out.shape == (4, 1, 1, 1)
    assert out.flatten().tolist() == pytest.approx([m1, m1 / 2, m2, m2 / 4], rel=1e-6)
    gl, gw = torch.autograd.grad(out.sum(), (logits, w), allow_unused=True)
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731  d softplus(-l)/dl = -sigmoid(-l)
    # group mean over 2 elements; each sample's m is divided by its own w, and both samples share m
    want = [-sig(-0) / 2 * (1 + 1 / 2), -sig(-2) / 2 * (1 + 1 / 2), 0.0, -sig(1) / 2 * (1 + 1 / 4)]
    assert gl.flatten().tolist() == pytest.approx(want, rel=1e-5, abs=1e-7)
    assert gw is None or torch.count_nonzero(gw) == 0  # w detached
    # default group: the whole batch; maps (B, 1, h, w) averaged over all elements
    maps = torch.zeros(2, 1, 3, 3)
    assert sida_generator_adv_loss(maps, torch.ones(2, 1, 1, 1)).flatten().tolist() == pytest.approx([math.log(2)] * 2)
    with pytest.raises(ValueError, match="divide"):
        sida_generator_adv_loss(logits, w, group_size=3)


def test_discriminator_loss():
    lr = torch.tensor([0.0, 1.0, -2.0, 3.0]).view(4, 1, 1, 1).requires_grad_(True)
    lf = torch.tensor([0.0, -1.0, 20.0, 0.5]).view(4, 1, 1, 1).requires_grad_(True)
    weight = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(4, 1, 1, 1)
    out = sida_discriminator_loss(lr, lf, weight, group_size=2)
    sp = lambda v: math.log1p(math.exp(v)) if v < 30 else v  # noqa: E731  softplus
    g1 = ((sp(-0.0) + sp(-1.0)) / 2 + (sp(0.0) + sp(-1.0)) / 2) / 2
    g2 = ((sp(2.0) + sp(-3.0)) / 2 + (sp(20.0) + sp(0.5)) / 2) / 2  # no clamp on the fake logit 20
    assert out.flatten().tolist() == pytest.approx([g1, 2 * g1, 3 * g2, 4 * g2], rel=1e-6)
    (gf,) = torch.autograd.grad(out.sum(), lf)
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    # group 2: d/dl_fake of (w3 + w4) * softplus(l)/2/2
    assert gf[2].item() == pytest.approx((3 + 4) * sig(20.0) / 4, rel=1e-5)
    assert sida_discriminator_loss(torch.zeros(2, 1, 2, 2), torch.zeros(2, 1, 2, 2),
                                   torch.tensor([1.0, 3.0])).flatten().tolist() == pytest.approx(
        [math.log(2), 3 * math.log(2)])


def test_totals():
    sid = torch.full((2, 3, 2, 2), 0.5)  # sum 12, CHW 12
    adv = torch.tensor([1.0, 3.0]).view(2, 1, 1, 1)
    s = 100 / 4 * 12
    assert sida_generator_total(sid, None, 4, False).item() == pytest.approx(s)
    assert sida_generator_total(sid, adv, 4, False).item() == pytest.approx(s)
    assert sida_generator_total(sid, adv, 4, True).item() == pytest.approx(0.5 * s + 0.5 * 0.01 * 12 / 4 * 4)
    assert sida_generator_total(sid, adv, 4, True, lsg=1.0, lsg_gan=1.0).item() == pytest.approx(
        0.5 * 12 / 4 + 0.5 * 12 / 4 * 4)
    with pytest.raises(ValueError, match="adv_loss"):
        sida_generator_total(sid, None, 4, True)
    fs = torch.ones(2, 1, 2, 2)  # sum 8
    d = torch.tensor([2.0, 4.0]).view(2, 1, 1, 1)
    assert sida_fake_score_total(fs, d, 4).item() == pytest.approx(8 / 4 + 6 / 4)
    assert sida_fake_score_total(fs, d, 4, ls=2.0, lsd=0.5).item() == pytest.approx(2 * 8 / 4 + 0.5 * 6 / 4)
    assert sida_fake_score_total(fs, None, 4).item() == pytest.approx(2.0)


def test_phase_boundaries_are_strict():
    assert sida_phase(0) == (False, False)
    assert sida_phase(100_000) == (False, False)
    assert sida_phase(100_001) == (True, False)
    assert sida_phase(200_000) == (True, False)
    assert sida_phase(200_001) == (True, True)
    assert sida_phase(100_096) == (True, False)  # batch 256: first G step at iteration 391
    assert sida_phase(50, fake_only_nimg=10, sid_only_nimg=40) == (True, True)
