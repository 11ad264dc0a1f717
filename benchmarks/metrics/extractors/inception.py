"""Inception-v3 features exactly as torch-fidelity computes them ('inception-v3-compat').

The network, its TF1-compatible bilinear resize to 299 and its normalisation are
torch-fidelity's own module, so FID/KID/PR ('pool', 2048-d) and IS ('logits', the 1008
unbiased logits) equal `torch_fidelity.calculate_metrics` on the same images. Only the weight
loading is ours: torch-fidelity reads the file with `torch.load(weights_only=False)`, which
can execute code; we read it with `weights.load_state_dict` and hand the tensors over.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from unittest import mock

import torch

from onestep.benchmarks.metrics import weights as weights_mod
from onestep.benchmarks.metrics.extractors.base import ExtractorIdentity, FeatureExtractor

_PATCH_LOCK = threading.Lock()


@contextmanager
def patched_attr(module, name: str, value):
    """Temporarily replace a library's loader function (serialised: the patch is global)."""
    with _PATCH_LOCK, mock.patch.object(module, name, value):
        yield


def to_rgb_uint8(images: torch.Tensor, who: str) -> torch.Tensor:
    """Validate a uint8 (B, C, H, W) batch; grey images are repeated to 3 channels."""
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
        raise TypeError(f"{who} expects uint8 images as quantized by sampling.quantize, got "
                        f"{getattr(images, 'dtype', type(images).__name__)}")
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"{who} expects images of shape (B, 1 or 3, H, W), got {tuple(images.shape)}")
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


def _internal_dtype(name: str) -> str:
    if name not in ("float32", "float64"):
        raise ValueError(f"internal_dtype must be 'float32' (the libraries' default) or 'float64', got '{name}'")
    return name


class InceptionExtractor(FeatureExtractor):
    """FID/KID/PR features ('pool') and IS logits ('logits') of torch-fidelity's Inception-v3."""

    metric_prefix = "FID"
    feature_dims = {"pool": 2048, "logits": 1008}
    # our feature kind -> torch-fidelity feature name
    LAYERS = {"pool": "2048", "logits": "logits_unbiased"}

    def __init__(self, weights_path=None, *, untrained: bool = False, internal_dtype: str = "float32",
                 device: torch.device | str = "cpu"):
        from torch_fidelity import feature_extractor_inceptionv3 as tfi

        resolved = weights_mod.locate_weights("inception-v3-compat", weights_path, untrained=untrained)
        state_dict = weights_mod.load_state_dict(resolved.path)
        self.weights = resolved
        self.identity = ExtractorIdentity(
            name="inception-v3-compat",
            weights_sha256=resolved.sha256,
            resize_mode="torch-fidelity-bilinear-299",
            untrained=resolved.untrained,
        )
        # torch-fidelity calls load_state_dict_from_url when no path is given: give it ours.
        with patched_attr(tfi, "load_state_dict_from_url", lambda *a, **k: state_dict):
            try:
                self.net = tfi.FeatureExtractorInceptionV3(
                    "inception-v3-compat", list(self.LAYERS.values()),
                    feature_extractor_internal_dtype=_internal_dtype(internal_dtype),
                )
            except RuntimeError as exc:  # load_state_dict mismatch
                raise weights_mod.WeightsFormatError(
                    f"'{resolved.path}' is not torch-fidelity's Inception-v3 state dict: {exc}") from exc
        self.net.to(device)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = to_rgb_uint8(images, "InceptionExtractor").to(self.device)
        pool, logits = self.net(x)
        return {"pool": pool, "logits": logits}
