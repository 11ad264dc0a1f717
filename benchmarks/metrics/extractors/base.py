"""The one interface every feature extractor implements.

An extractor takes uint8 images (B, C, H, W) exactly as quantized by
onestep.benchmarks.sampling.quantize, does its own resizing/normalization, and returns a dict
of named float features. Metrics name the features they need (`pool` for Frechet distance,
KID and precision/recall, `logits` for the Inception Score). The identity of the features for
cache keys is (name, weights_sha256, resize_mode, feature kind); a reference made with another
identity is refused.

Contract with the harness (metrics core, 2026-11-22; see extractors/registry.py):
- Construction: `Cls(weights_path=None, *, untrained=False, device="cpu")` (extra keyword
  arguments with defaults are fine). The registry keys are inception -> inception.InceptionExtractor,
  clip -> clip.CLIPExtractor, vgg16 -> vgg.VGG16Extractor, dinov2 -> dinov2.DINOv2Extractor,
  digits -> digits.DigitsExtractor.
- Feature kinds: `pool` is what FD, KID and precision/recall use (VGG16: fc2 after ReLU, as
  torch-fidelity's prc); `logits` feeds the Inception Score (Inception: torch-fidelity's
  `logits_unbiased`; digits: its 10 class logits). Return float tensors (B, D) on any device.
- `identity.untrained` must be True for random weights: every record then carries it.
- `metric_prefix` is informational; display names come from metrics/protocols.py (FID,
  CLIP-FID, FD-DINOv2, FD-digits ...).
"""
from __future__ import annotations

import abc
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ExtractorIdentity:
    name: str  # e.g. "inception-v3-compat", "clip-vit-b-32", "vgg16", "dinov2-vitl14", "digits-cnn"
    weights_sha256: str  # checksum of the weights file used ("" only when there is none)
    resize_mode: str  # e.g. "torch-fidelity-bilinear-299", "clean-bicubic-224", "none"
    untrained: bool  # True when weights are random/untrained: every number is labelled so

    def describe(self) -> str:
        tag = " [UNTRAINED WEIGHTS]" if self.untrained else ""
        return f"{self.name} (weights {self.weights_sha256[:12] or 'none'}, resize {self.resize_mode}){tag}"


class FeatureExtractor(abc.ABC):
    """Maps uint8 image batches to named features; stateless apart from its network."""

    identity: ExtractorIdentity
    feature_dims: dict[str, int]  # e.g. {"pool": 2048, "logits": 1008}
    metric_prefix: str = "FD"  # how its Frechet distance is named: "FID" only for Inception

    @abc.abstractmethod
    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """uint8 (B, C, H, W) -> {feature kind: float tensor (B, D)}."""

    def _networks(self) -> list[torch.nn.Module]:
        return [v for v in vars(self).values() if isinstance(v, torch.nn.Module)]

    def to(self, device: torch.device | str) -> "FeatureExtractor":
        """Move every network the extractor holds."""
        for net in self._networks():
            net.to(device)
        return self

    @property
    def device(self) -> torch.device:
        """Where its network lives (CPU for an extractor without one)."""
        for net in self._networks():
            for p in net.parameters():
                return p.device
        return torch.device("cpu")
