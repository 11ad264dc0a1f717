"""Extractor keys -> classes, imported lazily (heavy libraries load only when used).

Every extractor class is constructed as `cls(weights_path=None, *, untrained=False, device=...)`
(see base.py). Metric specs (metrics/protocols.py) name an extractor key from here.
"""
from __future__ import annotations

import importlib

import torch

from .base import FeatureExtractor

# key -> (module under onestep.benchmarks.metrics.extractors, class name)
EXTRACTORS: dict[str, tuple[str, str]] = {
    "inception": ("inception", "InceptionExtractor"),
    "clip": ("clip", "CLIPExtractor"),
    "vgg16": ("vgg", "VGG16Extractor"),
    "dinov2": ("dinov2", "DINOv2Extractor"),
    "digits": ("digits", "DigitsExtractor"),
}


def extractor_class(key: str):
    if key not in EXTRACTORS:
        raise KeyError(f"unknown feature extractor '{key}'; known: {', '.join(sorted(EXTRACTORS))}")
    module, cls = EXTRACTORS[key]
    try:
        mod = importlib.import_module(f"{__package__}.{module}")
        return getattr(mod, cls)
    except (ImportError, AttributeError) as exc:
        raise ImportError(f"feature extractor '{key}' ({module}.{cls}) is not available: {exc}") from exc


def build_extractor(key: str, weights_path=None, *, untrained: bool = False,
                    device: torch.device | str = "cpu") -> FeatureExtractor:
    return extractor_class(key)(weights_path, untrained=untrained, device=device)
