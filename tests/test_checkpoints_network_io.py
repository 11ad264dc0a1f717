"""Our checkpoint format (NAME.safetensors + NAME.json) and load_network's dispatch and presets."""
from __future__ import annotations

import dataclasses
import functools
import http.server
import json
import socket
import threading
from pathlib import Path

import pytest
import torch

from onestep.methods import zoo
from onestep.methods.checkpoints import (CheckpointError, checkpoint_dirs, load_network, locate_checkpoint,
                                         read_network_info, save_network, state_checksum)
from onestep.methods.core.paths import cache_dir
from test_checkpoints_edm_pickle import make_edm_pickle, make_network, outputs


def tiny(seed=0, **overrides):
    torch.manual_seed(seed)
    net = zoo.build_network("digits-8x8-cond", model_channels=16, **overrides)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return net.eval()


def test_round_trip_preserves_outputs_config_and_metadata(tmp_path):
    net = tiny()
    json_path = save_network(tmp_path / "student", net, metadata={"method": "gdd", "kimg": 12})
    assert json_path == tmp_path / "student.json" and (tmp_path / "student.safetensors").is_file()
    info = read_network_info(tmp_path / "student")
    assert info["metadata"] == {"method": "gdd", "kimg": 12}
    assert info["network_config"] == zoo.network_config(net)
    assert info["state_sha256"] == state_checksum(net)
    for spelling in ("student", "student.json", "student.safetensors"):
        loaded = load_network(tmp_path / spelling)
        assert type(loaded) is zoo.EDMPrecond and not loaded.training
        assert not any(p.requires_grad for p in loaded.parameters())
        assert torch.equal(outputs(loaded), outputs(net))
    assert not list(tmp_path.glob(".*.tmp")), "atomic writes left temporary files"


def test_one_step_generator_round_trip(tmp_path):
    student = zoo.OneStepPrecond.from_teacher(tiny())
    save_network(tmp_path / "g.safetensors", student)
    loaded = load_network(str(tmp_path / "g.safetensors"))
    assert type(loaded) is zoo.OneStepPrecond
    assert torch.equal(outputs(loaded), outputs(student))


def test_metadata_must_be_json(tmp_path):
    with pytest.raises(TypeError, match="JSON-serializable"):
        save_network(tmp_path / "x", tiny(), metadata={"when": object()})


def test_truncated_safetensors_is_named(tmp_path):
    save_network(tmp_path / "net", tiny())
    weights = tmp_path / "net.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])
    with pytest.raises(CheckpointError, match=r"net\.safetensors.*corrupt or truncated"):
        load_network(tmp_path / "net")


def test_random_bytes_instead_of_weights_is_named(tmp_path):
    save_network(tmp_path / "net", tiny())
    (tmp_path / "net.safetensors").write_bytes(bytes(range(256)) * 8)
    with pytest.raises(CheckpointError, match=r"net\.safetensors"):
        load_network(tmp_path / "net.json")


def test_json_config_that_does_not_fit_the_weights(tmp_path):
    save_network(tmp_path / "net", tiny())
    path = tmp_path / "net.json"
    info = json.loads(path.read_text())
    info["network_config"]["model_kwargs"]["model_channels"] = 32
    path.write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match=r"another architecture.*shape mismatches"):
        load_network(path)


def test_weights_from_another_save_are_detected_by_checksum(tmp_path):
    save_network(tmp_path / "a", tiny(seed=0))
    save_network(tmp_path / "b", tiny(seed=1))
    (tmp_path / "a.safetensors").write_bytes((tmp_path / "b.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match=r"does not belong to 'a\.json'"):
        load_network(tmp_path / "a")


def test_missing_or_broken_json_is_named(tmp_path):
    save_network(tmp_path / "net", tiny())
    (tmp_path / "net.json").unlink()
    with pytest.raises(CheckpointError, match=r"net\.json' does not exist.*config file is missing"):
        load_network(tmp_path / "net.safetensors")
    (tmp_path / "net.json").write_text('{"format": "onestep-network", "format_ver')
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_network(tmp_path / "net.json")
    (tmp_path / "net.json").write_text(json.dumps({"format": "onestep-network", "format_version": 99}))
    with pytest.raises(CheckpointError, match="format_version 99"):
        load_network(tmp_path / "net.json")


def test_unknown_config_class_is_named(tmp_path):
    save_network(tmp_path / "net", tiny())
    info = json.loads((tmp_path / "net.json").read_text())
    info["network_config"]["class"] = "EDMPrecnd"
    (tmp_path / "net.json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match="EDMPrecond"):
        load_network(tmp_path / "net.json")


def test_unknown_name_suggests_a_preset():
    with pytest.raises(CheckpointError, match="did you mean 'edm-cifar10-32x32-cond-vp'"):
        load_network("edm-cifar10-32x32-cond-vq")


def test_preset_without_published_checkpoint_is_explained():
    with pytest.raises(CheckpointError, match="names no published checkpoint"):
        load_network("digits-8x8-cond")


# -- presets naming published checkpoints ------------------------------------------------------

@pytest.fixture
def tiny_preset(monkeypatch, tmp_path):
    """A preset like EDM's published ones, but naming a tiny EDM-style pickle."""
    base = zoo.get_preset("edm-cifar10-32x32-cond-vp")
    preset = dataclasses.replace(base, name="tiny-published", precond_kwargs=dict(img_resolution=8, img_channels=3, label_dim=10),
                                 checkpoint="tiny-published.pkl", url="http://127.0.0.1:9/tiny-published.pkl")
    monkeypatch.setitem(zoo.PRESETS, preset.name, preset)
    monkeypatch.setenv("ONESTEP_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ONESTEP_CHECKPOINTS", raising=False)
    monkeypatch.delenv("ONESTEP_OFFLINE", raising=False)
    net, kwargs = make_network("edm-ddpmpp-cond")
    blob = make_edm_pickle(tmp_path / "source.pkl", net, kwargs, tmp_path / "pwned.txt").read_bytes()
    return preset, net, blob


def test_preset_found_in_configured_directory(tiny_preset, tmp_path, monkeypatch):
    preset, net, blob = tiny_preset
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    (shelf / preset.checkpoint).write_bytes(blob)
    monkeypatch.setenv("ONESTEP_CHECKPOINTS", str(shelf))
    assert checkpoint_dirs()[0] == shelf
    assert torch.equal(outputs(load_network("tiny-published")), outputs(net))


def test_preset_found_in_cache(tiny_preset):
    preset, net, blob = tiny_preset
    (cache_dir("checkpoints") / preset.checkpoint).write_bytes(blob)
    assert locate_checkpoint("tiny-published") == cache_dir("checkpoints") / preset.checkpoint
    assert torch.equal(outputs(load_network("tiny-published")), outputs(net))


def test_missing_preset_file_offline_names_file_and_place(tiny_preset, monkeypatch):
    preset, _, _ = tiny_preset
    monkeypatch.setenv("ONESTEP_OFFLINE", "1")
    with pytest.raises(CheckpointError) as err:
        load_network("tiny-published")
    message = str(err.value)
    assert "tiny-published.pkl" in message and str(cache_dir("checkpoints")) in message
    assert preset.url in message and "ONESTEP_CHECKPOINTS" in message


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_download_names_file_and_url(tiny_preset, monkeypatch):
    preset, _, _ = tiny_preset
    url = f"http://127.0.0.1:{_closed_port()}/tiny-published.pkl"
    monkeypatch.setitem(zoo.PRESETS, preset.name, dataclasses.replace(preset, url=url))
    with pytest.raises(CheckpointError, match=rf"tiny-published\.pkl.*downloading {url} failed"):
        load_network("tiny-published")
    assert not (cache_dir("checkpoints") / preset.checkpoint).exists()


def test_download_from_the_preset_url(tiny_preset, tmp_path, monkeypatch, capsys):
    preset, net, blob = tiny_preset
    served = tmp_path / "served"
    served.mkdir()
    (served / preset.checkpoint).write_bytes(blob)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{preset.checkpoint}"
        monkeypatch.setitem(zoo.PRESETS, preset.name, dataclasses.replace(preset, url=url))
        loaded = load_network("tiny-published")
    finally:
        server.shutdown()
        server.server_close()
    assert (cache_dir("checkpoints") / preset.checkpoint).read_bytes() == blob
    assert torch.equal(outputs(loaded), outputs(net))
    assert "downloaded tiny-published.pkl" in capsys.readouterr().err


def test_preset_file_holding_another_network_is_refused(tiny_preset):
    preset, _, _ = tiny_preset
    other, kwargs = make_network("iddpm-adm-cond")
    make_edm_pickle(cache_dir("checkpoints") / preset.checkpoint, other, kwargs, Path("/nonexistent/marker"))
    with pytest.raises(CheckpointError, match=r"holds another network: class iDDPMPrecond.*label_dim=5 \(preset: 10\)"):
        load_network("tiny-published")
