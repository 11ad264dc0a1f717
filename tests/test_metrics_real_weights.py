"""Locating, checksumming and safely loading the real feature networks' weights files."""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
import torch

from onestep.benchmarks.metrics import weights as W
from onestep.methods.core.paths import cache_dir


def _sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_explicit_path_is_checksummed_and_flagged_untrained(random_inception_weights):
    r = W.locate_weights("inception-v3-compat", random_inception_weights, download=False)
    assert r.path == Path(random_inception_weights) and r.source == "argument"
    assert r.sha256 == _sha(random_inception_weights)  # independent hashlib on the whole file
    # Its hash does not start with torch-fidelity's released prefix 6726825d: untrained.
    assert not r.sha256.startswith("6726825d") and not r.released and r.untrained


def test_released_checksum_is_recognised(tmp_path, monkeypatch):
    f = tmp_path / "weights.pth"
    torch.save({"w": torch.ones(2)}, f)
    sha = _sha(f)
    spec = W.SPECS["inception-v3-compat"]
    monkeypatch.setitem(W.SPECS, spec.key, W.WeightsSpec(**{**spec.__dict__, "released_sha256": (sha[:8],)}))
    r = W.locate_weights(spec.key, f)
    assert r.released and not r.untrained
    assert W.locate_weights(spec.key, f, untrained=True).untrained  # the caller can always say so


def test_no_known_checksum_untrained_only_when_caller_says(tmp_path):
    f = tmp_path / "dinov2_vitl14_pretrain.pth"
    torch.save({"w": torch.ones(2)}, f)
    assert not W.locate_weights("dinov2-vitl14", f).untrained
    assert W.locate_weights("dinov2-vitl14", f, untrained=True).untrained


def test_search_order_env_then_cache_then_library_dir(tmp_path, monkeypatch):
    name = "vgg16-397923af.pth"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    hub = tmp_path / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save({"a": torch.zeros(1)}, hub / name)
    monkeypatch.delenv("ONESTEP_VGG16_WEIGHTS", raising=False)
    ours = cache_dir("weights") / name
    ours.unlink(missing_ok=True)
    assert W.locate_weights("vgg16", download=False).path == hub / name  # library cache
    torch.save({"b": torch.zeros(1)}, ours)
    try:
        assert W.locate_weights("vgg16", download=False).path == ours  # our cache first
        env_file = tmp_path / "elsewhere.pth"
        torch.save({"c": torch.zeros(1)}, env_file)
        monkeypatch.setenv("ONESTEP_VGG16_WEIGHTS", str(env_file))
        r = W.locate_weights("vgg16", download=False)
        assert r.path == env_file and r.source == "env"
        monkeypatch.setenv("ONESTEP_VGG16_WEIGHTS", str(tmp_path / "missing.pth"))
        with pytest.raises(W.WeightsNotFoundError, match="ONESTEP_VGG16_WEIGHTS"):
            W.locate_weights("vgg16", download=False)
    finally:
        ours.unlink(missing_ok=True)


def test_missing_weights_error_names_file_and_places(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("ONESTEP_INCEPTION_WEIGHTS", raising=False)
    (cache_dir("weights") / "weights-inception-2015-12-05-6726825d.pth").unlink(missing_ok=True)
    with pytest.raises(W.WeightsNotFoundError) as e:
        W.locate_weights("inception-v3-compat", download=False)
    msg = str(e.value)
    assert "weights-inception-2015-12-05-6726825d.pth" in msg and "ONESTEP_INCEPTION_WEIGHTS" in msg
    assert str(cache_dir("weights")) in msg
    with pytest.raises(KeyError, match="known ones"):
        W.locate_weights("inceptoin")


def test_download_is_atomic_and_checksum_checked(tmp_path, monkeypatch):
    """file:// URLs go through the same urllib download code as https:// ones."""
    src = tmp_path / "remote.pth"
    torch.save({"w": torch.arange(4.0)}, src)
    spec = W.SPECS["dinov2-vitl14"]
    dest = cache_dir("weights") / spec.filenames[0]
    dest.unlink(missing_ok=True)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    monkeypatch.delenv(spec.env_var, raising=False)
    monkeypatch.setitem(W.SPECS, spec.key, W.WeightsSpec(**{**spec.__dict__, "url": src.as_uri()}))
    try:
        r = W.locate_weights(spec.key, download=True)
        assert r.source == "download" and r.path == dest and r.sha256 == _sha(src)
        dest.unlink()
        # A download whose checksum is not the released one is removed and reported.
        monkeypatch.setitem(W.SPECS, spec.key, W.WeightsSpec(**{**spec.__dict__, "url": src.as_uri(),
                                                               "released_sha256": ("00000000",)}))
        with pytest.raises(W.WeightsFormatError, match="not the released one"):
            W.locate_weights(spec.key, download=True)
        assert not dest.exists()
        monkeypatch.setitem(W.SPECS, spec.key, W.WeightsSpec(**{**spec.__dict__, "url": (tmp_path / "nope").as_uri()}))
        with pytest.raises(W.WeightsNotFoundError, match="download failed"):
            W.locate_weights(spec.key, download=True)
        assert not list(dest.parent.glob(f".{dest.name}.*"))  # no partial file left behind
    finally:
        dest.unlink(missing_ok=True)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch /tmp/onestep-weights-code-ran",))


def test_loading_never_executes_code(tmp_path):
    marker = Path("/tmp/onestep-weights-code-ran")
    marker.unlink(missing_ok=True)
    f = tmp_path / "evil.pth"
    torch.save({"w": torch.ones(1), "x": _RunsCode()}, f)
    with pytest.raises(W.WeightsFormatError, match="cannot read weights file"):
        W.load_state_dict(f)
    assert not marker.exists()


def test_corrupt_and_wrong_files_get_clear_errors(tmp_path, random_inception_weights):
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(Path(random_inception_weights).read_bytes()[:4096])
    with pytest.raises(W.WeightsFormatError, match="truncated"):
        W.load_state_dict(truncated)
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(10, 2048), "extra": torch.zeros(1)}, other)
    with pytest.raises(W.WeightsFormatError, match=r"missing .*unexpected 1 keys"):
        W.load_state_dict(other, expected={"fc.weight": torch.Size([1008, 2048]), "fc.bias": torch.Size([1008])})
    with pytest.raises(W.WeightsFormatError, match=r"wrong shapes \(e.g. fc.weight: \(10, 2048\) vs \(1008, 2048\)"):
        W.load_state_dict(other, expected={"fc.weight": torch.Size([1008, 2048]), "extra": torch.Size([1])})
    not_sd = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], not_sd)
    with pytest.raises(W.WeightsFormatError, match="state dict of tensors"):
        W.load_state_dict(not_sd)


def test_random_inception_file_has_the_released_layout(random_inception_weights):
    sd = W.load_state_dict(random_inception_weights)
    assert len(sd) == 472 and tuple(sd["fc.weight"].shape) == (1008, 2048)
    assert not any(k.endswith("num_batches_tracked") for k in sd)


def test_torchscript_archive_gives_its_tensors(tmp_path):
    """OpenAI's CLIP release is a TorchScript archive: its weights are read as a state dict."""
    lin = torch.nn.Linear(2, 3)
    path = tmp_path / "ViT-B-32.pt"
    torch.jit.script(lin).save(str(path))
    sd = W.load_state_dict(path)
    assert set(sd) == {"weight", "bias"} and torch.equal(sd["weight"], lin.weight.detach())
