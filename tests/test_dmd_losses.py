"""DMD / DMD2 pure losses (methods/losses/dmd.py) against hand computations.

The same functions were compared with tianweiy/DMD2 main/edm/edm_guidance.py
(compute_distribution_matching_loss, compute_loss_fake, the GAN losses) on identical tensors
with stand-in networks: max abs difference 0.0 (see the report of issue 13).
"""
import math

import numpy as np
import pytest
import torch

from onestep.methods.losses import (dmd2_discriminator_gan_loss, dmd2_generator_gan_loss, dmd_distribution_matching_grad,
                                    dmd_fake_score_loss, dmd_karras_sigmas, dmd_loss, dmd_regression_loss,
                                    dmd_timestep_bounds, l2_distance)


def test_karras_table_ascending_with_hand_values():
    s = dmd_karras_sigmas()
    assert s.shape == (1000,) and s.dtype == torch.float32
    assert torch.all(s[1:] > s[:-1])
    # index i (ascending) = level 999 - i of the descending k-diffusion ramp, in float64 by hand
    for i in (0, 20, 500, 980, 999):
        r = (999 - i) / 999
        want = (80 ** (1 / 7) + r * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
        assert abs(float(s[i]) - want) <= 1e-5 * want
    assert float(s[0]) == pytest.approx(0.002, rel=1e-5) and float(s[-1]) == pytest.approx(80.0, rel=1e-6)


def test_timestep_bounds():
    assert dmd_timestep_bounds() == (20, 981)  # randint(20, 981) = {20, ..., 980}
    assert dmd_timestep_bounds(1000, 0.0, 1.0) == (0, 1000)
    with pytest.raises(ValueError, match="empty range"):
        dmd_timestep_bounds(1000, 0.5, 0.1)


def test_distribution_matching_weighting_by_hand():
    x = torch.tensor([[[[1.0, -2.0], [0.5, 0.0]]], [[[0.0, 0.0], [0.0, 4.0]]]])  # (2, 1, 2, 2)
    pred_real = torch.tensor([[[[0.0, -1.0], [0.5, 1.0]]], [[[1.0, 1.0], [1.0, 1.0]]]])
    pred_fake = torch.tensor([[[[2.0, 0.0], [0.0, 0.0]]], [[[0.0, 0.0], [0.0, 0.0]]]])
    grad = dmd_distribution_matching_grad(x, pred_real, pred_fake)
    xn, rn, fn = x.numpy().astype(np.float64), pred_real.numpy().astype(np.float64), pred_fake.numpy().astype(np.float64)
    for i in range(2):
        w = np.abs(xn[i] - rn[i]).mean()  # sample 0: (1 + 1 + 0 + 1)/4 = 0.75; sample 1: (1+1+1+3)/4 = 1.5
        want = (fn[i] - rn[i]) / w  # (x - real) - (x - fake) = fake - real
        np.testing.assert_allclose(grad[i].numpy(), want, rtol=1e-6)
    assert float(grad[0, 0, 0, 0]) == pytest.approx(2.0 / 0.75)
    assert not grad.requires_grad


def test_distribution_matching_grad_is_detached_and_finite():
    x = torch.randn(3, 2, 4, 4, requires_grad=True)
    pred_real = x.detach().clone()  # weight 0 -> 0/0 and c/0, which nan_to_num makes finite
    pred_real[1] += 1.0
    pred_fake = pred_real + 0.5
    grad = dmd_distribution_matching_grad(x, pred_real, pred_fake)
    assert not grad.requires_grad and torch.isfinite(grad).all()
    np.testing.assert_allclose(grad[1].numpy(), np.full((2, 4, 4), 0.5), rtol=1e-6)  # (fake - real)/mean|x - real|


def test_dmd_loss_gradient_is_grad_over_numel():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5, 5, requires_grad=True)
    grad = torch.randn(4, 3, 5, 5)
    loss = dmd_loss(x, grad)
    (g,) = torch.autograd.grad(loss, x)
    torch.testing.assert_close(g, grad / x.numel(), rtol=1e-5, atol=1e-9)
    # its value is 0.5 * mean(grad^2) (x - (x - grad) = grad)
    assert float(loss.detach()) == pytest.approx(0.5 * float(grad.square().mean()), rel=1e-5)


def test_fake_score_loss_by_hand_and_stopgrad():
    pred = torch.tensor([[[[1.0, 2.0]]], [[[0.0, -1.0]]]], requires_grad=True)  # (2, 1, 1, 2)
    x = torch.tensor([[[[0.0, 0.0]]], [[[1.0, 1.0]]]], requires_grad=True)
    sigma = torch.tensor([0.5, 2.0]).view(-1, 1, 1, 1)
    loss = dmd_fake_score_loss(pred, x, sigma)
    w0, w1 = 1 / 0.25 + 4, 1 / 4 + 4  # sigma^-2 + sigma_data^-2
    want = (w0 * (1 + 4) + w1 * (1 + 4)) / 4
    assert float(loss) == pytest.approx(want)
    loss.backward()
    assert x.grad is None  # target is stop-gradient
    assert pred.grad is not None


def test_regression_loss_mean_of_per_sample_distance():
    a, b = torch.randn(5, 1, 4, 4), torch.randn(5, 1, 4, 4)
    assert float(dmd_regression_loss(a, b, l2_distance)) == pytest.approx(float((a - b).square().mean()), rel=1e-6)
    with pytest.raises(ValueError, match="one value per sample"):
        dmd_regression_loss(a, b, lambda u, v: (u - v).square())


def test_gan_losses_by_hand():
    l_fake = torch.tensor([[0.0], [2.0]])
    l_real = torch.tensor([[1.0], [-3.0]])
    sp = lambda v: math.log1p(math.exp(v))  # noqa: E731
    assert float(dmd2_generator_gan_loss(l_fake)) == pytest.approx((sp(0.0) + sp(-2.0)) / 2)
    want = ((sp(0.0) + sp(-1.0)) + (sp(2.0) + sp(3.0))) / 2
    assert float(dmd2_discriminator_gan_loss(l_real, l_fake)) == pytest.approx(want)
