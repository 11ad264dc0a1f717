"""ADA (StyleGAN2-ADA's 'bgc' AugmentPipe and adaptive p) and its wiring into GDD.

The pipe was compared with the official one (Zyriix/GDD training/augment.py, StyleGAN2-ADA's)
outside the repository on identical draws: equal bit for bit (outputs and input gradients).
Here it is checked against hand-built cases instead: identity at p = 0, flips / quarter turns /
integer shifts equal torch.flip / rot90 / a reflect-padded shift, colour matrices on constant
images, analytic shifts, rotations and scalings of band-limited images."""
import io
import math

import pytest
import torch
from torch.nn import functional as F

from onestep.benchmarks.training import LoopContext, instantiate_method
from onestep.methods.checkpoints import load_resume_state, save_resume_state
from onestep.methods.core.config import ConfigError
from onestep.methods.discriminators.ada import BGC, SYM6, AdaptiveAugment, AugmentPipe, ada_adjust, build_ada
from onestep.methods.plugin import Batch, DataSpec
from onestep.methods.zoo import build_network


def only(*names, p=1.0):
    return AugmentPipe(p, **{k: (1.0 if k in names else 0.0) for k in BGC})


def scripted(*values):
    """A draw callable returning the given values (broadcast to the requested shape) in order."""
    it = iter(values)

    def draw(*shape):
        return torch.as_tensor(next(it), dtype=torch.float32).expand(*shape).clone()
    return draw


def grid(n):
    return torch.meshgrid(torch.arange(float(n)), torch.arange(float(n)), indexing="ij")  # (y, x)


def blob(n, cx, cy, sigma):
    yy, xx = grid(n)
    return torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma ** 2))


def test_sym6_is_an_orthonormal_lowpass():
    h = torch.tensor(SYM6, dtype=torch.float64)
    assert float(h.sum()) == pytest.approx(math.sqrt(2), abs=1e-12)
    for shift in range(0, 6):  # orthonormal to its even shifts: what makes up/down an identity
        assert float((h[2 * shift:] * h[:h.numel() - 2 * shift]).sum()) == pytest.approx(float(shift == 0), abs=1e-9)


@pytest.mark.parametrize("ch,res", [(3, 32), (1, 32), (3, 8), (1, 8)])
def test_p0_is_the_identity_and_p1_is_not(ch, res):
    torch.manual_seed(0)
    x = torch.randn(6, ch, res, res)
    assert torch.allclose(AugmentPipe(0.0)(x), x, atol=2e-5)  # resampling round trip only
    assert (AugmentPipe(1.0)(x) - x).abs().amax((1, 2, 3)).min() > 0.1


def test_xflip_and_rotate90_equal_torch_flip_and_rot90_on_smooth_images():
    x = blob(16, 5.0, 7.5, 2.0).expand(2, 3, 16, 16) * torch.tensor([1.0, 0.5, -0.5]).view(1, 3, 1, 1)
    # draw 1: which flip (floor(2u)), draw 2: whether (u < p). Sample 0 flips, sample 1 is chosen for i = 0.
    y = only("xflip")(x, scripted(torch.tensor([0.75, 0.25]), 0.0))
    assert (y[0] - x[0].flip(2)).abs().max() < 0.03 and (x[0] - x[0].flip(2)).abs().max() > 0.5
    assert (y[1] - x[1]).abs().max() < 1e-4
    # not chosen (u >= p): unchanged even where the flip draw says 1
    assert (only("xflip", p=0.5)(x, scripted(0.75, 0.6)) - x).abs().max() < 1e-4
    for k in (1, 2, 3):
        y = only("rotate90")(x, scripted((k + 0.5) / 4, 0.0))
        want = torch.rot90(x, k, dims=(2, 3))
        assert (y - want).abs().max() < 0.03, k
        assert (want - x).abs().max() > 0.5


def test_xflip_frequency_is_half_of_p():
    torch.manual_seed(1)
    x = blob(16, 4.0, 7.5, 2.0).expand(800, 1, 16, 16)
    y = only("xflip", p=0.5)(x)
    flipped = ((y - x.flip(3)).abs().amax((1, 2, 3)) < (y - x).abs().amax((1, 2, 3))).float().mean()
    assert abs(float(flipped) - 0.25) < 0.05  # P(i = 1) * p = 1/2 * 1/2, 800 samples: std 0.015


def test_integer_translation_is_a_reflect_padded_shift():
    torch.manual_seed(2)
    x = torch.randn(1, 3, 32, 32)
    # t = (2u - 1) / 8 of the side: u = 0.875 -> +3 px in x, u = 0.25 -> -2 px in y
    y = only("xint")(x, scripted(torch.tensor([[0.875, 0.25]]), 0.0))
    pad = 8
    xp = F.pad(x, [pad] * 4, mode="reflect")
    want = xp[..., pad + 2:pad + 2 + 32, pad - 3:pad - 3 + 32]  # out(x, y) = in(x - 3, y + 2)
    assert torch.allclose(y, want, atol=2e-5)  # white noise: the integer path is exact


def test_fractional_translation_rotation_and_scaling_of_band_limited_images():
    yy, xx = grid(32)
    c = torch.cos(2 * math.pi * xx / 16).expand(1, 1, 32, 32)
    # xfrac: t = 0.125 n of the side; n = 0.125 -> 0.5 px
    y = only("xfrac")(c, scripted(0.0), scripted(torch.tensor([[0.125, 0.0]])))[0, 0]
    want = torch.cos(2 * math.pi * (xx - 0.5) / 16)
    assert (y - want)[6:-6, 6:-6].abs().max() < 1e-4 and (c[0, 0] - want).abs().max() > 0.1
    # rotation by theta about the centre (u -> theta = (2u - 1) pi), post-rotation not chosen:
    # out(p) = in(R(theta) p), p relative to the centre 15.5
    g = blob(32, 19.5, 15.5, 3.0).view(1, 1, 32, 32)
    for theta in (0.4, 2.0):
        y = only("rotate")(g, scripted((theta / math.pi + 1) / 2, 0.0, 0.5, 1.0))[0, 0]
        px, py = xx - 15.5, yy - 15.5
        qx, qy = math.cos(theta) * px - math.sin(theta) * py, math.sin(theta) * px + math.cos(theta) * py
        want = torch.exp(-((qx - 4.0) ** 2 + qy ** 2) / (2 * 3.0 ** 2))
        assert (y - want).abs().max() < 0.03 and (g[0, 0] - want).abs().max() > 0.3, theta
    # isotropic scale s = 2^(0.2 n): a centred Gaussian's sigma grows by s
    s = 1.25
    y = only("scale")(blob(32, 15.5, 15.5, 4.0).view(1, 1, 32, 32), scripted(0.0), scripted(math.log2(s) / 0.2))
    assert (y[0, 0] - blob(32, 15.5, 15.5, 4.0 * s)).abs().max() < 0.01


def test_colour_transforms_on_constant_images_by_hand():
    rgb = torch.tensor([0.6, -0.2, 0.1]).view(1, 3, 1, 1).expand(1, 3, 4, 4)
    mean = rgb.mean(1, keepdim=True)
    chosen = 0.0
    # brightness: + 0.2 n
    assert torch.allclose(only("brightness")(rgb, scripted(chosen), scripted(1.5)), rgb + 0.3, atol=1e-6)
    # contrast: x 2^(0.5 n)
    assert torch.allclose(only("contrast")(rgb, scripted(chosen), scripted(2.0)), rgb * 2, atol=1e-6)
    # luma flip: Householder on (1, 1, 1)/sqrt 3 -> x - 2 mean
    assert torch.allclose(only("lumaflip")(rgb, scripted(0.75, chosen)), rgb - 2 * mean, atol=1e-6)
    # hue rotation by 2 pi / 3 about the grey axis permutes the channels
    y = only("hue")(rgb, scripted((2 / 3 + 1) / 2, chosen))
    assert torch.allclose(y, rgb[:, [2, 0, 1]], atol=1e-5) or torch.allclose(y, rgb[:, [1, 2, 0]], atol=1e-5)
    # saturation: mean + (x - mean) 2^n
    y = only("saturation")(rgb, scripted(chosen), scripted(-1.0))
    assert torch.allclose(y, mean + (rgb - mean) / 2, atol=1e-6)
    # one channel: brightness, contrast; luma flip negates; hue / saturation do nothing
    gray = torch.full((1, 1, 4, 4), 0.4)
    assert torch.allclose(only("brightness")(gray, scripted(chosen), scripted(-1.0)), gray - 0.2, atol=1e-6)
    assert torch.allclose(only("lumaflip")(gray, scripted(0.75, chosen)), -gray, atol=1e-6)
    assert torch.equal(only("hue", "saturation")(gray, scripted(), scripted()), gray)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        AugmentPipe(1.0)(torch.zeros(1, 2, 8, 8))


def test_gradient_flows_to_the_images_and_is_the_jacobian():
    torch.manual_seed(3)
    pipe = AugmentPipe(1.0)
    x = torch.randn(3, 3, 16, 16, requires_grad=True)
    d = torch.randn_like(x)
    w = torch.randn(3, 3, 16, 16)
    draws = lambda: (torch.Generator().manual_seed(5), torch.Generator().manual_seed(6))  # noqa: E731
    g1, g2 = draws()
    f = lambda z, g1, g2: pipe(z, lambda *s: torch.rand(s, generator=g1), lambda *s: torch.randn(s, generator=g2))  # noqa: E731
    (f(x, g1, g2) * w).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # the pipe is affine in the images for fixed draws: f(x + d) - f(x) = J d
    with torch.no_grad():
        diff = f(x + d, *draws()) - f(x, *draws())
    assert float((diff * w).sum()) == pytest.approx(float((x.grad * d).sum()), rel=1e-3)


# --- controller -------------------------------------------------------------------------------
def test_ada_adjust_by_hand():
    step = 256 * 4 / (500 * 1000)  # global batch 256, interval 4, ada_kimg 500 -> 0.002048
    p = torch.tensor(0.0)
    p = ada_adjust(p, 0.9, 0.6, 256, 4, 500)
    assert float(p) == pytest.approx(step)
    p = ada_adjust(p, 0.9, 0.6, 256, 4, 500)
    assert float(p) == pytest.approx(2 * step)
    assert float(ada_adjust(p, 0.6, 0.6, 256, 4, 500)) == pytest.approx(2 * step)  # sign 0: no move
    for _ in range(3):
        p = ada_adjust(p, 0.1, 0.6, 256, 4, 500)
    assert float(p) == 0.0  # floored at 0
    assert float(ada_adjust(torch.tensor(1.0), 1.0, 0.6, 256, 4, 500)) > 1  # no upper clamp (official)


def test_controller_updates_every_interval_steps_from_the_accumulated_signs():
    ada = AdaptiveAugment(target=0.6, p=0.0, kimg=1.0, interval=4)
    pos, neg = [torch.ones(8, 3)], [-torch.ones(8, 3)]
    for step in range(3):
        ada.accumulate(pos)
        ada.end_step(step, batch_size=64)
        assert float(ada.p) == 0.0  # no update before the 4th step
    ada.accumulate(neg)  # mean sign over the 4 steps: (3 - 1) / 4 = 0.5 < 0.6 -> down (stays at 0)
    ada.end_step(3, batch_size=64)
    assert float(ada.p) == 0.0 and float(ada.signs[1]) == 0  # reset after an update
    for step in range(4, 8):
        ada.accumulate(pos)
        ada.end_step(step, batch_size=64)
    assert float(ada.p) == pytest.approx(64 * 4 / 1000)  # global batch * interval / (kimg * 1000)
    # an all-reduce that averages over ranks keeps the ratio
    ada.accumulate(pos, lambda t: t / 2)
    assert float(ada.signs[0] / ada.signs[1]) == 1.0


def test_build_ada_switch_and_errors():
    assert build_ada(0.0, 0.0, 500, 4) is None  # official: no pipe without a target or p
    fixed = build_ada(0.0, 0.3, 500, 4)
    fixed.accumulate([torch.ones(4, 1)])
    fixed.end_step(3, 64)
    assert fixed.target is None and float(fixed.p) == pytest.approx(0.3)
    with pytest.raises(ConfigError, match="ada_target"):
        build_ada(1.5, 0.0, 500, 4)
    with pytest.raises(ConfigError, match="ada_interval"):
        build_ada(0.6, 0.0, 500, 0)


# --- the GDD plugin ---------------------------------------------------------------------------
SPEC = DataSpec(8, 1, 10)


@pytest.fixture(scope="module")
def random_teacher():
    torch.manual_seed(0)
    return build_network("digits-8x8-cond").eval().requires_grad_(False)


def _gdd(teacher, **disc):
    over = {f"method.discriminator.{k}": v for k, v in disc.items()}
    method, _ = instantiate_method("gdd", "smoke", over, teacher=teacher, data_spec=SPEC)
    return method


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(16, 1, 8, 8, generator=g) * 2 - 1
    return Batch(x, F.one_hot(torch.arange(16) % 10, 10).float())


def _ctx(step):
    ctx = LoopContext(0, 16, torch.device("cpu"), "fp32", None, "gdd")
    ctx.begin_step(step, step * 16)
    return ctx


def test_smoke_gdd_has_no_ada(random_teacher, digits_feature_net):
    m = _gdd(random_teacher)
    assert m.ada is None and "ada" not in m.modules() and m.describe()["discriminator"]["ada"] == "none"


def test_p_rises_for_a_discriminator_confident_on_reals(random_teacher, digits_feature_net, monkeypatch):
    for sign, moves in ((1.0, True), (-1.0, False)):
        m = _gdd(random_teacher, ada_target=0.6, ada_kimg=0.1, ada_interval=1)
        info = m.describe()["discriminator"]["ada"]
        assert info["target"] == 0.6 and info["interval_steps"] == 1 and info["augmentations"].startswith("bgc")
        orig = m._d
        monkeypatch.setattr(m, "_d", lambda *a: [sign * (l.abs() + 1) for l in orig(*a)])
        logs = m.step(_batch(), _ctx(0))
        assert logs["ada_p"] == pytest.approx(16 / 100 if moves else 0.0)  # batch 16 * 1 / (0.1 * 1000)


def test_ada_augments_each_batch_once_fakes_and_reals_not_r1(random_teacher, digits_feature_net):
    m = _gdd(random_teacher, ada_p=1.0)  # fixed p = 1: every image augmented
    calls = []
    m.disc.register_forward_pre_hook(lambda mod, args: calls.append((args[0].detach().clone(), args[2])))
    batch = _batch()
    logs = m.step(batch, _ctx(16))  # step 16: lazy R1 runs
    assert "r1" in logs and len(calls) == 4  # G fakes, D fakes, D reals, R1 reals
    assert all(aug is None for _, aug in calls)  # one augmented batch for all feature networks
    real = batch.images.float()
    assert (calls[2][0] - real).abs().max() > 0.1  # D's reals augmented
    assert torch.equal(calls[3][0], real)  # R1 on the raw reals (official run_D(real, None))


def test_gradient_reaches_the_generator_through_ada(random_teacher, digits_feature_net):
    m = _gdd(random_teacher, ada_p=1.0)
    before = [p.detach().clone() for p in m.generator.parameters() if p.requires_grad]
    m.step(_batch(), _ctx(1))
    after = [p for p in m.generator.parameters() if p.requires_grad]
    assert any(not torch.equal(a, b) for a, b in zip(before, after))


def test_ada_and_diffaugment_together_are_refused(random_teacher, digits_feature_net):
    with pytest.raises(ConfigError, match="DiffAugment"):
        _gdd(random_teacher, ada_target=0.6, augment="color")


def test_p_and_signs_survive_save_and_resume(random_teacher, digits_feature_net, tmp_path):
    def make():
        return _gdd(random_teacher, ada_target=0.6, ada_p=0.5, ada_kimg=1.0, ada_interval=2)

    a = make()
    for step in range(3):  # update after step 1; step 2 sits in the accumulator
        logs = a.step(_batch(step), _ctx(step))
    assert logs["ada_p"] in (pytest.approx(0.5 - 0.032), pytest.approx(0.5 + 0.032))  # moved once: 16 * 2 / 1000
    assert float(a.ada.signs[1]) > 0
    save_resume_state(tmp_path / "resume.pt", {"method": a.state_dict()})
    b = make()
    b.load_state_dict(load_resume_state(tmp_path / "resume.pt")["method"])
    assert torch.equal(b.ada.p, a.ada.p) and torch.equal(b.ada.signs, a.ada.signs)
    for step in (3,):  # step 3 updates p from the signs of steps 2 (saved) and 3
        la, lb = a.step(_batch(step), _ctx(step)), b.step(_batch(step), _ctx(step))
        assert la == lb
    assert torch.equal(a.ada.p, b.ada.p) and float(a.ada.signs[1]) == 0
    for pa, pb in zip(a.disc.parameters(), b.disc.parameters()):
        assert torch.equal(pa, pb)
