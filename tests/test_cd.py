"""Consistency distillation: per-sample Heun step, the CD loss on an exactly solvable teacher,
presets and CD-I freezing."""
import math

import pytest
import torch
from torch import nn

from onestep.benchmarks.training import LoopContext, build_loop_config, instantiate_method
from onestep.methods.core.config import build_config
from onestep.methods.plugin import Batch, DataSpec, get_method
from onestep.methods.plugins.cd import CDLossConfig, ConsistencyLoss, heun_step
from onestep.methods.solvers import GaussianDenoiser, exact_ode_solution, heun
from onestep.methods.zoo import build_network


def test_per_sample_heun_step_equals_the_shared_solver():
    teacher = GaussianDenoiser(mean=0.2, std=0.5)
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64) * 3
    t, u = torch.tensor([3.0, 0.5, 10.0, 0.01], dtype=torch.float64), torch.tensor([2.0, 0.3, 7.0, 0.002], dtype=torch.float64)
    got = heun_step(teacher, x, t, u, None)
    for k in range(4):
        want, _ = heun(teacher, x[k:k + 1], torch.stack([t[k], u[k]]))
        assert torch.allclose(got[k:k + 1], want, rtol=1e-12, atol=1e-12)


class ExactConsistency(nn.Module):
    """The true consistency function of N(m, s^2) data: x(sigma) -> x(eps) along the ODE."""

    def __init__(self, mean, std, eps=0.002, scale=1.0):
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))
        self.mean, self.std, self.eps, self.scale = mean, std, eps, scale

    def forward(self, x, sigma, labels=None):
        sigma = torch.as_tensor(sigma, dtype=x.dtype).view(-1, 1, 1, 1)
        return exact_ode_solution(x, sigma, self.eps, self.mean, self.std) * self.scale * self.w


def _cd_loss(student, num_steps, m=0.1, s=0.5):
    loss = ConsistencyLoss(CDLossConfig(distance="l2", num_steps=num_steps), GaussianDenoiser(mean=m, std=s))
    x = m + s * torch.randn(256, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ctx = LoopContext(0, 256, torch.device("cpu"), "fp32", None, "cd")
    ctx.begin_step(3, 0)
    return loss(student.double(), Batch(x, None), ctx).item()


def test_cd_loss_is_small_for_the_true_consistency_function():
    exact = _cd_loss(ExactConsistency(0.1, 0.5), 18)
    wrong = _cd_loss(ExactConsistency(0.1, 1.0), 18)  # consistency map of the wrong data std
    assert exact < 0.05 * wrong
    # what is left for the exact map is the teacher's Heun error: it vanishes as the grid refines
    assert _cd_loss(ExactConsistency(0.1, 0.5), 400) < 0.01 * exact


def test_cd_presets_and_cd_i_freezing():
    cls = get_method("cd")
    for name, freeze in (("cifar10-uncond", "none"), ("cifar10-uncond-i", "conv"), ("smoke-i", "conv")):
        p = cls.presets[name]
        cfg = build_config(cls.Config, p["method"])
        build_loop_config(p["loop"])
        assert cfg.freeze == freeze and cfg.loss.num_steps == 18 and cfg.loss.rho == 7.0
        assert (cfg.loss.sigma_min, cfg.loss.sigma_max) == (0.002, 80.0)  # paper 000 appendix B.2
    assert build_config(cls.Config, cls.presets["cifar10-uncond"]["method"]).loss.distance == "lpips"
    torch.manual_seed(0)
    teacher = build_network("digits-8x8-cond").eval().requires_grad_(False)
    method, _ = instantiate_method("cd", "smoke-i", teacher=teacher, data_spec=DataSpec(8, 1, 10))
    info = method.describe()
    assert info["freeze_level"] == "conv" and info["params_trainable"] < info["params_total"]
    before = {n: p.detach().clone() for n, p in method.generator.named_parameters()}
    ctx = LoopContext(0, 8, torch.device("cpu"), "fp32", None, "cd")
    ctx.begin_step(0, 0)
    y = torch.nn.functional.one_hot(torch.arange(8) % 10, 10).float()
    logs = method.step(Batch(torch.rand(8, 1, 8, 8) * 2 - 1, y), ctx)
    assert math.isfinite(logs["loss_cd"])
    for n, p in method.generator.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p, before[n]), n


def test_cd_and_gdd_students_train_with_dropout_0():
    # the teacher keeps its dropout (EDM CIFAR-10: 0.13); GDD/D2O train.sh and CM's CIFAR-10 runs use 0,
    # so the online network and the stop-gradient target see the same (no) mask
    from onestep.methods.plugins.cd import disable_dropout
    from onestep.methods.zoo.precond import EDMPrecond, OneStepPrecond

    torch.manual_seed(0)
    teacher = EDMPrecond(8, 1, 10, model_type="SongUNet", model_channels=16, channel_mult=[1, 1], num_blocks=1,
                         attn_resolutions=[], dropout=0.13)
    student = OneStepPrecond.from_teacher(teacher)
    x, s, c = torch.randn(2, 1, 8, 8), torch.full((2,), 1.0), torch.eye(10)[:2]
    student.train()
    assert not torch.equal(student(x, s, c), student(x, s, c))  # dropout on: two passes differ
    assert disable_dropout(student) > 0
    assert torch.equal(student(x, s, c), student(x, s, c))
    assert student.model.init_kwargs["dropout"] == 0.0 and teacher.model.init_kwargs["dropout"] == 0.13
