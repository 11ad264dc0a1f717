"""DINOv2 ViT-L/14 features for FD_DINOv2, as EDM2 (and SiDA, paper 002) compute them.

EDM2's DINOv2 detector: uint8 images resized to 224x224 (torch bicubic with antialias, its
default 'torch' resize mode), scaled to [0, 1], normalised with ImageNet mean/std, and the
normalised CLS token of torch hub's 'dinov2_vitl14' (1024-d). Loading the hub model would
execute the hub repository's code, so the network is timm's equivalent ViT with the original
checkpoint converted by timm's filter (it drops 'mask_token' and resamples the 518-px position
embedding to 224 at load time, where the hub model interpolates at run time: features are close
to, not bit-equal with, EDM2's). Optional: used only when the weights file exists.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from onestep.benchmarks.metrics import weights as weights_mod
from onestep.benchmarks.metrics.extractors.base import ExtractorIdentity, FeatureExtractor
from onestep.benchmarks.metrics.extractors.inception import _internal_dtype, to_rgb_uint8

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DINO_SIZE = 224


def build_timm_dinov2(state_dict: dict[str, torch.Tensor], model_name: str = "vit_large_patch14_dinov2") -> torch.nn.Module:
    """timm ViT for an original DINOv2 checkpoint (keys as torch hub's dinov2_vit*14)."""
    import timm
    from timm.models.vision_transformer import checkpoint_filter_fn

    model = timm.create_model(model_name, pretrained=False, img_size=DINO_SIZE, num_classes=0)
    converted = checkpoint_filter_fn(dict(state_dict), model)
    weights_mod.check_state_dict(converted, {k: v.shape for k, v in model.state_dict().items()},
                                 f"DINOv2 weights for {model_name}")
    model.load_state_dict(converted)
    return model.eval().requires_grad_(False)


class DINOv2Extractor(FeatureExtractor):
    """'pool': the normalised CLS token of DINOv2 (1024-d for ViT-L/14)."""

    metric_prefix = "FD_DINOv2"

    def __init__(self, weights_path=None, *, untrained: bool = False, internal_dtype: str = "float32",
                 model_name: str = "vit_large_patch14_dinov2", device: torch.device | str = "cpu"):
        resolved = weights_mod.locate_weights("dinov2-vitl14", weights_path, untrained=untrained)
        self.weights = resolved
        self.dtype = getattr(torch, _internal_dtype(internal_dtype))
        self.net = build_timm_dinov2(weights_mod.load_state_dict(resolved.path), model_name).to(device=device, dtype=self.dtype)
        self.feature_dims = {"pool": self.net.num_features}
        name = "dinov2-vitl14" if model_name == "vit_large_patch14_dinov2" else f"dinov2-{model_name}"
        self.identity = ExtractorIdentity(name=name, weights_sha256=resolved.sha256,
                                          resize_mode="torch-bicubic-antialias-224", untrained=resolved.untrained)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        device = self.device
        x = to_rgb_uint8(images, "DINOv2Extractor").to(device=device, dtype=torch.float32)
        x = F.interpolate(x, size=(DINO_SIZE, DINO_SIZE), mode="bicubic", antialias=True)
        x = x / 255
        mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, -1, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=device).view(1, -1, 1, 1)
        x = ((x - mean) / std).to(self.dtype)
        return {"pool": self.net(x).float()}
