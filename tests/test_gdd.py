"""GDD / GDD-I / D2O / D2O-F plugin: parameterization, presets (Table 6 / Table 10), freezing,
one update, config errors."""
import math

import pytest
import torch

from onestep.benchmarks.training import build_loop_config, instantiate_method, LoopContext
from onestep.methods.core.config import ConfigError, build_config
from onestep.methods.plugin import Batch, DataSpec, get_method
from onestep.methods.zoo import build_network, get_preset

SPEC = DataSpec(8, 1, 10)


@pytest.fixture(scope="module")
def random_teacher():
    torch.manual_seed(0)
    return build_network("digits-8x8-cond").eval().requires_grad_(False)


def test_generator_at_sigma_max_is_the_consistency_parameterization(random_teacher, digits_feature_net):
    method, _ = instantiate_method("gdd", "smoke", teacher=random_teacher, data_spec=SPEC)
    gen = method.generator
    z = torch.randn(3, 1, 8, 8)
    c = torch.nn.functional.one_hot(torch.tensor([1, 4, 7]), 10).float()
    # paper 000 appendix B.4 by hand: t = 80, sigma_data = 0.5, eps = 0.002, EDM's c_in, c_noise
    t, sd, eps = 80.0, 0.5, 0.002
    c_skip = sd ** 2 / ((t - eps) ** 2 + sd ** 2)
    c_out = sd * (t - eps) / math.sqrt(sd ** 2 + t ** 2)
    c_in = 1 / math.sqrt(sd ** 2 + t ** 2)
    x = z * t
    F_x = random_teacher.model(c_in * x, torch.full((3,), math.log(t) / 4), class_labels=c)
    want = c_skip * x + c_out * F_x
    with torch.no_grad():
        got = gen(z, c)
    assert c_skip < 1e-4 and c_out == pytest.approx(sd, rel=1e-3)  # c_skip ~ 0, c_out ~ sigma_data
    assert torch.allclose(got, want, atol=1e-5)
    # initialised from the teacher's weights
    for (n, p), (_, q) in zip(gen.denoiser.named_parameters(), random_teacher.named_parameters()):
        assert torch.equal(p, q), n


# Paper 000 Table 6 (= paper 001 Table 10), typed in by hand.
TABLE6 = {  # preset: (G lr, D lr, batch, gamma, EMA half-life Mimg, Mimg GDD, Mimg GDD-I)
    "cifar10-uncond": (1e-4, 1e-4, 256, 1e-4, 0.5, 5, 5),
    "cifar10-cond": (1e-4, 1e-4, 256, 1e-4, 0.5, 5, 5),
    "afhqv2": (2e-5, 4e-5, 256, 1e-4, 0.5, 5, 10),
    "ffhq": (2e-5, 4e-5, 256, 1e-4, 0.5, 5, 10),
    "imagenet64": (8e-6, 4e-5, 512, 4e-4, 50, 5, 5),
}


@pytest.mark.parametrize("name", list(TABLE6))
def test_paper_presets_match_table6(name):
    g_lr, d_lr, batch, gamma, ema, mimg, mimg_i = TABLE6[name]
    for method, frozen_suffix in (("gdd", "-i"), ("d2o", "-f")):
        cls = get_method(method)
        for preset, kimg, freeze in ((name, mimg, "none"), (name + frozen_suffix, mimg_i, "conv")):
            p = cls.presets[preset]
            cfg = build_config(cls.Config, p["method"])
            loop = build_loop_config(p["loop"])
            assert (cfg.g_lr, cfg.d_lr, tuple(cfg.betas), cfg.r1_gamma) == (g_lr, d_lr, (0.0, 0.99), gamma)
            assert cfg.freeze == freeze and cfg.discriminator.augment == "" and cfg.cd_weight == 0
            assert (loop.batch_size, loop.ema_halflife_kimg, loop.ema_rampup_ratio, loop.total_kimg) == \
                (batch, ema * 1000, 0.05, kimg * 1000)
            assert loop.precision == "bf16" and loop.grad_clip is None
            assert cfg.adv_batch_scale == batch // 8  # official losses sum over the per-GPU batch (8 GPUs)
            get_preset(cfg.teacher)  # a zoo preset name
            feats = cfg.discriminator.feature_networks
            assert feats == (["vgg16_bn", "efficientnet_lite0"] if name.startswith("cifar10") else ["deit_base", "efficientnet_lite0"])


def test_d2o_is_gdd_with_its_own_names_and_the_02m_setting():
    gdd, d2o = get_method("gdd"), get_method("d2o")
    assert issubclass(d2o, gdd) and d2o.step is gdd.step
    assert build_loop_config(d2o.presets["cifar10-uncond-0.2m"]["loop"]).total_kimg == 200  # paper 001 section 3.4
    assert d2o.presets["cifar10-uncond-f-0.2m"]["method"]["freeze"] == "conv"
    for name in ("smoke", "smoke-f"):
        assert name in d2o.presets
    assert gdd.presets["cifar10-uncond-freeze-conv_qkv"]["method"]["freeze"] == "conv_qkv"
    assert gdd.presets["cifar10-uncond-vgg16-baseline"]["method"]["discriminator"]["kind"] == "vgg16"
    vgg = build_config(gdd.Config, gdd.presets["cifar10-uncond-vgg16-baseline"]["method"])
    assert (vgg.discriminator.ada_target, vgg.discriminator.ada_p, vgg.r1_gamma) == (0.6, 0.0, 0.01)  # ADA, gamma 0.01
    for name, p in gdd.presets.items():  # every other preset (smoke included) trains without ADA, as train.sh
        if name != "cifar10-uncond-vgg16-baseline":
            d = build_config(gdd.Config, p["method"]).discriminator
            assert d.ada_target == 0 and d.ada_p == 0, name
    assert gdd.presets["cifar10-uncond-cd"]["method"]["cd_weight"] > 0


def test_config_typos_are_refused_with_a_suggestion(random_teacher):
    with pytest.raises(ConfigError, match="r1_gamma"):
        instantiate_method("gdd", "smoke", {"method.r1_gama": 1e-3}, teacher=random_teacher, data_spec=SPEC)
    with pytest.raises(ConfigError, match="conv_qkv"):
        instantiate_method("gdd", "smoke", {"method.freeze": "conv-qkv"}, teacher=random_teacher, data_spec=SPEC)
    with pytest.raises(ConfigError, match="projected"):
        instantiate_method("gdd", "smoke", {"method.discriminator.kind": "projectd"}, teacher=random_teacher, data_spec=SPEC)


def test_one_update_gdd_i_trains_only_unfrozen_roles(random_teacher, digits_feature_net):
    method, loop = instantiate_method("gdd", "smoke-i", {"method.r1_interval": 1}, teacher=random_teacher, data_spec=SPEC)
    info = method.describe()
    assert info["freeze_level"] == "conv" and 0 < info["params_trainable"] < info["params_total"]
    assert info["params_trainable"] == info["generator_trainable"]
    assert info["role_shares"]["conv"] == pytest.approx(1 - info["trainable_share"], abs=1e-6)
    before = {n: p.detach().clone() for n, p in method.generator.named_parameters()}
    d_before = {n: p.detach().clone() for n, p in method.disc.named_parameters()}
    ctx = LoopContext(0, 16, torch.device("cpu"), "fp32", None, "gdd")
    ctx.begin_step(1, 16)  # R1 (interval 1) runs from step 1 on, never at step 0
    x = torch.rand(16, 1, 8, 8) * 2 - 1
    y = torch.nn.functional.one_hot(torch.arange(16) % 10, 10).float()
    logs = method.step(Batch(x, y), ctx)
    assert {"loss_g", "loss_d", "r1"} <= set(logs) and all(math.isfinite(v) for v in logs.values())
    for n, p in method.generator.named_parameters():
        if not p.requires_grad:  # frozen roles never move (tiny Adam steps on trainable ones may round away)
            assert torch.equal(p, before[n]), n
            assert any(k in n for k in (".conv0.", ".conv1.", ".proj.")), n
    assert any(not torch.equal(p, before[n]) for n, p in method.generator.named_parameters() if ".norm" in n)
    moved = [n for n, p in method.disc.named_parameters() if not torch.equal(p, d_before[n])]
    assert moved and all(n.startswith("heads.") for n in moved)  # CCM/CSM stay fixed
    # state round-trip
    state = method.state_dict()
    other, _ = instantiate_method("gdd", "smoke-i", {"method.r1_interval": 1}, teacher=random_teacher, data_spec=SPEC)
    other.load_state_dict(state)
    for (n, p), (_, q) in zip(other.generator.named_parameters(), method.generator.named_parameters()):
        assert torch.equal(p, q), n


def test_generator_steps_trains_the_pd_teacher_of_section_2(random_teacher, digits_feature_net):
    from onestep.methods.solvers.pd import PDGenerator, pd_generator

    method, _ = instantiate_method("gdd", "smoke", {"method.generator_steps": 2}, teacher=random_teacher, data_spec=SPEC)
    gen = method.generator
    assert isinstance(gen, PDGenerator) and gen.nfe >= 2
    z = torch.randn(4, 1, 8, 8)
    c = torch.nn.functional.one_hot(torch.arange(4) % 10, 10).float()
    with torch.no_grad():  # the plugin's generator is the two-step PD teacher around its own (optimized) network
        assert torch.equal(gen(z, c), pd_generator(gen.denoiser, 2)(z, c))
    assert {id(p) for p in gen.parameters()} == {id(p) for g in method.opt_g.param_groups for p in g["params"]}
    ctx = LoopContext(0, 8, torch.device("cpu"), "fp32", None, "gdd")
    ctx.begin_step(0, 8)
    before = [p.detach().clone() for p in gen.parameters()]
    logs = method.step(Batch(torch.rand(8, 1, 8, 8) * 2 - 1, c.repeat(2, 1)), ctx)
    assert math.isfinite(logs["loss_g"]) and any(not torch.equal(p, q) for p, q in zip(gen.parameters(), before))
    with pytest.raises(ConfigError, match="generator_steps"):
        instantiate_method("gdd", "smoke", {"method.generator_steps": 0}, teacher=random_teacher, data_spec=SPEC)
