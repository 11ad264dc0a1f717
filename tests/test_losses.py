"""Faithfulness of the GAN losses, lazy R1 and CD distances against independent computations."""
import math

import pytest
import torch
from torch import nn

from onestep.methods.losses import (discriminator_loss, generator_loss, l2_distance, lazy_r1_weight,
                                    make_distance, pseudo_huber_distance, r1_due, r1_penalty)
from onestep.methods.core.config import ConfigError


def _sigmoid(v):
    return 1 / (1 + math.exp(-v))


def test_nonsaturating_losses_match_hand_computed_values():
    real, fake = [1.0, -2.0], [0.5, 3.0]
    # paper 000 eq. 3: D maximises log D(x) + log(1 - D(G(z))); G minimises -log D(G(z)).
    want_d = -sum(math.log(_sigmoid(r)) for r in real) / 2 - sum(math.log(1 - _sigmoid(f)) for f in fake) / 2
    want_g = -sum(math.log(_sigmoid(f)) for f in fake) / 2
    assert discriminator_loss(torch.tensor(real), torch.tensor(fake)).item() == pytest.approx(want_d, rel=1e-6)
    assert generator_loss(torch.tensor(fake)).item() == pytest.approx(want_g, rel=1e-6)


def test_multi_head_losses_sum_over_heads():
    heads_r = [torch.tensor([[0.3, -0.1]]), torch.tensor([[2.0]])]
    heads_f = [torch.tensor([[-1.0, 0.2]]), torch.tensor([[0.7]])]
    want = sum(discriminator_loss(r, f) for r, f in zip(heads_r, heads_f))  # eq. 4: sum over l
    assert discriminator_loss(heads_r, heads_f).item() == pytest.approx(want.item(), rel=1e-6)
    want_g = -math.log(_sigmoid(-1.0)) / 2 - math.log(_sigmoid(0.2)) / 2 - math.log(_sigmoid(0.7))
    assert generator_loss(heads_f).item() == pytest.approx(want_g, rel=1e-6)
    with pytest.raises(ValueError, match="heads"):
        discriminator_loss(heads_r, heads_f[:1])


def test_r1_equals_finite_difference_gradient_norm():
    torch.manual_seed(0)
    disc = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 16, 1)).double()
    x = torch.randn(3, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    got = r1_penalty(x, [disc(x)]).item()
    # central differences of D per input pixel, per sample
    eps, want = 1e-6, 0.0
    with torch.no_grad():
        for b in range(3):
            g2 = 0.0
            for k in range(16):
                e = torch.zeros(1, 1, 4, 4, dtype=torch.float64).view(-1)
                e[k] = eps
                e = e.view(1, 1, 4, 4)
                xb = x[b:b + 1]
                g2 += ((disc(xb + e) - disc(xb - e)).item() / (2 * eps)) ** 2
            want += g2 / 3
    assert got == pytest.approx(want, rel=1e-5)


def test_r1_requires_grad_input_and_lazy_schedule():
    with pytest.raises(ValueError, match="requires_grad"):
        r1_penalty(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1))
    assert lazy_r1_weight(1e-4, 16) == pytest.approx(0.5 * 1e-4 * 16)
    # official loop: batch_idx != 0 and batch_idx % 16 == 0 -> the first R1 step is step 16
    assert [s for s in range(40) if r1_due(s, 1e-4, 16)] == [16, 32]
    assert not any(r1_due(s, 0.0, 16) for s in range(40))


def test_lazy_adam_hparams_are_stylegan2s():
    from onestep.methods.losses import lazy_adam_hparams

    lr, (b1, b2) = lazy_adam_hparams(1e-4, (0.0, 0.99), 16)
    assert lr == pytest.approx(1e-4 * 16 / 17) and b1 == 0.0 and b2 == pytest.approx(0.99 ** (16 / 17))
    assert b2 == pytest.approx(0.990585, abs=1e-6)  # hand value: exp(16/17 * ln 0.99)
    assert not any(r1_due(s, 0.0, 16) for s in range(40))


def test_distances():
    a, b = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4) * 0.5
    assert torch.allclose(l2_distance(a, b), torch.full((2,), 0.25))
    d = 48
    c = 0.00054 * math.sqrt(d)
    want = math.sqrt(d * 0.25 + c * c) - c
    assert torch.allclose(pseudo_huber_distance(a, b), torch.full((2,), want))
    with pytest.raises(ConfigError, match="pseudo_huber"):
        make_distance("pseudo-huber")


def test_lpips_random_backbone_is_marked_untrained_and_is_a_distance():
    dist = make_distance("lpips", lpips_backbone="random", lpips_resize=64)
    assert dist.untrained
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    y = torch.rand(2, 1, 8, 8) * 2 - 1
    assert torch.allclose(dist(x, x), torch.zeros(2), atol=1e-6)
    assert (dist(x, y) > 0).all()
