"""Building blocks of EDM's U-Nets (Karras et al. 2022, NVlabs/edm `training/networks.py`).

Parameter and buffer names/shapes follow EDM exactly, so EDM checkpoints load into these
modules key for key. Differences from EDM are in execution only: out-of-place arithmetic and
explicit dtype alignment so the layers also run under `torch.autocast` (bf16 on CPU), where
matmuls/convolutions return bf16 while group norm returns fp32.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F


def weight_init(shape: Sequence[int], mode: str, fan_in: int, fan_out: int) -> torch.Tensor:
    """EDM's four init schemes; the scale factors are those of `weight_init` in EDM."""
    if mode == "xavier_uniform":
        return math.sqrt(6 / (fan_in + fan_out)) * (torch.rand(*shape) * 2 - 1)
    if mode == "xavier_normal":
        return math.sqrt(2 / (fan_in + fan_out)) * torch.randn(*shape)
    if mode == "kaiming_uniform":
        return math.sqrt(3 / fan_in) * (torch.rand(*shape) * 2 - 1)
    if mode == "kaiming_normal":
        return math.sqrt(1 / fan_in) * torch.randn(*shape)
    raise ValueError(f"unknown init mode {mode!r}; use xavier_uniform, xavier_normal, kaiming_uniform or kaiming_normal")


def init_parameter(shape: Sequence[int], mode: str, fan_in: int, fan_out: int, scale: float) -> nn.Parameter:
    """A parameter initialised as EDM does (`weight_init(...) * scale`).

    Under a `torch.device('meta')` context (parameter counting, `onestep zoo`) only the shape
    is made: arithmetic on meta tensors costs seconds of one-time set-up and carries no values.
    """
    empty = torch.empty(shape)
    if empty.is_meta:
        return nn.Parameter(empty)
    return nn.Parameter(weight_init(shape, mode, fan_in, fan_out) * scale)


class Linear(nn.Module):
    """Fully connected layer (keys `weight` [out, in], `bias` [out])."""

    def __init__(self, in_features, out_features, bias=True, init_mode="kaiming_normal", init_weight=1, init_bias=0):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        fans = dict(mode=init_mode, fan_in=in_features, fan_out=out_features)
        self.weight = init_parameter([out_features, in_features], **fans, scale=init_weight)
        self.bias = init_parameter([out_features], **fans, scale=init_bias) if bias else None

    def forward(self, x):
        x = x @ self.weight.to(x.dtype).t()
        if self.bias is not None:
            x = x + self.bias.to(x.dtype)
        return x


def _resample_filter(taps) -> torch.Tensor:
    """Separable 2D FIR filter [1, 1, k, k] normalised to sum 1, on the default device.

    Computed on the CPU and then moved, so a meta-device build does no meta arithmetic."""
    f = torch.as_tensor(list(taps), dtype=torch.float32, device="cpu")
    f = (torch.outer(f, f) / f.sum().square()).unsqueeze(0).unsqueeze(1)
    return f.to(torch.empty(0).device)


class Conv2d(nn.Module):
    """Convolution with optional 2x up/down-sampling by a separable FIR filter.

    `kernel=0` gives a weightless resampler (EDM's aux_down/aux_up and identity-skip paths).
    The filter is a buffer `resample_filter` only when resampling, as in EDM's state dicts.
    """

    # zoo/fast.py sets it per instance (never in the state dict): the box filter (1, 1) as
    # avg_pool2d / nearest upsampling, the same sums without a grouped convolution.
    fast_resample = False

    def __init__(self, in_channels, out_channels, kernel, bias=True, up=False, down=False,
                 resample_filter=(1, 1), fused_resample=False, init_mode="kaiming_normal", init_weight=1, init_bias=0):
        if up and down:
            raise ValueError("Conv2d: up and down are mutually exclusive")
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.up = up
        self.down = down
        self.fused_resample = fused_resample
        fans = dict(mode=init_mode, fan_in=in_channels * kernel * kernel, fan_out=out_channels * kernel * kernel)
        self.weight = init_parameter([out_channels, in_channels, kernel, kernel], **fans, scale=init_weight) if kernel else None
        self.bias = init_parameter([out_channels], **fans, scale=init_bias) if kernel and bias else None
        self.register_buffer("resample_filter", _resample_filter(resample_filter) if up or down else None)

    def forward(self, x):
        w = self.weight.to(x.dtype) if self.weight is not None else None
        b = self.bias.to(x.dtype) if self.bias is not None else None
        f = self.resample_filter.to(x.dtype) if self.resample_filter is not None else None
        w_pad = w.shape[-1] // 2 if w is not None else 0
        f_pad = (f.shape[-1] - 1) // 2 if f is not None else 0

        if self.fused_resample and self.up and w is not None:
            x = F.conv_transpose2d(x, f.mul(4).tile([self.in_channels, 1, 1, 1]), groups=self.in_channels, stride=2, padding=max(f_pad - w_pad, 0))
            x = F.conv2d(x, w.to(x.dtype), padding=max(w_pad - f_pad, 0))
        elif self.fused_resample and self.down and w is not None:
            x = F.conv2d(x, w, padding=w_pad + f_pad)
            x = F.conv2d(x, f.to(x.dtype).tile([self.out_channels, 1, 1, 1]), groups=self.out_channels, stride=2)
        elif self.fast_resample and f is not None and f.shape[-1] == 2 and (self.up or self.down):
            x = F.interpolate(x, scale_factor=2, mode="nearest") if self.up else F.avg_pool2d(x, 2)
            if w is not None:
                x = F.conv2d(x, w, padding=w_pad)
        else:
            if self.up:
                x = F.conv_transpose2d(x, f.mul(4).tile([self.in_channels, 1, 1, 1]), groups=self.in_channels, stride=2, padding=f_pad)
            if self.down:
                x = F.conv2d(x, f.tile([self.in_channels, 1, 1, 1]), groups=self.in_channels, stride=2, padding=f_pad)
            if w is not None:
                x = F.conv2d(x, w.to(x.dtype), padding=w_pad)
        if b is not None:
            x = x + b.to(x.dtype).reshape(1, -1, 1, 1)
        return x


class GroupNorm(nn.Module):
    """Group norm with EDM's group count: min(32, channels // 4), at least 1."""

    def __init__(self, num_channels, num_groups=32, min_channels_per_group=4, eps=1e-5):
        super().__init__()
        # max(1, .) only matters below 4 channels, where EDM itself would fail.
        self.num_groups = max(1, min(num_groups, num_channels // min_channels_per_group))
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))

    def forward(self, x):
        return F.group_norm(x, num_groups=self.num_groups, weight=self.weight.to(x.dtype), bias=self.bias.to(x.dtype), eps=self.eps)


def attention_weights(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """softmax(q^T k / sqrt(c)) over keys, computed in fp32 (as EDM's AttentionOp) and
    returned in q's dtype; q, k: (N, C, L)."""
    scale = 1 / math.sqrt(k.shape[1])
    w = torch.einsum("ncq,nck->nqk", q.float(), k.float() * scale)
    return w.softmax(dim=2).to(q.dtype)


class UNetBlock(nn.Module):
    """EDM's unified residual block (DDPM++, NCSN++ and ADM), optional up/down and attention.

    Keys: norm0, conv0, affine, norm1, conv1, [skip], [norm2, qkv, proj].
    """

    fast_attention = False  # zoo/fast.py: scaled_dot_product_attention in fp32 (per instance)

    def __init__(self, in_channels, out_channels, emb_channels, up=False, down=False, attention=False,
                 num_heads=None, channels_per_head=64, dropout=0, skip_scale=1, eps=1e-5,
                 resample_filter=(1, 1), resample_proj=False, adaptive_scale=True,
                 init=None, init_zero=None, init_attn=None):
        super().__init__()
        init = dict(init or {})
        init_zero = dict(init_zero if init_zero is not None else dict(init_weight=0))
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.emb_channels = emb_channels
        if not attention:
            self.num_heads = 0
        else:
            self.num_heads = num_heads if num_heads is not None else out_channels // channels_per_head
        self.dropout = dropout
        self.skip_scale = skip_scale
        self.adaptive_scale = adaptive_scale

        self.norm0 = GroupNorm(num_channels=in_channels, eps=eps)
        self.conv0 = Conv2d(in_channels, out_channels, kernel=3, up=up, down=down, resample_filter=resample_filter, **init)
        self.affine = Linear(emb_channels, out_channels * (2 if adaptive_scale else 1), **init)
        self.norm1 = GroupNorm(num_channels=out_channels, eps=eps)
        self.conv1 = Conv2d(out_channels, out_channels, kernel=3, **init_zero)

        self.skip = None
        if out_channels != in_channels or up or down:
            # A 1x1 projection when channels change (or resample_proj), else a pure resampler.
            kernel = 1 if resample_proj or out_channels != in_channels else 0
            self.skip = Conv2d(in_channels, out_channels, kernel=kernel, up=up, down=down, resample_filter=resample_filter, **init)

        if self.num_heads:
            self.norm2 = GroupNorm(num_channels=out_channels, eps=eps)
            self.qkv = Conv2d(out_channels, out_channels * 3, kernel=1, **(init_attn if init_attn is not None else init))
            self.proj = Conv2d(out_channels, out_channels, kernel=1, **init_zero)

    def forward(self, x, emb):
        orig = x
        x = self.conv0(F.silu(self.norm0(x)))

        params = self.affine(emb).unsqueeze(2).unsqueeze(3)
        if self.adaptive_scale:
            scale, shift = params.chunk(chunks=2, dim=1)
            h = self.norm1(x)
            x = F.silu(shift.to(h.dtype) + h * (scale.to(h.dtype) + 1))
        else:
            x = F.silu(self.norm1(x + params.to(x.dtype)))

        x = self.conv1(F.dropout(x, p=self.dropout, training=self.training))
        res = self.skip(orig) if self.skip is not None else orig
        x = (x + res.to(x.dtype)) * self.skip_scale

        if self.num_heads:
            h = self.qkv(self.norm2(x))
            q, k, v = h.reshape(x.shape[0] * self.num_heads, x.shape[1] // self.num_heads, 3, -1).unbind(2)
            if self.fast_attention:
                a = F.scaled_dot_product_attention(q.float().transpose(1, 2), k.float().transpose(1, 2),
                                                   v.float().transpose(1, 2)).transpose(1, 2).to(q.dtype)
            else:
                w = attention_weights(q, k)
                a = torch.einsum("nqk,nck->ncq", w, v.to(w.dtype))
            x = (self.proj(a.reshape(*x.shape)) + x.to(a.dtype)) * self.skip_scale
        return x


class PositionalEmbedding(nn.Module):
    """Sinusoidal noise-level embedding of DDPM++ and ADM (no parameters, no buffers)."""

    def __init__(self, num_channels, max_positions=10000, endpoint=False):
        super().__init__()
        self.num_channels = num_channels
        self.max_positions = max_positions
        self.endpoint = endpoint

    def forward(self, x):
        half = self.num_channels // 2
        freqs = torch.arange(start=0, end=half, dtype=torch.float32, device=x.device)
        freqs = freqs / (half - (1 if self.endpoint else 0))
        freqs = (1 / self.max_positions) ** freqs
        x = torch.outer(x, freqs.to(x.dtype))
        return torch.cat([x.cos(), x.sin()], dim=1)


class FourierEmbedding(nn.Module):
    """Random Fourier noise-level embedding of NCSN++ (buffer `freqs`, num_channels // 2)."""

    def __init__(self, num_channels, scale=16):
        super().__init__()
        freqs = torch.empty(num_channels // 2)
        if not freqs.is_meta:  # meta builds (shape only) skip the draw, see init_parameter
            freqs = torch.randn(num_channels // 2) * scale
        self.register_buffer("freqs", freqs)

    def forward(self, x):
        x = torch.outer(x, (2 * math.pi * self.freqs).to(x.dtype))
        return torch.cat([x.cos(), x.sin()], dim=1)
