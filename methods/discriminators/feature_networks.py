"""Frozen pretrained feature networks P_l of the projected discriminator (paper 000 eq. 4).

GDD/D2O use VGG16-BN + EfficientNet-lite0 on CIFAR-10 and DeiT + EfficientNet-lite0 on the
64x64 datasets (paper 000 section 4.4), loaded through timm from a local weights file; images
are resized to 224 first (appendix B.4). The embedded default uses the suite's own digits
feature network at its native input size.

The wrapped network is deliberately kept out of the module tree (not in `parameters()` or
`state_dict()`): it never trains, and checkpointing 138M frozen VGG weights in every resume
file would be waste. It still follows `.to(device)`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..core.config import ConfigError, suggest
from ..core.paths import cache_dir


@dataclass(frozen=True)
class TimmSpec:
    timm_name: str
    out_indices: tuple[int, ...]  # which timm feature stages feed the discriminator heads


# Four scales per network as Projected GAN (Sauer et al. 2021): strides 4/8/16/32 for the CNNs;
# for DeiT, blocks 3/6/9/12 (all at stride 16).
TIMM_FEATURE_NETWORKS: dict[str, TimmSpec] = {
    "vgg16_bn": TimmSpec("vgg16_bn", (2, 3, 4, 5)),
    "efficientnet_lite0": TimmSpec("tf_efficientnet_lite0", (1, 2, 3, 4)),
    "deit_base": TimmSpec("deit_base_distilled_patch16_224", (2, 5, 8, 11)),
}
FEATURE_NETWORKS = tuple(TIMM_FEATURE_NETWORKS) + ("digits",)
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".bin")


def default_weights_dir() -> Path:
    return cache_dir("feature_networks")


def find_weights(timm_name: str, weights_dir: str | os.PathLike | None = None) -> Path:
    """The local weights file of a timm model: <dir>/<timm_name>{.safetensors,.pth,.bin}."""
    folder = Path(weights_dir) if weights_dir else default_weights_dir()
    for suffix in WEIGHT_SUFFIXES:
        path = folder / f"{timm_name}{suffix}"
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"pretrained weights for feature network '{timm_name}' not found: expected {folder / (timm_name + '.safetensors')} "
        f"(or .pth/.bin). Download them where a network exists (timm.create_model('{timm_name}', pretrained=True) "
        f"then save model.state_dict()), and put the file there, or pass weights_dir=")


class FrozenFeatureNetwork(nn.Module):
    """Frozen multi-scale features: forward(images in [-1, 1]) -> list of (B, C_l, H_l, W_l)."""

    def __init__(self, name: str, net: nn.Module, extract: Callable[[nn.Module, torch.Tensor], list[torch.Tensor]],
                 input_size: int | None, mean, std, in_channels: int, untrained: bool = False, source: str = ""):
        super().__init__()
        net.eval().requires_grad_(False)
        object.__setattr__(self, "_net", net)  # outside the module tree on purpose (see module doc)
        self._extract = extract
        self.name = name
        self.input_size = input_size
        self.in_channels = in_channels
        self.untrained = untrained
        self.source = source
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.channels: list[int] = []

    @property
    def net(self) -> nn.Module:
        return self._net

    def _apply(self, fn, recurse=True):
        self._net._apply(fn)
        return super()._apply(fn, recurse)

    def train(self, mode: bool = True):  # frozen BatchNorm statistics: always eval
        super().train(mode)
        self._net.eval()
        return self

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1 and self.in_channels == 3:  # grayscale data into an RGB network
            x = x.expand(-1, 3, -1, -1)
        if self.input_size and x.shape[-1] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        return ((x + 1) / 2 - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self._extract(self._net, self.preprocess(x.float()))

    def infer_channels(self, resolution: int, channels: int) -> list[tuple[int, int]]:
        """(channels, spatial size) of each feature map for inputs of this size."""
        with torch.no_grad():
            dev = self.mean.device
            feats = self(torch.zeros(1, channels, resolution, resolution, device=dev))
        self.channels = [f.shape[1] for f in feats]
        return [(f.shape[1], f.shape[-1]) for f in feats]


def _timm_extract(net, x):
    return list(net(x))


def load_timm_feature_network(name: str, weights: str | os.PathLike | None = None,
                              weights_dir: str | os.PathLike | None = None, random_weights: bool = False) -> FrozenFeatureNetwork:
    """A timm feature network from a local weights file (never downloads, never runs pickled code).

    `random_weights=True` builds the exact architecture with random weights (tests, perf
    scripts); such a network is marked `untrained`.
    """
    import timm

    if name not in TIMM_FEATURE_NETWORKS:
        raise ConfigError(f"unknown feature network {name!r}{suggest(name, FEATURE_NETWORKS)}; choose from {list(FEATURE_NETWORKS)}")
    spec = TIMM_FEATURE_NETWORKS[name]
    kwargs = dict(features_only=True, out_indices=spec.out_indices)
    if random_weights:
        net = timm.create_model(spec.timm_name, pretrained=False, **kwargs)
        source = "random"
    else:
        path = Path(weights) if weights else find_weights(spec.timm_name, weights_dir)
        if not path.is_file():
            raise FileNotFoundError(f"feature network weights file {path} does not exist; place the timm state dict of "
                                    f"'{spec.timm_name}' there")
        try:
            net = timm.create_model(spec.timm_name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), **kwargs)
        except (RuntimeError, KeyError, ValueError, OSError) as e:
            raise ValueError(f"weights file {path} is not a valid '{spec.timm_name}' state dict "
                             f"(save timm.create_model('{spec.timm_name}').state_dict()): {e}".strip()[:2000]) from None
        source = str(path)
    cfg = net.pretrained_cfg
    return FrozenFeatureNetwork(name, net, _timm_extract, input_size=224, mean=cfg["mean"], std=cfg["std"],
                                in_channels=3, untrained=random_weights, source=source)


def _digits_extract(net, x):
    return list(net.feature_maps(x))


def wrap_digits_feature_network(net: nn.Module, in_channels: int) -> FrozenFeatureNetwork:
    """The suite's digits feature network (`feature_maps(x)` in [-1, 1], own input size)."""
    if not hasattr(net, "feature_maps"):
        raise TypeError(f"digits feature network {type(net).__name__} has no feature_maps(x)")
    # It takes images in [-1, 1]: mean = std = 0.5 makes `preprocess` the identity.
    fn = FrozenFeatureNetwork("digits", net, _digits_extract, input_size=getattr(net, "input_size", None),
                              mean=[0.5] * in_channels, std=[0.5] * in_channels, in_channels=in_channels,
                              untrained=bool(getattr(net, "untrained", False)), source=str(getattr(net, "source", "digits")))
    return fn


def load_digits_feature_network(in_channels: int) -> FrozenFeatureNetwork:
    """A digits network trained with another seed than the FD-digits metric's network.

    A generator trained against the very features it is later measured with can lower the
    metric without improving the images (feature leakage); a separately trained network keeps
    the embedded default's FD-digits an outside judge."""
    from ..feature_nets.digits import DigitsNetRecipe, get_digits_feature_net  # trained and cached by the suite

    return wrap_digits_feature_network(get_digits_feature_net(recipe=DigitsNetRecipe(seed=1)), in_channels)


def build_feature_network(name: str, in_channels: int, weights_dir: str | None = None,
                          random_weights: bool = False) -> FrozenFeatureNetwork:
    if name == "digits":
        if random_weights:  # the architecture without training it (perf scripts, --tiny checks)
            from ..feature_nets.digits import DigitsFeatureNet

            net = DigitsFeatureNet().eval().requires_grad_(False)
            net.untrained, net.source = True, "random"
            return wrap_digits_feature_network(net, in_channels)
        return load_digits_feature_network(in_channels)
    return load_timm_feature_network(name, weights_dir=weights_dir, random_weights=random_weights)
