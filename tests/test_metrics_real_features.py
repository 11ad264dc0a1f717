"""The real feature networks against the reference libraries' own code on the same inputs.

Random-weight files in the released formats (tests/fixtures/random_weights.py) make the real
loading and extraction code run offline; the reference side loads the same file through the
library's own loader (torch-fidelity's torch.load, open-clip's create_model(pretrained=FILE)).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from onestep.benchmarks.datasets import load_digits
from onestep.benchmarks.metrics.extractors.clip import CLIPExtractor
from onestep.benchmarks.metrics.extractors.dinov2 import DINOv2Extractor
from onestep.benchmarks.metrics.extractors.inception import InceptionExtractor
from onestep.benchmarks.metrics.extractors.vgg import VGG16Extractor
from onestep.benchmarks.metrics.weights import WeightsFormatError


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """16 real (digits) images, 16x16 RGB uint8."""
    return load_digits(16, 3, "test").images[:16].clone()


def test_inception_equals_torch_fidelity(random_inception_weights, inception_extractor, images):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    ours = inception_extractor
    assert ours.identity.untrained and "UNTRAINED" in ours.identity.describe()
    ref = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                      feature_extractor_weights_path=str(random_inception_weights))
    with torch.no_grad():
        pool, logits = ref(images[:8])
    got = ours(images[:8])
    assert torch.equal(got["pool"], pool) and torch.equal(got["logits"], logits)
    assert got["pool"].shape == (8, 2048) and got["logits"].shape == (8, 1008)
    assert got["pool"].std() > 1e-3  # not the degenerate ~1e-8 features of default init


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-6), ("float32", 1e-3)])
def test_inception_features_independent_of_batch_size(random_inception_weights, images, dtype, rtol):
    ex = InceptionExtractor(random_inception_weights, internal_dtype=dtype)
    full = ex(images)["pool"].double()
    by7 = torch.cat([ex(b)["pool"] for b in images.split(7)]).double()
    by1 = torch.cat([ex(b)["pool"] for b in images[:3].split(1)]).double()
    scale = full.abs().max()
    assert (by7 - full).abs().max() <= rtol * scale
    assert (by1 - full[:3]).abs().max() <= rtol * scale


def test_grey_images_equal_repeated_rgb_and_bad_input_is_refused(inception_extractor, images):
    ex = inception_extractor
    grey = images[:2, :1]
    assert torch.equal(ex(grey)["pool"], ex(grey.repeat(1, 3, 1, 1))["pool"])
    with pytest.raises(TypeError, match="uint8"):
        ex(images[:2].float())
    with pytest.raises(ValueError, match=r"\(B, 1 or 3, H, W\)"):
        ex(images[0])


def test_inception_refuses_other_networks_weights(random_vgg16_weights):
    with pytest.raises(WeightsFormatError, match="not torch-fidelity's Inception-v3"):
        InceptionExtractor(random_vgg16_weights)


def test_vgg16_equals_torch_fidelity(random_vgg16_weights, vgg16_extractor, images):
    from torch_fidelity.feature_extractor_vgg16 import FeatureExtractorVGG16

    ours = vgg16_extractor
    assert not ours.weights.released and ours.identity.untrained  # hash is not torchvision's 397923af...
    ref = FeatureExtractorVGG16("vgg16", ["fc2_relu"], feature_extractor_weights_path=str(random_vgg16_weights))
    with torch.no_grad():
        (expected,) = ref(images[:3])
    got = ours(images[:3])["pool"]
    assert got.shape == (3, 4096) and torch.equal(got, expected)


def test_clip_equals_clean_fid_pipeline(random_clip_weights, clip_extractor, images, tmp_path):
    """clean-fid's own folder loader + resize + CLIP_fx-equivalent on PNGs of the same images."""
    from cleanfid.fid import get_folder_features

    from onestep.benchmarks.metrics.extractors.clip import clean_clip_resize
    from onestep.benchmarks.metrics.naive import CleanFidCLIP, write_png_folder

    x = images[:6]
    folder = write_png_folder(x, tmp_path / "imgs")
    ref = get_folder_features(str(folder), CleanFidCLIP(random_clip_weights), num_workers=0, batch_size=6,
                              device=torch.device("cpu"), mode="clean", custom_fn_resize=clean_clip_resize,
                              verbose=False)
    ours = clip_extractor
    got = ours(x)["pool"].numpy()
    assert got.shape == (6, 512)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    assert ours.identity.untrained and ours.identity.resize_mode == "clean-bicubic-224"


def test_clip_preprocessing_matches_clean_fid_resize_rule(images):
    """Short side to 224 (bicubic, PIL) then centre crop: a non-square image keeps its aspect."""
    from onestep.benchmarks.metrics.extractors.clip import clean_clip_resize

    wide = np.zeros((16, 32, 3), np.uint8)
    wide[:, :4] = 255  # -> columns 0..56 of 448; the centre crop keeps 112..336
    out = clean_clip_resize(wide)
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    assert out.max() <= 2  # only the dark middle survives (bicubic ringing is ~3 px wide)
    tall = clean_clip_resize(np.full((40, 20, 3), 77, np.uint8))
    assert tall.shape == (224, 224, 3) and (tall == 77).all()


def test_clip_openai_key_layout_loads_same_weights(clip_extractor, random_clip_weights_openai_keys, images):
    a = clip_extractor(images[:2])["pool"]
    b = CLIPExtractor(random_clip_weights_openai_keys)(images[:2])["pool"]
    assert torch.equal(a, b)


def test_dinov2_original_checkpoint_loads_and_runs(random_dinov2_small_weights, images):
    ex = DINOv2Extractor(random_dinov2_small_weights, model_name="vit_small_patch14_dinov2", untrained=True)
    f = ex(images[:3])["pool"]
    assert f.shape == (3, 384) and torch.isfinite(f).all() and ex.identity.untrained
    # Same weights, same input -> same features; different inputs -> different features.
    assert torch.equal(f[:1], ex(images[:1])["pool"]) or torch.allclose(f[:1], ex(images[:1])["pool"], atol=1e-5)
    assert not torch.allclose(f[0], f[1])
