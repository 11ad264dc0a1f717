"""Frozen pretrained feature networks P_l of the projected discriminator (paper 000 eq. 4).

GDD/D2O use VGG16-BN + EfficientNet-lite0 on CIFAR-10 and DeiT + EfficientNet-lite0 on the
64x64 datasets (paper 000 section 4.4), split into four scales as the official code (Projected
GAN's pg_modules) does and loaded from local weights files; images are resized to 224 first
(appendix B.4). The embedded default uses the suite's own digits
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
    timm_name: str  # the weights file is <weights_dir>/<timm_name>{.safetensors,.pth,.bin}
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


# The backbones of Projected GAN as the official GDD code builds them (Zyriix/GDD
# feature_networks/pretrained_builder.py, constants.py), each giving four maps:
#   vgg16_bn            torchvision VGG16-BN `features` split at indices 13/23/33/43:
#                       strides 2/4/8/16, 128/256/512/512 channels (112/56/28/14 at 224)
#   efficientnet_lite0  stem + blocks[0:2] / blocks[2] / blocks[3:5] / blocks[5:]: strides
#                       4/8/16/32, 24/40/112/320 channels (= timm features_only stages 1-4)
#   deit_base           tokens after blocks 2/5/8/11 (14x14 grid, 768 channels); the DPT-style
#                       reassembly into a 56/28/14/7 pyramid is random and lives in projected.py
# Input normalisation: ImageNet mean/std for VGG and DeiT, inception (0.5) for the tf_ EfficientNet.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TIMM_FEATURE_NETWORKS: dict[str, TimmSpec] = {
    "vgg16_bn": TimmSpec("vgg16_bn", IMAGENET_MEAN, IMAGENET_STD),
    "efficientnet_lite0": TimmSpec("tf_efficientnet_lite0", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "deit_base": TimmSpec("deit_base_distilled_patch16_224", IMAGENET_MEAN, IMAGENET_STD),
}
VGG16_BN_SPLITS = (13, 23, 33, 43)
VGG16_BN_TORCHVISION_FILE = "vgg16_bn-6c64b313.pth"  # torchvision's hub checkpoint, same `features.*` keys as timm
LITE0_STAGES = (1, 2, 3, 4)
DEIT_HOOKS = (2, 5, 8, 11)
FEATURE_NETWORKS = tuple(TIMM_FEATURE_NETWORKS) + ("digits",)
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".bin")
# Official nominal head resolutions: images go to 224 but the heads are sized for im_res = 256
# (Zyriix/GDD training_loop.py: im_res = 256 below 224), i.e. [256/4, /8, /16, /32] doubled by CSM.
OFFICIAL_NOMINAL_RESOLUTIONS = (128, 64, 32, 16)


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
    """Frozen multi-scale features: forward(images in [-1, 1]) -> list of (B, C_l, H_l, W_l).

    `nominal_resolutions`: the sizes the official code builds the heads for (None = the real
    feature sizes after cross-scale mixing). `vit_tokens`: the maps are a ViT's token grids at
    one stride, to be reassembled into a pyramid by the projection (DPT style).
    """

    def __init__(self, name: str, net: nn.Module, extract: Callable[[nn.Module, torch.Tensor], list[torch.Tensor]],
                 input_size: int | None, mean, std, in_channels: int, untrained: bool = False, source: str = "",
                 nominal_resolutions: tuple[int, ...] | None = None, vit_tokens: bool = False):
        super().__init__()
        net.eval().requires_grad_(False)
        object.__setattr__(self, "_net", net)  # outside the module tree on purpose (see module doc)
        self._extract = extract
        self.name = name
        self.input_size = input_size
        self.in_channels = in_channels
        self.untrained = untrained
        self.source = source
        self.nominal_resolutions = nominal_resolutions
        self.vit_tokens = vit_tokens
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
        """[-1, 1] -> the network's normalisation, resized to its input size (bilinear, as
        official: normalising and resizing commute, both being linear per channel)."""
        if x.shape[1] == 1 and self.in_channels == 3:  # grayscale data into an RGB network
            x = x.expand(-1, 3, -1, -1)
        if self.input_size and x.shape[-1] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        return ((x + 1) / 2 - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self._extract(self._net, self.preprocess(x.float()))

    def infer_channels(self, resolution: int, channels: int) -> list[tuple[int, int]]:
        """(channels, spatial size) of each raw feature map for inputs of this size."""
        with torch.no_grad():
            dev = self.mean.device
            feats = self(torch.zeros(1, channels, resolution, resolution, device=dev))
        self.channels = [f.shape[1] for f in feats]
        return [(f.shape[1], f.shape[-1]) for f in feats]


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors or a torch file (weights_only: never executes code)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict")
    return state


def _vgg16_bn(weights_dir, random_weights: bool) -> tuple[nn.Module, str]:
    from torchvision.models.vgg import cfgs, make_layers

    # Only the convolutional trunk (torchvision's VGG16-BN `features`): the 120M classifier
    # parameters are never used.
    net = nn.Module()
    net.features = make_layers(cfgs["D"], batch_norm=True)
    if random_weights:
        return net.features, "random"
    try:
        path = find_weights("vgg16_bn", weights_dir)
    except FileNotFoundError:
        path = Path(torch.hub.get_dir()) / "checkpoints" / VGG16_BN_TORCHVISION_FILE
        if not path.is_file():
            raise
    try:
        state = {k[len("features."):]: v for k, v in _read_state_dict(path).items() if k.startswith("features.")}
        net.features.load_state_dict(state, strict=True)
    except (RuntimeError, ValueError, OSError) as e:
        raise ValueError(f"weights file {path} is not a valid 'vgg16_bn' state dict (timm's or torchvision's "
                         f"VGG16-BN with `features.*` keys): {e}".strip()[:2000]) from None
    return net.features, str(path)


def _vgg16_bn_extract(features, x):
    out, start = [], 0
    for stop in VGG16_BN_SPLITS:
        x = features[start:stop](x)
        out.append(x)
        start = stop
    return out


def _timm_model(spec: TimmSpec, weights_dir, random_weights: bool, **kwargs) -> tuple[nn.Module, str]:
    import timm

    if random_weights:
        return timm.create_model(spec.timm_name, pretrained=False, **kwargs), "random"
    path = find_weights(spec.timm_name, weights_dir)
    try:
        net = timm.create_model(spec.timm_name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), **kwargs)
    except (RuntimeError, KeyError, ValueError, OSError) as e:
        raise ValueError(f"weights file {path} is not a valid '{spec.timm_name}' state dict "
                         f"(save timm.create_model('{spec.timm_name}').state_dict()): {e}".strip()[:2000]) from None
    return net, str(path)


def _timm_extract(net, x):
    return list(net(x))


def _deit_extract(net, x):
    """Token grids after blocks 2/5/8/11 without the class and distillation tokens (the
    official readout 'ignore', start index 2), as (B, 768, 14, 14) maps."""
    b = x.shape[0]
    tokens = net.patch_embed(x)
    grid = int(round(tokens.shape[1] ** 0.5))
    prefix = [net.cls_token.expand(b, -1, -1)]
    if getattr(net, "dist_token", None) is not None:
        prefix.append(net.dist_token.expand(b, -1, -1))
    h = torch.cat(prefix + [tokens], dim=1)
    if h.shape[1] != net.pos_embed.shape[1]:
        raise ValueError(f"DeiT expects {net.pos_embed.shape[1]} tokens (224x224 input), got {h.shape[1]}")
    h = net.pos_drop(h + net.pos_embed)
    out = []
    for i, blk in enumerate(net.blocks[:DEIT_HOOKS[-1] + 1]):
        h = blk(h)
        if i in DEIT_HOOKS:
            out.append(h[:, len(prefix):].transpose(1, 2).reshape(b, -1, grid, grid))
    return out


def set_double_backward_attention(net: nn.Module) -> int:
    """Make timm attention use its explicit softmax(QK^T)V path, which is twice
    differentiable (R1 backpropagates a gradient through the frozen network); the fused SDPA
    kernels (CPU flash, CUDA flash / memory-efficient) have no double backward. Returns the
    number of attention modules switched."""
    n = 0
    for m in net.modules():
        if hasattr(m, "fused_attn"):
            m.fused_attn = False
            n += 1
    return n


def load_timm_feature_network(name: str, weights: str | os.PathLike | None = None,
                              weights_dir: str | os.PathLike | None = None, random_weights: bool = False,
                              double_backward: bool = True) -> FrozenFeatureNetwork:
    """An official backbone from a local weights file (never downloads, never runs pickled code).

    `random_weights=True` builds the exact architecture with random weights (tests, perf
    scripts); such a network is marked `untrained`. `double_backward` (R1 on) selects an
    attention path that supports the R1 double backward.
    """
    if name not in TIMM_FEATURE_NETWORKS:
        raise ConfigError(f"unknown feature network {name!r}{suggest(name, FEATURE_NETWORKS)}; choose from {list(FEATURE_NETWORKS)}")
    spec = TIMM_FEATURE_NETWORKS[name]
    if weights:  # an explicit file: look only there
        weights_dir = Path(weights).parent
        if not Path(weights).is_file():
            raise FileNotFoundError(f"feature network weights file {weights} does not exist; place the state dict of "
                                    f"'{spec.timm_name}' there")
    common = dict(input_size=224, mean=spec.mean, std=spec.std, in_channels=3, untrained=random_weights,
                  nominal_resolutions=OFFICIAL_NOMINAL_RESOLUTIONS)
    if name == "vgg16_bn":
        net, source = _vgg16_bn(weights_dir, random_weights)
        return FrozenFeatureNetwork(name, net, _vgg16_bn_extract, source=source, **common)
    if name == "efficientnet_lite0":
        net, source = _timm_model(spec, weights_dir, random_weights, features_only=True, out_indices=LITE0_STAGES)
        return FrozenFeatureNetwork(name, net, _timm_extract, source=source, **common)
    net, source = _timm_model(spec, weights_dir, random_weights)
    if double_backward:
        set_double_backward_attention(net)
    return FrozenFeatureNetwork(name, net, _deit_extract, source=source, vit_tokens=True, **common)


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
                          random_weights: bool = False, double_backward: bool = True) -> FrozenFeatureNetwork:
    if name == "digits":
        if random_weights:  # the architecture without training it (perf scripts, --tiny checks)
            from ..feature_nets.digits import DigitsFeatureNet

            net = DigitsFeatureNet().eval().requires_grad_(False)
            net.untrained, net.source = True, "random"
            return wrap_digits_feature_network(net, in_channels)
        return load_digits_feature_network(in_channels)
    return load_timm_feature_network(name, weights_dir=weights_dir, random_weights=random_weights,
                                     double_backward=double_backward)
