"""The naive reference path's handling of the libraries' known defects."""
from __future__ import annotations

import inspect

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image

from onestep.benchmarks.metrics import naive


def test_unknown_torch_fidelity_keywords_are_refused():
    assert naive.fidelity_kwargs(kid_subset_size=10, cache=False) == {"kid_subset_size": 10, "cache": False}
    with pytest.raises(TypeError, match="did you mean 'kid_subset_size'"):
        naive.fidelity_kwargs(kid_subsets_size=10)


def test_png_folder_is_lossless_and_ordered(tmp_path):
    x = torch.randint(0, 256, (11, 3, 5, 7), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    folder = naive.write_png_folder(x.split(4), tmp_path / "f")
    files = sorted(folder.iterdir())
    assert [f.name for f in files][:2] == ["000000.png", "000001.png"] and len(files) == 11
    back = torch.stack([torch.from_numpy(np.asarray(Image.open(f))).permute(2, 0, 1) for f in files])
    assert torch.equal(back, x)
    grey = naive.write_png_folder(x[:2, :1], tmp_path / "g")
    assert np.asarray(Image.open(grey / "000001.png")).shape == (5, 7, 3)
    with pytest.raises(ValueError, match="uint8"):
        naive.write_png_folder(x.float(), tmp_path / "h")


def test_clean_fid_frechet_works_without_scipy_disp(monkeypatch):
    """Simulate scipy >= 1.18 (sqrtm without `disp`): clean-fid fails, the shim makes it work."""
    from cleanfid import fid as cf

    original = scipy.linalg.sqrtm

    def sqrtm_118(a):  # scipy 1.18 signature: no disp, returns only the matrix
        return original(a)

    monkeypatch.setattr(scipy.linalg, "sqrtm", sqrtm_118)
    assert "disp" not in inspect.signature(scipy.linalg.sqrtm).parameters
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 3)), rng.normal(size=(60, 3)) + 0.5
    args = (a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    with pytest.raises(TypeError):
        cf.frechet_distance(*args)
    with naive.cleanfid_sqrtm_compat():
        got = cf.frechet_distance(*args)
    # independent: FD from eigenvalues of the (3x3) product
    s1, s2 = args[1], args[3]
    tr = np.sqrt(np.linalg.eigvals(s1 @ s2).real.clip(0)).sum()
    expected = ((args[0] - args[2]) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr
    assert got == pytest.approx(expected, rel=1e-9)
    assert cf.linalg is scipy.linalg  # restored


class _CondGen(torch.nn.Module):
    img_resolution, img_channels, label_dim = 8, 3, 10

    def forward(self, z, class_labels=None):
        assert class_labels is not None and class_labels.shape == (z.shape[0], 10)
        return torch.tanh(z + class_labels.argmax(1).float().view(-1, 1, 1, 1) / 10)


def test_conditional_generator_runs_through_torch_fidelity(random_inception_weights):
    import torch_fidelity

    kwargs = dict(input1_model_num_samples=6, isc=True, isc_splits=2, feature_extractor="inception-v3-compat",
                  feature_extractor_weights_path=str(random_inception_weights), cache=False, cuda=False,
                  save_cpu_ram=True, verbose=False, batch_size=6)
    wrapped = naive.fidelity_generator(_CondGen(), seed=0)
    out = torch_fidelity.calculate_metrics(input1=wrapped, **naive.fidelity_kwargs(**kwargs))
    assert out["inception_score_mean"] >= 1.0
    # the defect it avoids: the library's own class-label path uses np.int, gone from NumPy 2
    direct = torch_fidelity.GenerativeModelModuleWrapper(naive.LabelDrawingGenerator(_CondGen()), 192, "normal", 10)
    with pytest.raises(AttributeError, match="int"):
        torch_fidelity.calculate_metrics(input1=direct, **kwargs)
    images = naive.LabelDrawingGenerator(_CondGen(), seed=1)(torch.randn(4, 192))
    assert images.dtype == torch.uint8 and images.shape == (4, 3, 8, 8)
