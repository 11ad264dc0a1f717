"""Opt-in fast execution of the zoo's networks; the reference path stays the default.

`enable_fast_path(net, ...)` changes how a network runs, never what it holds: state-dict keys,
parameters and buffers are untouched (instance flags and memory layout only), and outputs stay
within float32 rounding of the reference path (benchmarks/perf/network_speed.py measures the
difference and the speed side by side; tests/test_zoo_fast.py checks 1e-5).
- attention: F.scaled_dot_product_attention in fp32 instead of EDM's einsum + softmax;
- resample: EDM's box filter (1, 1) as avg_pool2d / nearest upsampling instead of a grouped
  (transposed) convolution with a constant 2x2 kernel (DDPM++ and ADM; NCSN++'s (1, 3, 3, 1)
  filter keeps the convolution);
- channels_last: parameters and the input in NHWC (oneDNN / cuDNN pick NHWC kernels);
- compile: torch.compile of the network's forward (first call compiles; off by default since
  compiling costs minutes on a small CPU).
Not for double backward through attention (the fused kernels may not support it): keep the
reference path where a loss differentiates a gradient of the network.
"""
from __future__ import annotations

import torch
from torch import nn

from .layers import Conv2d, UNetBlock


class _ChannelsLast(nn.Module):
    """Feeds the wrapped network NHWC inputs; attribute access falls through to it."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x, *args, **kwargs):
        return self.net(x.contiguous(memory_format=torch.channels_last), *args, **kwargs)

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.net, name)


def enable_fast_path(net: nn.Module, *, attention: bool = True, resample: bool = True,
                     channels_last: bool = False, compile: bool = False) -> nn.Module:
    """Switch `net` (in place) to the fast path; returns the module to call (a wrapper when
    channels_last or compile is asked for: its `.net`/`_orig_mod` is `net`, same state)."""
    for m in net.modules():
        if isinstance(m, UNetBlock):
            m.fast_attention = attention
        elif isinstance(m, Conv2d):
            m.fast_resample = resample
    out: nn.Module = net
    if channels_last:
        net.to(memory_format=torch.channels_last)
        out = _ChannelsLast(net)
    if compile:
        out = torch.compile(out)
    return out


def disable_fast_path(net: nn.Module) -> nn.Module:
    for m in net.modules():
        if isinstance(m, (UNetBlock, Conv2d)):
            m.__dict__.pop("fast_attention", None)
            m.__dict__.pop("fast_resample", None)
    return net.to(memory_format=torch.contiguous_format)
