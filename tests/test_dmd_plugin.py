"""DMD / DMD2 plugin orchestration: update order, same pre-update samples, TTUR, clipping, EMA,
presets (paper 003 appendix B), errors."""
import copy

import pytest
import torch

import onestep.methods.plugins.dmd as dmd_module
from onestep.benchmarks.training import LoopContext, instantiate_method
from onestep.methods.plugin import Batch, DataSpec, get_method
from onestep.methods.plugins.cd import draw_labels, draw_normal
from onestep.methods.zoo import build_network

SPEC = DataSpec(8, 1, 10)


@pytest.fixture(scope="module")
def tiny_teacher():
    torch.manual_seed(0)
    return build_network("digits-8x8-cond", model_channels=16).eval().requires_grad_(False)


def _recording_ctx(batch, events):
    ctx = LoopContext(0, batch, torch.device("cpu"), "fp32", None, "dmd")
    real_step = ctx.optimizer_step

    def step(opt, params, clip=None):
        events.append(("step", opt, clip))
        real_step(opt, params, clip)

    ctx.optimizer_step = step
    return ctx


def test_generator_first_then_fake_on_the_same_pre_update_samples(tiny_teacher, monkeypatch):
    m, _ = instantiate_method("dmd", "smoke", {"method.reg_weight": 0.0, "loop.batch_size": 4}, teacher=tiny_teacher,
                              data_spec=SPEC)
    events = []
    ctx = _recording_ctx(4, events)
    ctx.begin_step(0, 0)
    m.step(Batch(None, None), ctx)  # at step 0 mu_fake = mu_real, so G's DM gradient is 0: look at step 1
    events.clear()
    ctx.begin_step(1, 4)
    before = copy.deepcopy(m.generator)
    # the x the fake-score loss sees
    real_fake_loss = dmd_module.dmd_fake_score_loss

    def spy(pred, x, sigma, sigma_data=0.5):
        events.append(("fake_loss", x.detach().clone()))
        return real_fake_loss(pred, x, sigma, sigma_data)

    monkeypatch.setattr(dmd_module, "dmd_fake_score_loss", spy)
    m.step(Batch(None, None), ctx)
    kinds = [e[0] for e in events]
    assert kinds == ["step", "fake_loss", "step"]
    assert events[0][1] is m.opt_g and events[2][1] is m.opt_fake
    assert events[0][2].norm == 10.0 and events[2][2].norm == 10.0  # norm clip 10 on both networks
    # the samples of the fake update are G's output BEFORE its update
    replay = LoopContext(0, 4, torch.device("cpu"), "fp32", None, "dmd")
    replay.begin_step(1, 4)
    z = draw_normal(replay, 4, 1, 8, 8, stream="dmd_z")
    c = draw_labels(replay, 4, 10, stream="dmd_c")
    with torch.no_grad():
        x_before, x_after = before(z, c), m.generator(z, c)
    torch.testing.assert_close(events[1][1], x_before)
    assert (x_after - x_before).abs().max() > 1e-6  # and G did change in between


def test_dmd2_two_time_scale_updates(tiny_teacher):
    m, _ = instantiate_method("dmd2", "smoke", {"method.fake_updates_per_generator": 3, "loop.batch_size": 4},
                              teacher=tiny_teacher, data_spec=SPEC)
    assert m.head is not None and "gan_head" in m.modules() and m.config.reg_weight == 0
    events = []
    ctx = _recording_ctx(4, events)
    images = torch.rand(4, 1, 8, 8) * 2 - 1
    labels = torch.eye(10)[:4]
    gen_steps = []
    for s in range(6):
        ctx.begin_step(s, s * 4)
        events.clear()
        logs = m.step(Batch(images, labels), ctx)
        gen_steps.append(any(e[1] is m.opt_g for e in events))
        assert sum(e[1] is m.opt_fake for e in events) == 1  # the fake score every step
        assert ("loss_gan_g" in logs) == gen_steps[-1] and "loss_gan_d" in logs
    assert gen_steps == [True, False, False, True, False, False]


def test_dmd2_warmup_is_linear_from_zero(tiny_teacher):
    m, _ = instantiate_method("dmd2", None, {"method.warmup_steps": 4, "method.gan": False}, teacher=tiny_teacher,
                              data_spec=SPEC)
    lrs = []
    for s in (0, 1, 4, 9):
        m._set_lr(s)
        lrs.append(m.opt_g.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.0, 2e-6 / 4, 2e-6, 2e-6])


def test_no_ema_by_default_and_option(tiny_teacher):
    m, _ = instantiate_method("dmd", "smoke", {"method.reg_weight": 0.0}, teacher=tiny_teacher, data_spec=SPEC)
    assert m.ema_modules() == {} and m.build_generator({}) is m.generator
    m, _ = instantiate_method("dmd", "smoke", {"method.reg_weight": 0.0, "method.ema": True}, teacher=tiny_teacher,
                              data_spec=SPEC)
    assert set(m.ema_modules()) == {"generator"}


def test_generator_is_the_teacher_at_sigma_80(tiny_teacher):
    m, _ = instantiate_method("dmd", "smoke", {"method.reg_weight": 0.0}, teacher=tiny_teacher, data_spec=SPEC)
    z, c = torch.randn(3, 1, 8, 8), torch.eye(10)[:3]
    with torch.no_grad():
        torch.testing.assert_close(m.generator(z, c), tiny_teacher(80 * z, torch.full((3,), 80.0), c))


def test_paper_presets():
    p = get_method("dmd").presets
    assert p["cifar10-uncond"]["method"]["reg_weight"] == 0.5 and p["cifar10-uncond"]["method"]["pairs"] == 500_000
    assert p["cifar10-cond"]["method"]["reg_weight"] == 0.25 and p["cifar10-cond"]["method"]["pairs"] == 100_000
    im = p["imagenet64"]["method"]
    assert (im["reg_weight"], im["pairs"], im["pair_steps"], im["g_lr"]) == (0.25, 25_000, 256, 2e-6)
    assert p["cifar10-cond"]["loop"]["batch_size"] == 392 and p["imagenet64"]["loop"]["batch_size"] == 336
    assert p["cifar10-cond-no-dm"]["method"]["dm_weight"] == 0.0
    assert p["imagenet64-no-reg"]["method"]["reg_weight"] == 0.0 and p["imagenet64-no-reg"]["method"]["g_lr"] == 1e-5
    cfg = get_method("dmd").Config()
    assert (cfg.betas, cfg.weight_decay, cfg.grad_clip_norm) == ((0.9, 0.999), 0.01, 10.0)


def test_bad_configs_fail_clearly(tiny_teacher):
    with pytest.raises(ValueError, match="reg_distance"):
        instantiate_method("dmd", "smoke", {"method.reg_distance": "ssim"}, teacher=tiny_teacher, data_spec=SPEC)
    with pytest.raises(ValueError, match="dmd2"):
        instantiate_method("dmd", "smoke", {"method.gan": True}, teacher=tiny_teacher, data_spec=SPEC)
    with pytest.raises(ValueError, match="no regression"):
        instantiate_method("dmd2", "smoke", {"method.reg_weight": 0.25}, teacher=tiny_teacher, data_spec=SPEC)


def test_piq_style_lpips_is_avg_pool_vgg_lpips_by_hand():
    """lpips_piq = PIQ's LPIPS(replace_pooling=True) on (x+1)/2 at 224 (checked equal to piq 0.8.0's
    ContentLoss with the same weights outside the repo: max abs diff 0.0); here against a hand
    computation with torchvision's VGG16 layers."""
    import torchvision
    from torch.nn import functional as F

    torch.manual_seed(0)
    ours = dmd_module.piq_style_lpips("random")
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in ours.modules())
    layers = [m for i in range(1, 6) for m in getattr(ours.net.net, f"slice{i}")]
    vgg = torchvision.models.vgg16(weights=None).features[:30]
    for a, b in zip(layers, vgg):
        if isinstance(a, torch.nn.Conv2d):
            b.load_state_dict(a.state_dict())
    weights = [lin.model[-1].weight.detach() for lin in ours.net.lins]
    x, y = torch.rand(2, 3, 8, 8) * 2 - 1, torch.rand(2, 3, 8, 8) * 2 - 1
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def feats(t):
        h = (F.interpolate((t + 1) / 2, size=224, mode="bilinear") - mean) / std
        out = []
        for i, m in enumerate(vgg):
            h = F.avg_pool2d(h, 2) if isinstance(m, torch.nn.MaxPool2d) else m(h)
            if i in (3, 8, 15, 22, 29):
                out.append(h / (h.square().sum(1, keepdim=True).sqrt() + 1e-10))
        return out

    with torch.no_grad():
        want = sum(((fa - fb).square() * w).sum(1).mean((1, 2)) for fa, fb, w in zip(feats(x), feats(y), weights))
        got = ours(x, y)
        maxpool = dmd_module.regression_distance("lpips", "random")
        maxpool.net.load_state_dict(ours.net.state_dict())
        other = maxpool(x, y)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    assert (other - got).abs().max() > 1e-4  # the pooling matters: max-pool LPIPS is a different metric


def test_gan_head_reads_its_input_for_narrow_bottlenecks():
    for channels, size in ((768, 8), (32, 2), (64, 4), (16, 1)):
        head = dmd_module.GANHead(channels, size)
        a, b = head(torch.randn(3, channels, size, size)), head(torch.randn(3, channels, size, size))
        assert a.shape == (3, 1) and (a - b).abs().max() > 1e-4  # never a constant (one channel per GN group)
    convs = [m for m in dmd_module.GANHead(768, 8).modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.kernel_size, c.stride) for c in convs] == [((4, 4), (2, 2)), ((4, 4), (4, 4)), ((1, 1), (1, 1))]
