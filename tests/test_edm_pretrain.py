"""The EDM pre-training plugin, the digits teachers and `onestep teacher`."""
from __future__ import annotations


import pytest
import torch

from onestep.benchmarks.datasets import load_digits
from onestep.benchmarks.training import LoopContext, data_spec_of, instantiate_method
from onestep.methods.plugin import DataSpec, get_method


def _ctx(step=0, cur_nimg=0, batch=8):
    ctx = LoopContext(seed=0, batch_size=batch, device=torch.device("cpu"))
    ctx.begin_step(step, cur_nimg)
    return ctx


def test_edm_loss_is_one_per_pixel_at_zero_network_output():
    """EDM's weighting gives unit expected loss per pixel when F = 0 and the data has std sigma_data
    (Karras et al. 2022, section 5 / appendix B.6): with D = c_skip * (y + n),
    lambda * E||D - y||^2 = sigma^2 y^2 / ((sigma^2 + sd^2) sd^2) + sd^2 / (sigma^2 + sd^2) = 1 for y^2 = sd^2."""
    method, _ = instantiate_method("edm", "smoke", data_spec=DataSpec(8, 1, 10))
    method.net.model.forward = lambda x, noise_labels, class_labels=None, **kw: torch.zeros_like(x)
    g = torch.Generator().manual_seed(1)
    y = (torch.randint(0, 2, (4096, 1, 8, 8), generator=g) * 2 - 1) * 0.5  # pixels +-sigma_data
    labels = torch.eye(10)[torch.randint(0, 10, (4096,), generator=g)]
    per_image = method.loss(y.float(), labels, _ctx(batch=4096))
    per_pixel = per_image.mean().item() / 64
    assert per_pixel == pytest.approx(1.0, abs=0.02)


def test_lr_warmup_and_one_step_changes_weights():
    data = load_digits().subset(range(16))
    method, loop = instantiate_method("edm", "smoke", {"method.lr_rampup_kimg": 1.0, "method.lr": 1e-3},
                                      data_spec=data_spec_of(data))
    from onestep.benchmarks.training import ShardedBatches

    batch = ShardedBatches(data, 8, seed=0).batch(0)
    before = [p.detach().clone() for p in method.net.parameters()]
    out = method.step(batch, _ctx(step=31, cur_nimg=250))
    assert out["lr"] == pytest.approx(1e-3 * 250 / 1000)  # EDM: lr * min(cur_nimg / rampup_nimg, 1)
    assert out["loss"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, method.net.parameters()))
    assert method.step(batch, _ctx(step=40, cur_nimg=5000))["lr"] == pytest.approx(1e-3)


def test_presets_build_and_match_the_digits_note():
    cls = get_method("edm")
    assert {"digits", "digits-uncond", "digits-16x16", "digits-test", "smoke"} <= set(cls.presets)
    method, loop = instantiate_method("edm", "digits", data_spec=DataSpec(8, 1, 10))
    # digits-default.md: lr 2e-3, 50-step warm-up at batch 128, ~800 steps, EMA half-life 5% of images.
    assert method.config.lr == 2e-3 and method.config.lr_rampup_kimg * 1000 / loop.batch_size == 50
    assert loop.batch_size == 128 and loop.total_steps == 800 and loop.ema_rampup_ratio == 0.05
    assert loop.ema_halflife_kimg * 1000 > loop.total_kimg * 1000 * loop.ema_rampup_ratio  # cap never reached
    assert sum(p.numel() for p in method.net.parameters()) == pytest.approx(716e3, rel=0.02)  # network A
    uncond, _ = instantiate_method("edm", "digits-uncond", data_spec=DataSpec(8, 1, 0))
    assert uncond.net.label_dim == 0
    big, _ = instantiate_method("edm", "digits-16x16", data_spec=DataSpec(16, 1, 10))
    assert big.net.img_resolution == 16


def test_digits_teacher_denoises_real_digits(digits_teacher):
    """The session teacher removes noise from held-in digits far better than the untrained net."""
    from onestep.methods.zoo import EDMPrecond

    assert isinstance(digits_teacher, EDMPrecond) and digits_teacher.label_dim == 10
    assert not any(p.requires_grad for p in digits_teacher.parameters())
    data = load_digits().subset(range(0, 1797, 9))  # 200 images
    y = data.images.float() / 127.5 - 1
    labels = torch.eye(10)[data.labels]
    untrained, _ = instantiate_method("edm", "digits-test", data_spec=data_spec_of(data))
    g = torch.Generator().manual_seed(0)
    for sigma in (0.2, 1.0):
        x = y + sigma * torch.randn(y.shape, generator=g)
        with torch.no_grad():
            err_teacher = (digits_teacher(x, sigma, labels) - y).pow(2).mean().item()
            err_untrained = (untrained.net.eval()(x, sigma, labels) - y).pow(2).mean().item()
        assert err_teacher < 0.5 * err_untrained, (sigma, err_teacher, err_untrained)
    # Class conditioning matters: the wrong label makes the strong-noise denoising worse.
    x = y + 2.0 * torch.randn(y.shape, generator=g)
    with torch.no_grad():
        right = (digits_teacher(x, 2.0, labels) - y).pow(2).mean().item()
        wrong = (digits_teacher(x, 2.0, labels.roll(1, dims=1)) - y).pow(2).mean().item()
    assert right < wrong


def test_teacher_is_trained_once_and_reused(tmp_path, monkeypatch):
    from onestep.benchmarks import teachers
    from onestep.methods.checkpoints import CheckpointError, state_checksum

    monkeypatch.setenv("ONESTEP_CACHE", str(tmp_path))
    ckpt, info = teachers.train_digits_teacher("smoke")
    assert not info["cached"] and info["steps"] == 30 and ckpt.parent.parent == tmp_path / "teachers"
    ckpt2, info2 = teachers.train_digits_teacher("smoke")
    assert ckpt2 == ckpt and info2["cached"]
    a, b = teachers.load_teacher("smoke"), teachers.load_teacher(str(ckpt))
    assert state_checksum(a) == state_checksum(b) and not any(p.requires_grad for p in a.parameters())
    other = teachers.plan_digits_teacher("smoke", {"loop.total_kimg": 0.64})
    assert other.key != teachers.plan_digits_teacher("smoke").key  # another config, another cache entry
    with pytest.raises(CheckpointError, match="did you mean"):
        teachers.load_teacher("digits-8x8-cnd")
    with pytest.raises(Exception, match="unknown digits teacher 'smoek'.*did you mean 'smoke'"):
        teachers.plan_digits_teacher("smoek")


def test_teacher_command_writes_a_grid(tmp_path, monkeypatch, capsys):
    from onestep.benchmarks.cli import main

    monkeypatch.setenv("ONESTEP_CACHE", str(tmp_path))
    grid = tmp_path / "grid.png"
    assert main(["teacher", "train", "--preset", "smoke", "--steps", "2", "--grid", str(grid)]) == 0
    out = capsys.readouterr().out
    assert "trained teacher 'smoke'" in out and str(grid) in out
    from PIL import Image

    img = Image.open(grid)
    assert img.size == (10 * 64 + 9 * 2, 10 * 64 + 9 * 2)  # 10 classes x 10 seeds, 8x8 upscaled to 64
    assert main(["teacher", "train", "--preset", "smoke", "--steps", "2", "--grid", str(grid)]) == 0
    assert "reused cached teacher" in capsys.readouterr().out


def test_unconditional_training_ignores_labels(tmp_path):
    from onestep.benchmarks.training import train

    data = load_digits(conditional=False).subset(range(32))
    method, loop = instantiate_method("edm", "digits-uncond", {
        "method.network_overrides": {"model_channels": 8}, "loop.batch_size": 16, "loop.total_kimg": 0.032},
        data_spec=data_spec_of(data))
    result = train(method, data, loop, tmp_path, log=lambda s: None)
    assert result.step == 2 and result.generator.label_dim == 0
    x = result.generator(torch.randn(3, 1, 8, 8))  # Heun-18 on the EMA denoiser, no labels
    assert x.shape == (3, 1, 8, 8) and torch.isfinite(x).all()
