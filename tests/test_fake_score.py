"""The shared fake score network of SiD/SiDA and DMD: copy, modes, read-outs."""
import pytest
import torch

from onestep.methods.fake_score import FakeScore, frozen_teacher
from onestep.methods.zoo import build_network


@pytest.fixture()
def teacher():
    torch.manual_seed(0)
    net = build_network("digits-8x8-cond", dropout=0.2)
    for p in net.parameters():
        p.data.add_(torch.randn_like(p) * 0.02)
    return frozen_teacher(net)


def test_starts_as_the_teacher_and_trains_independently(teacher):
    fake = FakeScore(teacher)
    x, s, c = torch.randn(4, 1, 8, 8), torch.tensor([0.1, 1.0, 3.0, 20.0]), torch.eye(10)[:4]
    assert torch.equal(fake(x, s, c), teacher(x, s, c))
    assert all(p.requires_grad for p in fake.parameters()) and not any(p.requires_grad for p in teacher.parameters())
    opt = torch.optim.SGD(fake.parameters(), lr=0.1)
    with fake.updating():
        assert fake.net.training
        (fake(x, s, c) - x).square().mean().backward()
    opt.step()
    assert not fake.net.training
    assert not torch.equal(fake(x, s, c), teacher(x, s, c))
    fake.reinit_from(teacher)
    assert torch.equal(fake(x, s, c), teacher(x, s, c))


def test_as_critic_freezes_parameters_but_passes_input_gradients(teacher):
    fake = FakeScore(teacher, dropout=0.0)
    assert fake.net.model.init_kwargs["dropout"] == 0.0 and teacher.model.init_kwargs["dropout"] == 0.2
    y = torch.randn(2, 1, 8, 8, requires_grad=True)
    with fake.as_critic():
        out, logits = fake.denoise_with_map(y, torch.tensor([1.0, 2.0]), torch.eye(10)[:2])
        (out.sum() + logits.sum()).backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    assert all(p.grad is None for p in fake.parameters()) and all(p.requires_grad for p in fake.parameters())
    assert logits.shape == (2, 1, 4, 4)
    assert fake.bottleneck(y, 1.0, torch.eye(10)[:2]).shape == (2, 64, 4, 4)
    assert torch.allclose(fake.encoder_map(y, 1.0, torch.eye(10)[:2]), fake.bottleneck(y, 1.0, torch.eye(10)[:2]).mean(1, keepdim=True))
