"""CLIP ViT-B/32 image features as clean-fid 0.1.35 computes CLIP-FID (model_name='clip_vit_b_32').

clean-fid's CLIP path (cleanfid/clip_features.py): each image goes through PIL, a bicubic
resize of the short side to 224 and a centre crop to 224 (torchvision transforms on PIL), back
to uint8; the loader turns it into float [0, 255] (ToTensor()*255); the extractor divides by
255, normalises with OpenAI's mean/std and calls `encode_image` of OpenAI's ViT-B/32 (512-d,
not L2-normalised). We do the same steps, with the network built by open-clip ('ViT-B-32',
QuickGELU as in OpenAI's release) from weights read without executing code.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

from onestep.benchmarks.metrics import weights as weights_mod
from onestep.benchmarks.metrics.extractors.base import ExtractorIdentity, FeatureExtractor
from onestep.benchmarks.metrics.extractors.inception import _internal_dtype, to_rgb_uint8
from onestep.benchmarks.metrics.extractors.pil_resize import PILBicubicResize

# OpenAI CLIP normalisation (clean-fid clip_features.CLIP_fx, open_clip OPENAI_DATASET_MEAN/STD).
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_SIZE = 224
# Keys OpenAI's TorchScript release carries besides the weights (open_clip drops them too).
_JIT_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")

_clean_resize = transforms.Compose([
    transforms.Resize(CLIP_SIZE, interpolation=transforms.InterpolationMode.BICUBIC),
    transforms.CenterCrop(CLIP_SIZE),
])


def clean_clip_resize(img_hwc: np.ndarray) -> np.ndarray:
    """clean-fid's CLIP preprocessing of one HWC uint8 image -> 224x224x3 uint8."""
    img = Image.fromarray(img_hwc.astype(np.uint8)).convert("RGB")
    return np.asarray(_clean_resize(img)).clip(0, 255).astype(np.uint8)


def build_clip_image_tower(state_dict: dict[str, torch.Tensor]) -> torch.nn.Module:
    """open-clip's ViT-B/32 (QuickGELU) with `state_dict` (the whole CLIP model's keys, checked);
    returns the image tower only, the part CLIP-FID uses."""
    import logging

    import open_clip

    logging.disable(logging.WARNING)  # open-clip warns "initialized randomly": the weights come next
    try:
        with torch.device("meta"):  # no random initialisation of weights about to be replaced
            model = open_clip.create_model("ViT-B-32", pretrained=None, force_quick_gelu=True, device="meta")
    finally:
        logging.disable(logging.NOTSET)
    sd = {k: v for k, v in state_dict.items() if k not in _JIT_EXTRA_KEYS}
    if next(iter(sd)).startswith("module."):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    expected = {k: v.shape for k, v in model.state_dict().items()}
    # OpenAI stores logit_scale as a 0-d tensor, open_clip may use shape [] too; align.
    if "logit_scale" in sd and sd["logit_scale"].shape != expected.get("logit_scale", sd["logit_scale"].shape):
        sd["logit_scale"] = sd["logit_scale"].reshape(expected["logit_scale"])
    weights_mod.check_state_dict(sd, expected, "CLIP ViT-B/32 weights")
    model.load_state_dict(sd, assign=True)  # the loaded tensors become the parameters
    return model.visual.eval().requires_grad_(False)


class CLIPExtractor(FeatureExtractor):
    """'pool': 512-d CLIP ViT-B/32 image embeddings (clean-fid's CLIP-FID features)."""

    metric_prefix = "CLIP_FID"
    feature_dims = {"pool": 512}

    def __init__(self, weights_path=None, *, untrained: bool = False, internal_dtype: str = "float32",
                 device: torch.device | str = "cpu"):
        resolved = weights_mod.locate_weights("clip-vit-b-32", weights_path, untrained=untrained)
        self.weights = resolved
        self.identity = ExtractorIdentity(
            name="clip-vit-b-32", weights_sha256=resolved.sha256, resize_mode="clean-bicubic-224",
            untrained=resolved.untrained,
        )
        self.dtype = getattr(torch, _internal_dtype(internal_dtype))
        self.visual = build_clip_image_tower(weights_mod.load_state_dict(resolved.path))
        self.visual.to(device=device, dtype=self.dtype)
        self.normalize = transforms.Normalize(OPENAI_MEAN, OPENAI_STD)
        self._device_resize = PILBicubicResize(CLIP_SIZE)

    def resize(self, images: torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
        """uint8 BCHW -> uint8 B x 3 x 224 x 224, the bytes of clean-fid's PIL resize + crop.

        On a GPU: PIL's fixed-point bicubic as two matrices on the device (pil_resize.py, equal
        byte for byte); on the CPU PIL's own C loop per image is faster, so it is used there."""
        rgb = to_rgb_uint8(images, "CLIPExtractor")
        device = torch.device(device or self.device)
        if device.type != "cpu":
            return self._device_resize(rgb.to(device))
        hwc = rgb.permute(0, 2, 3, 1).cpu().numpy()
        return torch.from_numpy(np.stack([clean_clip_resize(img) for img in hwc])).permute(0, 3, 1, 2)

    def preprocess(self, images: torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
        """uint8 BCHW -> normalised float batch, step for step as clean-fid."""
        u8 = self.resize(images, device)
        # ToTensor() (/255), *255, then /255.0: clean-fid's loader and CLIP_fx, kept literally so
        # the float rounding matches.
        batch = u8.float().div(255) * 255
        return self.normalize(batch / 255.0)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        device = self.device
        x = self.preprocess(images, device).to(device=device, dtype=self.dtype)
        return {"pool": self.visual(x).float()}
