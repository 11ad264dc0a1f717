"""The suite's digits feature network behind our FeatureExtractor interface and registered
with torch-fidelity, so FD-digits / IS-digits / KID-digits / PR-digits can be computed either
by our harness or by torch-fidelity's own code paths on the same features.

Both paths share `uint8_to_model_range`, so they see bit-identical inputs: uint8 -> x/127.5 - 1
(the training range of the suite), then the net averages colours and resizes to 16x16 itself.
Its metrics are named for it (FD-digits, never FID).
"""
from __future__ import annotations

from pathlib import Path

import torch

from onestep.methods.feature_nets.digits import (
    DigitsFeatureNet,
    get_digits_feature_net,
    load_digits_feature_net,
)

from .base import ExtractorIdentity, FeatureExtractor

EXTRACTOR_NAME = "digits-cnn"
TORCH_FIDELITY_NAME = "onestep-digits-cnn"


def uint8_to_model_range(images: torch.Tensor) -> torch.Tensor:
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise TypeError(f"digits extractor expects uint8 (B, 1 or 3, H, W) images, got {images.dtype} {tuple(images.shape)}")
    return images.to(torch.float32) / 127.5 - 1


def _load_net(weights_path: str | Path | None, device) -> DigitsFeatureNet:
    return get_digits_feature_net(device) if weights_path is None else load_digits_feature_net(weights_path, device)


class DigitsExtractor(FeatureExtractor):
    """'pool': 128-d penultimate features; 'logits': 10 class logits (for IS-digits)."""

    metric_prefix = "FD-digits"

    def __init__(self, weights_path: str | Path | None = None, *, untrained: bool = False,
                 device: torch.device | str = "cpu", net: DigitsFeatureNet | None = None, **_ignored):
        self.net = net if net is not None else _load_net(weights_path, device)
        sha = getattr(self.net, "weights_sha256", "")
        self.identity = ExtractorIdentity(
            name=EXTRACTOR_NAME, weights_sha256=sha,
            resize_mode=f"mean-channels-bilinear-antialias-{self.net.input_resolution}", untrained=bool(untrained))
        self.feature_dims = {"pool": self.net.embed_dim, "logits": self.net.num_classes}

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = uint8_to_model_range(images).to(self.net.head.weight.device)
        pool, logits = self.net.embed_and_logits(x)
        return {"pool": pool, "logits": logits}


def _torch_fidelity_class():
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase

    class TorchFidelityDigits(FeatureExtractorBase):
        """torch-fidelity view of the same net: features '128' (pool) and 'logits'."""

        FEATURES = ("128", "logits")

        def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
            super().__init__(name, features_list)
            self.net = _load_net(feature_extractor_weights_path, "cpu")

        @staticmethod
        def get_provided_features_list():
            return TorchFidelityDigits.FEATURES

        @staticmethod
        def get_default_feature_layer_for_metric(metric):
            return {"isc": "logits", "fid": "128", "kid": "128", "prc": "128"}[metric]

        @staticmethod
        def can_be_compiled():
            return False

        @staticmethod
        def get_dummy_input_for_compile():
            return torch.zeros(1, 1, 8, 8, dtype=torch.uint8)

        def forward(self, x):
            pool, logits = self.net.embed_and_logits(uint8_to_model_range(x).to(self.net.head.weight.device))
            out = {"128": pool, "logits": logits}
            return tuple(out[f] for f in self.features_list)

    return TorchFidelityDigits


def register_with_torch_fidelity() -> str:
    """Register once per process (torch-fidelity refuses a second registration); returns the name."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    if TORCH_FIDELITY_NAME not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(TORCH_FIDELITY_NAME, _torch_fidelity_class())
    return TORCH_FIDELITY_NAME
