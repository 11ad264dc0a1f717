"""SFD-v's step-conditioned networks (paper 004; diff-sampler sfd-main/models/networks_edm.py).

One network samples at several NFE: the number of student levels N is embedded like a noise
level and modulates every residual block once more. Added to EDM's layout, with the official
state-dict keys (so EDM weights load with strict=False and the new keys stay random):
- `model.map_step` (PositionalEmbedding; DDPM++ with endpoint=True, ADM without; FourierEmbedding
  with its random `freqs` buffer for NCSN++), `model.map_step_layer0/1` (Linear);
- `*.affine_step` (Linear emb -> out * (2 if adaptive_scale else 1)) in every UNetBlock,
  initialized like `affine` (`init`, not `init_zero`: SFD-v does not start as its teacher).
DDPM++/NCSN++: e_s = silu(L1(silu(L0(swap_sin_cos(map_step(N)))))); block: silu(norm1(h + a + a_s)).
ADM: e_s = silu(L1(silu(L0(map_step(N))))); block: h = shift + norm1(h)(scale + 1), then
silu(shift_s + h (scale_s + 1)) (networks_edm.py:153-188, :290-292, :354-358, :438-440, :489-496).
Without a step condition every network here computes exactly its EDM parent.

The parents (SongUNet, DhariwalUNet, UNetBlock) are not edited: after the parent builds its
blocks, each gets an `affine_step` and the block class `StepUNetBlock`; the step embedding
travels to the blocks concatenated to the noise embedding along channels, so SongUNet's own
_encode/_decode loops run unchanged.
"""
from __future__ import annotations

import copy
import math
from typing import Any, Mapping

import torch
from torch import nn
from torch.nn import functional as F

from .dhariwal import DhariwalUNet
from .layers import FourierEmbedding, Linear, PositionalEmbedding, UNetBlock
from .precond import MODEL_TYPES
from .songunet import READ_OUTS, SongUNet

_SONG_INIT = dict(init_mode="xavier_uniform")
_ADM_INIT = dict(init_mode="kaiming_uniform", init_weight=math.sqrt(1 / 3), init_bias=math.sqrt(1 / 3))


class StepUNetBlock(UNetBlock):
    """UNetBlock with SFD-v's `affine_step` modulation. `emb` is either the plain embedding
    (emb_channels wide: the parent's computation) or [emb | emb_step] (2 x emb_channels)."""

    def forward(self, x, emb):
        if emb.shape[1] == self.emb_channels:
            return super().forward(x, emb)
        emb, emb_step = emb.split(self.emb_channels, dim=1)
        orig = x
        x = self.conv0(F.silu(self.norm0(x)))
        params = self.affine(emb).unsqueeze(2).unsqueeze(3)
        params_step = self.affine_step(emb_step).unsqueeze(2).unsqueeze(3)
        if self.adaptive_scale:
            scale, shift = params.chunk(chunks=2, dim=1)
            h = torch.addcmul(shift.to(x.dtype), self.norm1(x), scale.to(x.dtype) + 1)
            scale_s, shift_s = params_step.chunk(chunks=2, dim=1)
            x = F.silu(torch.addcmul(shift_s.to(h.dtype), h, scale_s.to(h.dtype) + 1))
        else:
            x = F.silu(self.norm1(x + params.to(x.dtype) + params_step.to(x.dtype)))
        x = self.conv1(F.dropout(x, p=self.dropout, training=self.training))
        res = self.skip(orig) if self.skip is not None else orig
        x = (x + res.to(x.dtype)) * self.skip_scale
        if self.num_heads:  # attention exactly as the parent: run it through the parent's code path
            x = self._attention(x)
        return x

    def _attention(self, x):
        from .layers import attention_weights

        h = self.qkv(self.norm2(x))
        q, k, v = h.reshape(x.shape[0] * self.num_heads, x.shape[1] // self.num_heads, 3, -1).unbind(2)
        w = attention_weights(q, k)
        a = torch.einsum("nqk,nck->ncq", w, v.to(w.dtype))
        return (self.proj(a.reshape(*x.shape)) + x.to(a.dtype)) * self.skip_scale


def _add_affine_step(net: nn.Module, init: dict) -> None:
    for block in net.modules():
        if isinstance(block, UNetBlock) and not isinstance(block, StepUNetBlock):
            block.affine_step = Linear(block.emb_channels, block.out_channels * (2 if block.adaptive_scale else 1),
                                       **init)
            block.__class__ = StepUNetBlock


def _step_tensor(step_condition, x: torch.Tensor) -> torch.Tensor:
    # diff-sampler: torch.tensor(step_condition).reshape(-1): one N for the batch, or one per sample.
    s = torch.as_tensor(step_condition, dtype=torch.float32, device=x.device).reshape(-1)
    if s.numel() not in (1, x.shape[0]):
        raise ValueError(f"step_condition: give one number of steps or one per sample, got {s.numel()} for a batch "
                         f"of {x.shape[0]}")
    return s


class StepSongUNet(SongUNet):
    """SongUNet (DDPM++/NCSN++) with SFD-v's step condition."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        noise_channels = self.map_layer0.in_features
        emb_channels = self.map_layer1.out_features
        if kwargs.get("embedding_type", "positional") == "positional":
            self.map_step = PositionalEmbedding(num_channels=noise_channels, endpoint=True)
        else:
            self.map_step = FourierEmbedding(num_channels=noise_channels)
        self.map_step_layer0 = Linear(noise_channels, emb_channels, **_SONG_INIT)
        self.map_step_layer1 = Linear(emb_channels, emb_channels, **_SONG_INIT)
        _add_affine_step(self, _SONG_INIT)

    def step_embedding(self, step_condition, x):
        e = self.map_step(_step_tensor(step_condition, x))
        e = e.reshape(e.shape[0], 2, -1).flip(1).reshape(*e.shape)  # swap sin/cos, as for the noise level
        e = F.silu(self.map_step_layer1(F.silu(self.map_step_layer0(e))))
        return e.expand(x.shape[0], -1) if e.shape[0] == 1 else e

    def forward(self, x, noise_labels, class_labels, augment_labels=None, read_out: str = "decoder",
                step_condition=None):
        if step_condition is None:
            return super().forward(x, noise_labels, class_labels, augment_labels, read_out)
        if read_out not in READ_OUTS:
            raise ValueError(f"StepSongUNet: read_out {read_out!r} must be one of {READ_OUTS}")
        emb = self._embedding(noise_labels, class_labels, augment_labels, x)
        emb = torch.cat([emb, self.step_embedding(step_condition, x).to(emb.dtype)], dim=1)
        h, skips = self._encode(x, emb)
        if read_out == "encoder":
            return h
        out = self._decode(h, skips, emb)
        return (out, h) if read_out == "encoder_decoder" else out


class StepDhariwalUNet(DhariwalUNet):
    """DhariwalUNet (ADM) with SFD-v's step condition."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        model_channels = self.map_layer0.in_features
        emb_channels = self.map_layer1.out_features
        self.map_step = PositionalEmbedding(num_channels=model_channels)
        self.map_step_layer0 = Linear(model_channels, emb_channels, **_ADM_INIT)
        self.map_step_layer1 = Linear(emb_channels, emb_channels, **_ADM_INIT)
        _add_affine_step(self, _ADM_INIT)

    def step_embedding(self, step_condition, x):
        e = self.map_step(_step_tensor(step_condition, x))
        e = F.silu(self.map_step_layer1(F.silu(self.map_step_layer0(e))))
        return e.expand(x.shape[0], -1) if e.shape[0] == 1 else e

    def forward(self, x, noise_labels, class_labels, augment_labels=None, read_out: str = "decoder",
                step_condition=None):
        if step_condition is None:
            return super().forward(x, noise_labels, class_labels, augment_labels, read_out)
        # DhariwalUNet.forward computes its embedding inline; the step embedding reaches the
        # blocks through a wrapper that widens `emb` (the blocks are StepUNetBlocks).
        e_step = self.step_embedding(step_condition, x)
        hooks = [b.register_forward_pre_hook(_widen(e_step)) for b in self.modules() if isinstance(b, StepUNetBlock)]
        try:
            return super().forward(x, noise_labels, class_labels, augment_labels, read_out)
        finally:
            for h in hooks:
                h.remove()


def _widen(e_step):
    def hook(block, args):
        x, emb = args
        return x, torch.cat([emb, e_step.to(emb.dtype)], dim=1)
    return hook


STEP_MODEL_TYPES = {"SongUNet": StepSongUNet, "DhariwalUNet": StepDhariwalUNet}
for _cls in STEP_MODEL_TYPES.values():  # so network_config / network_from_config / load_network know them
    MODEL_TYPES.setdefault(_cls.__name__, _cls)


def step_conditioned_network(config: Mapping[str, Any]) -> nn.Module:
    """A preconditioned network with SFD-v's step condition, from an EDM-kwargs network config
    (`network_config(net)` of an EDMPrecond/VP/VE around SongUNet or DhariwalUNet). Random init;
    load the teacher with `load_state_dict(teacher.state_dict(), strict=False)`.
    forward(x, sigma, class_labels=None, step_condition=None)."""
    from ..core.config import ConfigError
    from .config import network_from_config

    config = copy.deepcopy(dict(config))
    model = config.get("model_class")
    if model in STEP_MODEL_TYPES:
        config["model_class"] = STEP_MODEL_TYPES[model].__name__
    elif model not in {c.__name__ for c in STEP_MODEL_TYPES.values()}:
        raise ConfigError(f"step_conditioned_network: model_class {model!r} has no step-conditioned variant; "
                          f"use a preconditioned {sorted(STEP_MODEL_TYPES)} config (zoo.network_config(net))")
    return network_from_config(config)


def step_conditioned_from(teacher: nn.Module) -> nn.Module:
    """SFD-v's student: the teacher's weights in its step-conditioned variant (the new
    map_step*/affine_step parameters keep their random init, as diff-sampler's strict=False load)."""
    from .config import network_config

    net = step_conditioned_network(network_config(teacher))
    missing, unexpected = net.load_state_dict(teacher.state_dict(), strict=False)
    bad = [k for k in missing if "map_step" not in k and "affine_step" not in k]
    if bad or unexpected:
        raise RuntimeError(f"step_conditioned_from: teacher weights do not fit: missing {bad[:3]}, unexpected "
                           f"{list(unexpected)[:3]}")
    return net
