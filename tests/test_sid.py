"""SiD / SiDA / SiD2A plugins: phases, update order and modes, clipping rules, SiD2A's
initialisation, supported teachers and the loop's second data batch (small random teachers)."""
import copy

import pytest
import torch

from onestep.benchmarks.training import LoopContext, instantiate_method
from onestep.benchmarks.training.data import ShardedBatches
from onestep.methods.plugin import Batch, DataSpec
from onestep.methods.solvers import OneStepGenerator, save_generator
from onestep.methods.zoo import build_network

SPEC = DataSpec(8, 1, 10)
B = 4


@pytest.fixture
def teacher():
    torch.manual_seed(0)
    net = build_network("digits-8x8-cond")
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))  # EDM initialises output layers at zero: make outputs non-trivial
    return net.eval().requires_grad_(False)


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(B, 1, 8, 8, generator=g) * 2 - 1
    labels = torch.nn.functional.one_hot(torch.arange(B) % 10, 10).float()
    return Batch(images, labels, more=(Batch(images.flip(0), labels.flip(0)),))


def _method(name, teacher, preset="smoke", **over):
    over = {f"method.{k}": v for k, v in over.items()}
    over.setdefault("loop.batch_size", B)
    m, _ = instantiate_method(name, preset, over, teacher=teacher, data_spec=SPEC)
    return m


def _ctx(step, cur_nimg):
    ctx = LoopContext(0, B, torch.device("cpu"), "fp32", None, "test")
    ctx.begin_step(step, cur_nimg)
    return ctx


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def _changed(before, module):
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


def test_sida_phases(teacher):
    m0 = _method("sida", teacher, fake_only_nimg=8, sid_only_nimg=16, batch_gpu=2)
    m = copy.deepcopy(m0)
    g0, f0 = _params(m.generator), _params(m.fake)
    logs = m.step(_batch(), _ctx(0, 8))  # cur_nimg 8 <= 8: fake score only
    assert not _changed(g0, m.generator) and _changed(f0, m.fake)
    assert logs["phase"] == 1 and "loss_g" not in logs and "loss_d" in logs
    # phase 2: the adversarial weight does not matter; phase 3: it does
    for cur, matters in ((12, False), (20, True)):
        outs = []
        for lsg_gan in (0.01, 0.0):
            m = copy.deepcopy(m0)
            m.config.lsg_gan = lsg_gan
            g0 = _params(m.generator)
            logs = m.step(_batch(), _ctx(1, cur))
            assert _changed(g0, m.generator) and logs["phase"] == (3 if matters else 2)
            outs.append(_params(m.generator))
        same = all(torch.equal(a, b) for a, b in zip(*outs))
        assert same != matters


def test_sid_has_no_phases_and_no_discriminator(teacher):
    m = _method("sid", teacher)
    g0 = _params(m.generator)
    logs = m.step(_batch(), _ctx(0, 0))
    assert _changed(g0, m.generator)
    assert "loss_d" not in logs and "loss_g_adv" not in logs
    assert m.clip_fake.value is None and m.clip_fake.nan_to_num and m.clip_g.nan_to_num and m.clip_g.value is None
    assert _method("sida", teacher).clip_fake.value == 1.0


def test_update_order_and_modes(teacher):
    m = _method("sida", teacher, fake_only_nimg=0, sid_only_nimg=0, batch_gpu=4)
    calls = []
    for who, net in (("G", m.generator.denoiser.model), ("fake", m.fake.net.model), ("teacher", m.teacher.model)):
        net.register_forward_pre_hook(lambda mod, args, who=who: calls.append(  # the raw U-Net: every read-out
            (who, mod.training, any(p.requires_grad for p in mod.parameters()))))
    m.step(_batch(), _ctx(0, 64))
    whos = [c[0] for c in calls]
    first_teacher = whos.index("teacher")
    # fake step: G (eval, no grad) then fake (train, twice: fake branch and real branch)
    assert calls[:3] == [("G", False, True), ("fake", True, True), ("fake", True, True)]
    # generator step: G in train mode, teacher eval, fake score eval and frozen
    assert calls[3] == ("G", True, True) and first_teacher == 4
    assert calls[4][1] is False and calls[5] == ("fake", False, False)
    assert not m.generator.training and not m.fake.net.training
    assert all(p.requires_grad for p in m.fake.parameters())  # unfrozen again after the critic role


def test_local_batch_must_be_a_multiple_of_batch_gpu(teacher):
    m = _method("sid", teacher, batch_gpu=3)
    with pytest.raises(ValueError, match="batch_gpu"):
        m.step(_batch(), _ctx(0, 0))


def test_nan_samples_are_dropped(teacher):
    m = _method("sid", teacher)

    class NaNFirst(torch.nn.Module):  # the teacher returns NaN for the first sample
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x, sigma, c=None):
            out = self.net(x, sigma, c).clone()
            out[0] = float("nan")
            return out

    m.teacher = NaNFirst(m.teacher)
    logs = m.step(_batch(), _ctx(0, 0))
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    assert all(torch.isfinite(p).all() for p in m.generator.parameters())


def test_ncsnpp_teacher_is_rejected():
    from onestep.methods.zoo import network_config, network_from_config

    cfg = network_config(build_network("digits-8x8-cond"))
    cfg["model_kwargs"].update(embedding_type="fourier", channel_mult_noise=2, encoder_type="residual",
                               resample_filter=[1, 3, 3, 1])
    with pytest.raises(ValueError, match="NCSN\\+\\+"):
        _method("sida", network_from_config(cfg))


def test_sid2a_starts_from_a_sid_generator(teacher, tmp_path):
    with pytest.raises(ValueError, match="sid_checkpoint"):
        _method("sid2a", teacher, preset=None)
    den = copy.deepcopy(teacher)
    with torch.no_grad():
        for p in den.parameters():
            p.add_(0.01)
    path = save_generator(tmp_path / "sid" / "generator", OneStepGenerator(den, sigma=2.5))
    m = _method("sid2a", teacher, preset=None, sid_checkpoint=str(path))
    assert all(torch.equal(a, b) for a, b in zip(m.generator.denoiser.parameters(), den.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(m.fake.net.parameters(), teacher.parameters()))
    assert m.phase(0) == (False, False)  # phases restart at 0 (its own cur_nimg)
    other = build_network("digits-8x8-uncond")
    with pytest.raises(ValueError, match="architecture"):
        _method("sid2a", other, preset=None, sid_checkpoint=str(path))
    with pytest.raises(ValueError, match="sid2a"):
        _method("sida", teacher, sid_checkpoint=str(path))


def test_loop_gives_consecutive_batches():
    class DS:
        images = torch.arange(40, dtype=torch.uint8).view(40, 1, 1, 1).expand(40, 1, 2, 2).contiguous()
        labels = torch.arange(40) % 10
        label_dim = 10

    sb = ShardedBatches(DS(), 4, seed=0)
    two = sb.batch(3, count=2)
    assert torch.equal(two.images, sb.batch(6).images) and torch.equal(two.more[0].images, sb.batch(7).images)
    assert torch.equal(two.more[0].labels, sb.batch(7).labels)
    assert sb.batch(3).more == ()


def test_presets_follow_table8():
    from onestep.methods.plugin import get_method

    sida = get_method("sida").presets
    assert sida["imagenet64"]["loop"]["batch_size"] == 8192 and sida["imagenet64"]["method"]["batch_gpu"] == 32
    assert sida["afhqv2-64"]["method"]["lr_g"] == 5e-6 and sida["ffhq64"]["method"]["eps"] == 1e-6
    assert sida["cifar10-uncond"]["loop"]["precision"] == "fp32" and sida["cifar10-uncond"]["method"]["alpha"] == 1.0
    assert get_method("sid2a").presets["cifar10-cond"]["loop"]["total_kimg"] == 100_000
    assert get_method("sid").presets["cifar10-uncond"]["method"]["alpha"] == 1.2
