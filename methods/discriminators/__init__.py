"""Discriminators for the GAN-distillation plugins, selectable by config.

kind "projected": Projected-GAN discriminator over frozen feature networks (paper 000 eq. 4;
  default of GDD/D2O). feature_networks: ["vgg16_bn", "efficientnet_lite0"] for CIFAR-10,
  ["deit_base", "efficientnet_lite0"] for the 64x64 datasets, ["digits"] for the embedded default.
kind "vgg16": the plain VGG16 baseline (paper 000 Table 1a).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from ..core.config import ConfigError, suggest
from .ada import AdaptiveAugment, AugmentPipe, build_ada
from .augment import diff_augment, parse_policy
from .feature_networks import FEATURE_NETWORKS, FrozenFeatureNetwork, build_feature_network
from .projected import ProjectedDiscriminator
from .vgg_baseline import VGG16Discriminator

KINDS = ("projected", "vgg16")
CLASS_EMBEDDING_FILE = "tf_efficientnet_lite0_embed"


@dataclass
class DiscriminatorConfig:
    kind: str = "projected"
    feature_networks: list[str] = field(default_factory=lambda: ["digits"])
    weights_dir: str = ""  # where <timm_name>.safetensors/.pth live ('' = $ONESTEP_CACHE/feature_networks)
    vgg16_weights: str = ""  # VGG16 baseline weights file ('' = torchvision's hub checkpoint path)
    random_weights: bool = False  # random feature weights: only for tests/perf; results are 'untrained'
    projection_seed: int = 0  # seed of the fixed random CCM/CSM mixing
    width_scale: float = 1.0  # scales the CCM and head widths (1 = official; smoke presets use 0.25)
    augment: str = ""  # DiffAugment policy, e.g. "color,translation,cutout"; '' = none (paper 000 Table 1b)
    # ADA (StyleGAN2-ADA 'bgc', ada.py), as the official --ada-target/--augment-p: a pipe when
    # ada_target > 0 (adaptive) or ada_p > 0 (fixed p); both 0 = no ADA (every train.sh line).
    ada_target: float = 0.0  # StyleGAN2-ADA's default is 0.6
    ada_p: float = 0.0  # initial (or fixed) augmentation probability
    ada_kimg: float = 500.0  # p can move by 1 in this many kimg (official ada_kimg)
    ada_interval: int = 4  # steps between p updates (official ada_interval)
    # Class embedding of conditional heads: <weights_dir>/tf_efficientnet_lite0_embed.{safetensors,pth}
    # holding {"weight": (1000, 320)} (official in_embeddings/tf_efficientnet_lite0.pkl's `embed`);
    # missing -> a random embedding, recorded as embedding_source "random".
    class_embedding: str = "auto"  # auto | pretrained (file required) | random


def load_class_embedding(cfg: DiscriminatorConfig):
    """(weight (1000, 320) or None, source) of the conditional heads' ImageNet class embedding."""
    from .feature_networks import _read_state_dict, find_weights
    from .projected import EMBED_CLASSES, EMBED_DIM

    if cfg.class_embedding not in ("auto", "pretrained", "random"):
        raise ConfigError(f"class_embedding {cfg.class_embedding!r}: choose 'auto', 'pretrained' or 'random'")
    if cfg.class_embedding == "random" or cfg.random_weights:
        return None, "random"
    try:
        path = find_weights(CLASS_EMBEDDING_FILE, cfg.weights_dir or None)
    except FileNotFoundError:
        if cfg.class_embedding == "pretrained":
            raise
        return None, "random"
    weight = _read_state_dict(path).get("weight")
    if weight is None or tuple(weight.shape) != (EMBED_CLASSES, EMBED_DIM):
        raise ValueError(f"{path}: expected {{'weight': ({EMBED_CLASSES}, {EMBED_DIM})}}, the state dict of the official "
                         f"in_embeddings/tf_efficientnet_lite0.pkl 'embed' (nn.Embedding)")
    return weight.float(), str(path)


def build_discriminator(cfg: DiscriminatorConfig, resolution: int, channels: int, label_dim: int,
                        double_backward: bool = True) -> nn.Module:
    """Discriminator D(images in [-1, 1], one-hot labels) -> list of logit tensors.

    `label_dim` 0 builds an unconditional discriminator; `double_backward` (R1 on) makes ViT
    attention twice differentiable."""
    parse_policy(cfg.augment)  # validate early
    if cfg.kind == "projected":
        unknown = [n for n in cfg.feature_networks if n not in FEATURE_NETWORKS]
        if unknown:
            raise ConfigError(f"unknown feature network {unknown[0]!r}{suggest(unknown[0], FEATURE_NETWORKS)}; "
                              f"choose from {list(FEATURE_NETWORKS)}")
        nets = [build_feature_network(n, channels, cfg.weights_dir or None, cfg.random_weights, double_backward)
                for n in cfg.feature_networks]
        weight, source = load_class_embedding(cfg) if label_dim else (None, "none")
        return ProjectedDiscriminator(nets, resolution, channels, label_dim, seed=cfg.projection_seed,
                                      width_scale=cfg.width_scale, embed_weight=weight, embedding_source=source)
    if cfg.kind == "vgg16":
        return VGG16Discriminator(label_dim, weights=cfg.vgg16_weights or None, random_weights=cfg.random_weights)
    raise ConfigError(f"unknown discriminator kind {cfg.kind!r}{suggest(cfg.kind, KINDS)}; choose one of {list(KINDS)}")


__all__ = ["DiscriminatorConfig", "build_discriminator", "load_class_embedding", "ProjectedDiscriminator", "VGG16Discriminator",
           "FrozenFeatureNetwork", "diff_augment", "parse_policy", "AdaptiveAugment", "AugmentPipe", "build_ada"]
