"""PIL's bicubic resize as two fixed-point matrices equals clean-fid's CLIP preprocessing byte for byte."""
from __future__ import annotations

import ast
import inspect

import numpy as np
import pytest
import torch
from PIL import Image

from onestep.benchmarks.metrics.extractors.pil_resize import PILBicubicResize, pil_bicubic_matrix


def _clean_fid_preprocess():
    """clean-fid 0.1.35's own `img_preprocess_clip`, taken from its source: importing
    cleanfid.clip_features needs OpenAI's `clip` package, which the function does not use."""
    import importlib.util

    import torchvision.transforms as transforms

    spec = importlib.util.find_spec("cleanfid.clip_features")
    tree = ast.parse(open(spec.origin).read())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "img_preprocess_clip")
    scope = {"np": np, "Image": Image, "transforms": transforms}
    exec(compile(ast.Module([fn], []), spec.origin, "exec"), scope)
    return scope["img_preprocess_clip"]


def _real_images(n: int = 12) -> np.ndarray:
    """scikit-learn's digits (real scans, 8x8, 17 levels) upsampled to 32x32 RGB by PIL, with
    per-channel tints and noise so every byte value range and colour occurs."""
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(0)
    out = []
    for k in range(n):
        g = np.asarray(Image.fromarray((load_digits().images[k] * 255 / 16).astype(np.uint8)).resize((32, 32), Image.BICUBIC))
        noise = rng.integers(0, 64, g.shape)
        out.append(np.stack([g, 255 - g, np.clip(g // 2 + noise, 0, 255)], -1).astype(np.uint8))
    return np.stack(out)


def _bchw(hwc: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(hwc).permute(0, 3, 1, 2).contiguous()


def test_matrix_resize_equals_clean_fid_on_digits():
    imgs = _real_images()
    ref = np.stack([_clean_fid_preprocess()(img) for img in imgs])
    got = PILBicubicResize(224)(_bchw(imgs)).permute(0, 2, 3, 1).numpy()
    assert got.shape == ref.shape == (len(imgs), 224, 224, 3) and got.dtype == np.uint8
    assert np.array_equal(got, ref)


@pytest.mark.parametrize("hw", [(40, 20), (20, 40), (37, 50), (300, 260), (224, 224)])
def test_matrix_resize_equals_clean_fid_other_shapes(hw):
    """Non-square (short side to 224, centre crop), shrinking (antialiased support) and identity."""
    rng = np.random.default_rng(hw[0])
    img = rng.integers(0, 256, (*hw, 3)).astype(np.uint8)
    ref = _clean_fid_preprocess()(img)
    got = PILBicubicResize(224)(_bchw(img[None]))[0].permute(1, 2, 0).numpy()
    assert np.array_equal(got, ref)


def test_matrix_rows_sum_to_one_in_fixed_point_and_bad_input_is_refused():
    m = pil_bicubic_matrix(32, 224)
    assert m.shape == (224, 32) and np.all(np.abs(m.sum(1) - (1 << 22)) <= 4)
    assert (m < 0).any()  # bicubic a=-0.5 has negative lobes: the intermediate clip matters
    with pytest.raises(TypeError, match="uint8"):
        PILBicubicResize(224)(torch.zeros(1, 3, 32, 32))


def test_clip_extractor_device_path_equals_pil_path():
    """The extractor's two resize paths (device matrices / PIL on CPU) give the same bytes."""
    from onestep.benchmarks.metrics.extractors.clip import CLIPExtractor

    ext = CLIPExtractor.__new__(CLIPExtractor)  # resize needs no network
    ext._device_resize = PILBicubicResize(224)
    x = _bchw(_real_images(4))
    assert torch.equal(ext.resize(x, "cpu"), ext._device_resize(x))
