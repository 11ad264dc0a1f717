"""Plain VGG16 discriminator: GDD's baseline (paper 000 section 3.2 and Table 1a, FID 4.04).

Built as the released code's only pretrained-backbone plain discriminator (Zyriix/GDD
training/network_d.py `PretrainedD`): LPIPS' ScalingLayer on [-1, 1] input, the trunk, global
average pooling, fc 512 -> 512 with bias + SiLU, out 512 -> 1 without bias, both linear layers
initialised as the official `Linear` (kaiming-normal weights, std 1/sqrt(fan_in); zero bias).
What PretrainedD leaves open is ours (docs/ARCHITECTURE.md): the trunk is torchvision VGG16's
whole `features` (ImageNet weights, fine-tuned as a whole), inputs are resized to 224 first, and
conditional data get a class projection on a 64-wide output. Weights come from torchvision's
file `vgg16-397923af.pth` in $TORCH_HOME/hub/checkpoints or a given path (weights_only=True).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

VGG16_FILE = "vgg16-397923af.pth"


def vgg16_weights_path(path: str | os.PathLike | None = None) -> Path:
    if path:
        return Path(path)
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILE


def _official_linear(fan_in: int, fan_out: int, bias: bool) -> nn.Linear:
    """nn.Linear initialised as network_d.py `Linear` (init_mode kaiming_normal, init_bias 0)."""
    layer = nn.Linear(fan_in, fan_out, bias=bias)
    with torch.no_grad():
        layer.weight.normal_(0.0, fan_in ** -0.5)
        if bias:
            layer.bias.zero_()
    return layer


class VGG16Discriminator(nn.Module):
    """forward(images in [-1, 1], labels) -> [logits (B, 1)]."""

    def __init__(self, label_dim: int = 0, input_size: int | None = 224, weights: str | None = None,
                 random_weights: bool = False, cmap_dim: int = 64):
        super().__init__()
        import torchvision

        vgg = torchvision.models.vgg16(weights=None)
        self.untrained_features = random_weights
        if not random_weights:
            path = vgg16_weights_path(weights)
            if not path.is_file():
                raise FileNotFoundError(f"VGG16 discriminator needs torchvision's ImageNet weights at {path}; "
                                        "download them where a network exists (torchvision.models.vgg16(weights='DEFAULT')) "
                                        "and copy the file there, or pass weights=")
            state = torch.load(path, map_location="cpu", weights_only=True)
            try:
                vgg.load_state_dict(state)
            except RuntimeError as e:
                raise ValueError(f"{path} is not a torchvision VGG16 state dict: {str(e)[:500]}") from None
        from lpips import ScalingLayer  # what PretrainedD imports: [-1, 1] -> ImageNet-normalised

        self.scale = ScalingLayer()
        self.trunk = vgg.features
        self.input_size = input_size
        self.label_dim = label_dim
        self.fc = _official_linear(512, 512, bias=True)
        self.act = nn.SiLU()
        self.out = _official_linear(512, cmap_dim if label_dim else 1, bias=False)
        if label_dim:
            self.embed = nn.Linear(label_dim, cmap_dim)
            self.cmap_dim = cmap_dim

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None, augment=None) -> list[torch.Tensor]:
        x = augment(images.float()) if augment is not None else images.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.input_size and x.shape[-1] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        h = self.out(self.act(self.fc(self.trunk(self.scale(x)).mean((2, 3)))))
        if self.label_dim:
            if labels is None:
                raise ValueError("VGG16 discriminator is class-conditional: pass one-hot labels")
            h = (h * self.embed(labels.to(h.dtype))).sum(1, keepdim=True) / math.sqrt(self.cmap_dim)
        return [h]
