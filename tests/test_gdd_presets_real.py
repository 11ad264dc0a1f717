"""Every GDD/D2O paper preset's discriminator at its real architecture (random feature weights),
and one full training step (G, D, lazy R1) for each distinct feature-network architecture.

The generator is a small random EDM network of the preset's resolution: the discriminator is
what is checked here (the full-size networks are `onestep validate --dry-run`'s job)."""
import math

import pytest
import torch

from onestep.benchmarks.training import LoopContext, instantiate_method
from onestep.methods.core.config import build_config
from onestep.methods.plugin import Batch, DataSpec, get_method
from onestep.methods.zoo.precond import EDMPrecond

RES = {"cifar10-32x32": 32, "afhqv2-64x64": 64, "ffhq-64x64": 64, "imagenet-64x64": 64}
COND = {"cifar10-cond", "imagenet64"}  # the conditional suites' presets (their dataset.conditional is true)


def _distinct_discriminators():
    out = {}
    for method in ("gdd", "d2o"):
        cls = get_method(method)
        for name, p in cls.presets.items():
            if name.startswith("smoke"):
                continue
            cfg = build_config(cls.Config, p["method"])
            d = cfg.discriminator
            cond = any(name == c or name.startswith(c + "-") for c in COND)
            key = (d.kind, tuple(d.feature_networks) if d.kind == "projected" else (), d.augment, cfg.r1_gamma > 0,
                   cond, RES[cfg.dataset])
            out.setdefault(key, (method, name))
    return out


def test_the_paper_presets_use_six_discriminator_configurations():
    keys = set(_distinct_discriminators())
    assert keys == {
        ("projected", ("vgg16_bn", "efficientnet_lite0"), "", True, False, 32),
        ("projected", ("vgg16_bn", "efficientnet_lite0"), "", True, True, 32),
        ("projected", ("vgg16_bn", "efficientnet_lite0"), "color,translation,cutout", False, False, 32),
        ("vgg16", (), "", True, False, 32),
        ("projected", ("deit_base", "efficientnet_lite0"), "", True, False, 64),
        ("projected", ("deit_base", "efficientnet_lite0"), "", True, True, 64),
    }


def _small_teacher(res: int, label_dim: int):
    torch.manual_seed(0)
    return EDMPrecond(res, 3, label_dim, model_type="SongUNet", model_channels=16, channel_mult=[1, 1],
                      num_blocks=1, attn_resolutions=[], dropout=0.13).eval()


# One step per distinct architecture (projected VGG+lite0, projected DeiT+lite0, VGG16 baseline),
# conditional where a paper preset is, at step 16 so the lazy R1 step runs too.
@pytest.mark.parametrize("method,preset,label_dim", [("gdd", "cifar10-cond", 10), ("d2o", "imagenet64", 1000),
                                                     ("gdd", "cifar10-uncond-vgg16-baseline", 0)])
def test_one_training_step_at_real_discriminator_architecture(method, preset, label_dim, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no hub weights: VGG16 baseline must take random_weights
    res = RES[get_method(method).presets[preset]["method"]["dataset"]]
    teacher = _small_teacher(res, label_dim)
    m, _ = instantiate_method(method, preset, {"method.discriminator.random_weights": True, "method.adv_batch_scale": 0},
                              teacher=teacher, data_spec=DataSpec(res, 3, label_dim))
    info = m.describe()["discriminator"]
    assert info["untrained_features"] and info["conditional"] == bool(label_dim)
    assert m.describe()["student_dropout"] == 0.0
    assert all(getattr(mod, "dropout", 0) == 0 for mod in m.generator.modules() if hasattr(mod, "dropout"))
    ctx = LoopContext(0, 2, torch.device("cpu"), "fp32", None, method)
    ctx.begin_step(16, 16 * 2)
    x = torch.rand(2, 3, res, res) * 2 - 1
    y = torch.nn.functional.one_hot(torch.tensor([1, 7]), label_dim).float() if label_dim else None
    heads = [p.detach().clone() for p in m.disc.parameters() if p.requires_grad]
    logs = m.step(Batch(x, y), ctx)
    assert {"loss_g", "loss_d", "r1"} <= set(logs) and all(math.isfinite(v) for v in logs.values())
    assert any(not torch.equal(a, p) for a, p in zip(heads, (p for p in m.disc.parameters() if p.requires_grad)))
    if preset == "cifar10-uncond-vgg16-baseline":  # Table 1a baseline trains with ADA (section 3.2)
        assert info["ada"]["target"] == 0.6 and info["ada"]["p_init"] == 0.0 and "ada" in m.modules()
        assert logs["ada_p"] == 0.0  # step 16 is no update step of interval 4 ((16 + 1) % 4 != 0)
    else:
        assert info["ada"] == "none" and "ada_p" not in logs
