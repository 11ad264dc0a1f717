"""Zoo presets, overrides, and the network_config / network_from_config round trip."""
from __future__ import annotations

import json

import pytest
import torch

from onestep.methods.core.config import ConfigError
from onestep.methods.zoo import (PRESETS, DhariwalUNet, EDMPrecond, OneStepPrecond, SongUNet, VEPrecond, VPPrecond,
                                 build_network, iDDPMPrecond, network_config, network_from_config, preset_info)

EDM_NAMES = [f"edm-cifar10-32x32-{c}-{a}" for c in ("cond", "uncond") for a in ("vp", "ve")] + [
    f"edm-{d}-64x64-uncond-{a}" for d in ("ffhq", "afhqv2") for a in ("vp", "ve")] + ["edm-imagenet-64x64-cond-adm"]


def test_all_required_presets_exist_with_checkpoint_locations():
    for name in EDM_NAMES:
        info = preset_info(name)
        assert info["checkpoint"] == f"{name}.pkl"
        assert info["url"] == f"https://nvlabs-fi-cdn.nvidia.com/edm/pretrained/{name}.pkl"
    for name in ("baseline-cifar10-32x32-uncond-vp", "baseline-cifar10-32x32-uncond-ve", "baseline-imagenet-64x64-cond-adm"):
        assert preset_info(name)["url"] == f"https://nvlabs-fi-cdn.nvidia.com/edm/pretrained/baseline/{name}.pkl"
    for name in ("digits-8x8-cond", "digits-8x8-uncond", "digits-16x16-cond"):
        assert name in PRESETS and preset_info(name)["checkpoint"] is None
    json.dumps([preset_info(n) for n in PRESETS])


@pytest.mark.parametrize("name, precond, model, kwargs", [
    # EDM naming: -vp = DDPM++ (positional embedding, standard encoder), -ve = NCSN++ (Fourier, residual).
    ("edm-cifar10-32x32-cond-vp", EDMPrecond, SongUNet, dict(label_dim=10, embedding_type="positional",
                                                             encoder_type="standard", augment_dim=9, channel_mult=[2, 2, 2])),
    ("edm-cifar10-32x32-uncond-ve", EDMPrecond, SongUNet, dict(label_dim=0, embedding_type="fourier",
                                                               encoder_type="residual", resample_filter=[1, 3, 3, 1])),
    ("edm-ffhq-64x64-uncond-vp", EDMPrecond, SongUNet, dict(channel_mult=[1, 2, 2, 2], dropout=0.05)),
    ("edm-afhqv2-64x64-uncond-ve", EDMPrecond, SongUNet, dict(channel_mult=[1, 2, 2, 2], dropout=0.25)),
    ("edm-imagenet-64x64-cond-adm", EDMPrecond, DhariwalUNet, dict(label_dim=1000, model_channels=192, use_fp16=True)),
    ("baseline-cifar10-32x32-uncond-vp", VPPrecond, SongUNet, dict(embedding_type="positional")),
    ("baseline-cifar10-32x32-uncond-ve", VEPrecond, SongUNet, dict(embedding_type="fourier")),
    ("baseline-imagenet-64x64-cond-adm", iDDPMPrecond, DhariwalUNet, dict(label_dim=1000)),
    # digits-default.md network A
    ("digits-8x8-cond", EDMPrecond, SongUNet, dict(img_resolution=8, img_channels=1, label_dim=10, model_channels=32,
                                                   channel_mult=[1, 2], num_blocks=1, attn_resolutions=[], dropout=0.0,
                                                   augment_dim=0)),
    ("digits-8x8-uncond", EDMPrecond, SongUNet, dict(img_resolution=8, label_dim=0)),
    ("digits-16x16-cond", EDMPrecond, SongUNet, dict(img_resolution=16, img_channels=1, label_dim=10, model_channels=32)),
])
def test_preset_builds_the_documented_network(name, precond, model, kwargs):
    with torch.device("meta"):
        net = build_network(name)
    assert type(net) is precond and type(net.model) is model
    cfg = network_config(net)
    flat = {**cfg["kwargs"], **cfg["model_kwargs"]}
    for k, v in kwargs.items():
        assert flat[k] == v, k


def test_overrides_route_to_precond_or_model_and_typos_fail():
    net = build_network("digits-8x8-cond", precond="OneStepPrecond", sigma_max=40.0, model_channels=16, dropout=0.1)
    assert isinstance(net, OneStepPrecond) and net.sigma_max == 40.0
    assert net.model.init_kwargs["model_channels"] == 16 and net.model.init_kwargs["dropout"] == 0.1
    assert PRESETS["digits-8x8-cond"].model_kwargs["model_channels"] == 32  # presets are not mutated
    with pytest.raises(ConfigError, match="did you mean 'model_channels'"):
        build_network("digits-8x8-cond", model_chanels=16)
    with pytest.raises(ConfigError, match="did you mean 'digits-8x8-cond'"):
        build_network("digits-8x8-cnd")
    with pytest.raises(ConfigError, match="unknown precond"):
        build_network("digits-8x8-cond", precond="EDMPrecnd")


@pytest.mark.parametrize("name", list(PRESETS))
def test_config_round_trip_every_preset(name):
    with torch.device("meta"):
        net = build_network(name)
        cfg = json.loads(json.dumps(network_config(net)))  # strict JSON (inf is written as "inf")
        again = network_from_config(cfg)
    assert type(again) is type(net) and network_config(again) == cfg
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in net.state_dict().items()}
    assert (again.sigma_min, again.sigma_max, again.sigma_data) == (net.sigma_min, net.sigma_max, net.sigma_data)


def test_round_trip_reproduces_outputs_and_raw_networks():
    torch.manual_seed(0)
    for net in (build_network("digits-8x8-cond"), build_network("digits-8x8-cond", precond="OneStepPrecond"),
                SongUNet(img_resolution=8, in_channels=1, out_channels=1, model_channels=16, channel_mult=[1, 2], num_blocks=1)):
        again = network_from_config(json.loads(json.dumps(network_config(net))))
        again.load_state_dict(net.state_dict())
        x = torch.randn(2, 1, 8, 8)
        with torch.no_grad():
            if isinstance(net, SongUNet):
                a, b = net(x, torch.zeros(2), None), again(x, torch.zeros(2), None)
            else:
                a, b = net(x, torch.tensor(1.0), torch.tensor([1, 2])), again(x, torch.tensor(1.0), torch.tensor([1, 2]))
        torch.testing.assert_close(a, b)


def test_network_from_config_rejects_bad_configs():
    cfg = network_config(build_network("digits-8x8-cond"))
    with pytest.raises(ConfigError, match="did you mean 'model_kwargs'"):
        network_from_config({**cfg, "model_kwarg": {}})
    with pytest.raises(ConfigError, match="did you mean 'EDMPrecond'"):
        network_from_config({**cfg, "class": "EDMPrecnd"})
    with pytest.raises(ConfigError, match="did you mean 'num_blocks'"):
        network_from_config({**cfg, "model_kwargs": {**cfg["model_kwargs"], "num_block": 2}})
    with pytest.raises(ConfigError, match="model_class"):
        network_from_config({**cfg, "model_class": None})
    with pytest.raises(TypeError, match="not a zoo network"):
        network_config(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("name", ["digits-8x8-cond", "edm-cifar10-32x32-cond-ve", "baseline-imagenet-64x64-cond-adm"])
def test_init_kwargs_rebuild_the_same_network(name):
    with torch.device("meta"):
        net = build_network(name, precond="OneStepPrecond") if name.startswith("digits") else build_network(name)
        again = type(net)(**net.init_kwargs)  # EDM-style: every zoo module records its constructor arguments
        raw = type(net.model)(**net.model.init_kwargs)
    assert network_config(again) == network_config(net)
    assert {k: v.shape for k, v in raw.state_dict().items()} == {k: v.shape for k, v in net.model.state_dict().items()}
