"""VGG16 fc2 features for precision/recall, as StyleGAN2-ADA's pr50k3 and torch-fidelity do.

pr50k3 uses VGG16 fc2 activations after ReLU (Kynkaanniemi et al. 2019, sec. 3); torch-fidelity's
'vgg16' extractor computes them from torchvision's VGG16 with a TF1-compatible bilinear resize
to 224 and ImageNet mean/std. We run that module itself so PR equals torch-fidelity's; only
the weights are read by us (weights_only) instead of torch.load(weights_only=False).
"""
from __future__ import annotations

import torch
import torchvision

from onestep.benchmarks.metrics import weights as weights_mod
from onestep.benchmarks.metrics.extractors.base import ExtractorIdentity, FeatureExtractor
from onestep.benchmarks.metrics.extractors.inception import _internal_dtype, patched_attr, to_rgb_uint8


class VGG16Extractor(FeatureExtractor):
    """'pool': the 4096-d fc2 features after ReLU (torch-fidelity layer 'fc2_relu')."""

    metric_prefix = "FD_VGG16"
    feature_dims = {"pool": 4096}

    def __init__(self, weights_path=None, *, untrained: bool = False, internal_dtype: str = "float32",
                 device: torch.device | str = "cpu"):
        from torch_fidelity import feature_extractor_vgg16 as tfv

        resolved = weights_mod.locate_weights("vgg16", weights_path, untrained=untrained)
        with torch.device("meta"):  # shapes only: no 138M-parameter random initialisation
            expected = {k: v.shape for k, v in torchvision.models.vgg16().state_dict().items()}
        state_dict = weights_mod.load_state_dict(resolved.path, expected=expected)
        self.weights = resolved
        self.identity = ExtractorIdentity(
            name="vgg16", weights_sha256=resolved.sha256, resize_mode="torch-fidelity-bilinear-224",
            untrained=resolved.untrained,
        )

        def build(**_):
            with torch.device("meta"):
                model = torchvision.models.vgg16()
            model.load_state_dict(state_dict, assign=True)  # the loaded tensors become the parameters
            return model

        with patched_attr(tfv, "torchvision_load_pretrained_vgg16", build):
            self.net = tfv.FeatureExtractorVGG16(
                "vgg16", ["fc2_relu"], feature_extractor_internal_dtype=_internal_dtype(internal_dtype))
        self.net.to(device)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = to_rgb_uint8(images, "VGG16Extractor").to(self.device)
        (fc2_relu,) = self.net(x)
        return {"pool": fc2_relu}
