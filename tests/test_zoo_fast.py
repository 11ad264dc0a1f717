"""The opt-in fast path of the zoo's networks keeps state-dict keys and outputs within 1e-5 (fp32)."""
from __future__ import annotations

import copy

import pytest
import torch

from onestep.benchmarks.perf.network_speed import fill_random_weights
from onestep.methods.zoo.fast import disable_fast_path, enable_fast_path
from onestep.methods.zoo.layers import Conv2d
from onestep.methods.zoo.presets import build_network

SMALL = {"model_channels": 16, "num_blocks": 1}


def _rel(a, b):
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


@pytest.mark.parametrize("preset,channels_last", [("edm-cifar10-32x32-uncond-vp", False), ("edm-cifar10-32x32-uncond-vp", True),
                                                   ("edm-cifar10-32x32-cond-ve", False), ("edm-imagenet-64x64-cond-adm", False)])
def test_fast_path_matches_reference_forward_and_gradient(preset, channels_last):
    torch.manual_seed(0)
    kw = {**SMALL, "use_fp16": False}
    if "adm" in preset:
        kw["attn_resolutions"] = [16, 8]
    ref = fill_random_weights(build_network(preset, **kw).eval())  # EDM's zero init would hide differences
    fast_net = copy.deepcopy(ref)
    fast = enable_fast_path(fast_net, channels_last=channels_last)
    assert list(fast_net.state_dict()) == list(ref.state_dict())  # keys unchanged
    assert any(getattr(m, "fast_attention", False) for m in fast_net.modules())
    g = torch.Generator().manual_seed(1)
    b, res = 2, ref.img_resolution
    sigma = torch.tensor([0.05, 40.0])
    x = torch.randn(b, 3, res, res, generator=g) * sigma.view(-1, 1, 1, 1)
    labels = torch.nn.functional.one_hot(torch.arange(b) % ref.label_dim, ref.label_dim).float() if ref.label_dim else None
    outs, grads = [], []
    for net in (ref, fast):
        xi = x.clone().requires_grad_(True)
        y = net(xi, sigma, labels)
        y.square().mean().backward()
        outs.append(y.detach())
        grads.append(xi.grad)
    assert _rel(outs[1], outs[0]) <= 1e-5 and _rel(grads[1], grads[0]) <= 1e-5
    disable_fast_path(fast_net)
    assert not any(getattr(m, "fast_attention", False) for m in fast_net.modules())


def test_box_filter_resampling_is_pooling_exactly_where_it_applies():
    """The (1, 1) filter's shortcut gives the reference's numbers; (1, 3, 3, 1) keeps the conv."""
    torch.manual_seed(0)
    x = torch.randn(2, 4, 8, 8)
    for kw in ({"down": True}, {"up": True}):
        for taps in ((1, 1), (1, 3, 3, 1)):
            conv = Conv2d(4, 6, kernel=3, resample_filter=taps, **kw)
            ref = conv(x)
            conv.fast_resample = True
            torch.testing.assert_close(conv(x), ref, rtol=1e-6, atol=1e-6)


def test_network_speed_script_runs_and_checks_agreement():
    """benchmarks/perf/network_speed.py end to end on a small DDPM++ (one round): every variant
    agrees with the reference and the report carries the paired CPU-time speed-ups."""
    from onestep.benchmarks.perf.network_speed import measure

    lines = []
    rep = measure("edm-cifar10-32x32-uncond-vp", batch=2, repeats=1, device=torch.device("cpu"),
                  log=lines.append, network_kwargs={**SMALL, "use_fp16": False}, profile=True)
    assert rep["within_tolerance"] and rep["base"] == "reference" and set(rep["rows"]) == {"reference", "fast", "fast+nhwc"}
    for r in rep["rows"].values():
        assert r["forward_backward_cpu_s"][0] > 0 and r["forward_rel_diff"] <= 1e-5
    assert rep["rows"]["reference"]["forward_backward_cpu_speedup_vs_base"] == 1.0
    assert any(line.startswith("fast path within 1e-05") for line in lines)
    prof = rep["rows"]["fast"]["profile"]
    assert 0 < prof["conv_s"] < prof["total_s"] and any("ceiling of fast+nhwc" in line for line in lines)
