"""EDM network pickles are read without running code from them.

The pickles here are written by a minimal pickler of our own that emits exactly the records of
EDM's torch_utils/persistence.py: every persistent object becomes the call
`torch_utils.persistence._reconstruct_persistent_obj(meta)` with meta = {type: 'class', version: 6,
module_src, class_name, state}, tensors and torch containers pickle as torch pickles them. The
embedded module source writes a marker file when executed; a control load with EDM's semantics
(exec of module_src) proves it would, and our loader must leave no file behind.

If $ONESTEP_EDM_SOURCE points at a checkout of NVlabs/edm, one more test lets EDM's own code
write the pickle and compares outputs against EDM's own networks.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
import torch

from onestep.methods import zoo
from onestep.methods.checkpoints import CheckpointError, InertRecord, load_edm_pickle, load_network

EDM_PERSISTENCE_VERSION = 6  # torch_utils/persistence.py: _version


def evil_source(marker: Path) -> str:
    """Module source that, if anyone executes it, writes `marker`."""
    return textwrap.dedent(f"""
        import pathlib
        pathlib.Path({str(marker)!r}).write_text("module source was executed")
        class EDMPrecond: pass
    """)


class EDMLoss:  # stand-ins with the attributes of EDM's training/loss.py and training/augment.py objects
    def __init__(self, P_mean=-1.2, P_std=1.2, sigma_data=0.5):
        self.P_mean, self.P_std, self.sigma_data = P_mean, P_std, sigma_data


class AugmentPipe:
    def __init__(self, p=0.12, xflip=1e8, yflip=1, scale=1):
        self.p, self.xflip, self.yflip, self.scale = float(p), float(xflip), float(yflip), float(scale)


@contextlib.contextmanager
def fake_persistence_module(reconstruct):
    """Make `torch_utils.persistence._reconstruct_persistent_obj` resolvable while pickling."""
    pkg, mod = types.ModuleType("torch_utils"), types.ModuleType("torch_utils.persistence")
    reconstruct.__module__, reconstruct.__qualname__ = "torch_utils.persistence", "_reconstruct_persistent_obj"
    mod._reconstruct_persistent_obj = reconstruct
    pkg.persistence = mod
    saved = {k: sys.modules.get(k) for k in ("torch_utils", "torch_utils.persistence")}
    sys.modules.update({"torch_utils": pkg, "torch_utils.persistence": mod})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def _never_called(meta):
    raise AssertionError("the reconstruct hook must not run while pickling")


class EDMStylePickler(pickle.Pickler):
    """Emits EDM's persistent-object records for zoo modules and the loss/augment stand-ins."""

    def __init__(self, file, module_src: str, init_kwargs: dict[int, dict], class_names: dict[int, str] | None = None,
                 protocol: int = pickle.DEFAULT_PROTOCOL):
        super().__init__(file, protocol=protocol)
        self.module_src, self.init_kwargs, self.class_names = module_src, init_kwargs, class_names or {}

    def reducer_override(self, obj):
        persistent = (isinstance(obj, torch.nn.Module) and type(obj).__module__.startswith("onestep.methods.zoo")) or \
            isinstance(obj, (EDMLoss, AugmentPipe))
        if not persistent:
            return NotImplemented
        state = dict(obj.__dict__)
        kwargs = self.init_kwargs.get(id(obj), getattr(obj, "init_kwargs", {}) if not isinstance(obj, torch.nn.Module) else {})
        state.update(_init_args=(), _init_kwargs=dict(kwargs))
        meta = dict(type="class", version=EDM_PERSISTENCE_VERSION, module_src=self.module_src,
                    class_name=self.class_names.get(id(obj), type(obj).__name__), state=state)
        return sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj, (meta,)


def write_edm_pickle(path: Path, data: dict, module_src: str, init_kwargs: dict[int, dict],
                     class_names: dict[int, str] | None = None, protocol: int = pickle.DEFAULT_PROTOCOL) -> Path:
    with fake_persistence_module(_never_called), open(path, "wb") as f:
        EDMStylePickler(f, module_src, init_kwargs, class_names, protocol).dump(data)
    return path


TINY_SONG = dict(model_channels=16, channel_mult=[1, 2], num_blocks=1, attn_resolutions=[4], dropout=0.0)
NETWORKS = {
    "edm-ddpmpp-cond": ("EDMPrecond", dict(img_resolution=8, img_channels=3, label_dim=10, model_type="SongUNet",
                                            augment_dim=9, embedding_type="positional", encoder_type="standard",
                                            decoder_type="standard", channel_mult_noise=1, resample_filter=[1, 1], **TINY_SONG)),
    "ve-ncsnpp": ("VEPrecond", dict(img_resolution=8, img_channels=1, label_dim=0, model_type="SongUNet",
                                     embedding_type="fourier", encoder_type="residual", decoder_type="standard",
                                     channel_mult_noise=2, resample_filter=[1, 3, 3, 1], **TINY_SONG)),
    "vp-ddpmpp": ("VPPrecond", dict(img_resolution=8, img_channels=1, label_dim=0, model_type="SongUNet", **TINY_SONG)),
    "iddpm-adm-cond": ("iDDPMPrecond", dict(img_resolution=8, img_channels=3, label_dim=5, model_type="DhariwalUNet",
                                             model_channels=16, channel_mult=[1, 2], num_blocks=1, attn_resolutions=[4], M=50)),
    "edm-adm-cond": ("EDMPrecond", dict(img_resolution=8, img_channels=3, label_dim=5, model_type="DhariwalUNet",
                                         model_channels=32, channel_mult=[1, 2], num_blocks=1, attn_resolutions=[4], augment_dim=9)),
}


def make_network(kind: str, seed: int = 0) -> tuple[torch.nn.Module, dict]:
    cls_name, kwargs = NETWORKS[kind]
    torch.manual_seed(seed)
    net = getattr(zoo, cls_name)(**kwargs)
    with torch.no_grad():  # EDM zero-initialises output layers; perturb so every weight matters
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return net.eval(), kwargs


def make_edm_pickle(path: Path, net: torch.nn.Module, kwargs: dict, marker: Path, protocol: int = pickle.DEFAULT_PROTOCOL,
                    **extra) -> Path:
    loss, augment = EDMLoss(P_std=1.3), AugmentPipe(p=0.12)
    data = dict(ema=net, loss_fn=loss, augment_pipe=augment,
                dataset_kwargs=dict(class_name="training.dataset.ImageFolderDataset", path="cifar10.zip", use_labels=True))
    data.update(extra)
    init = {id(net): kwargs, id(loss): dict(P_std=1.3), id(augment): dict(p=0.12)}
    return write_edm_pickle(path, data, evil_source(marker), init, protocol=protocol)


def outputs(net, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, net.img_channels, net.img_resolution, net.img_resolution, generator=g)
    sigma = torch.tensor([0.02, 1.0, 30.0])
    labels = torch.arange(3) % net.label_dim if net.label_dim else None
    with torch.no_grad():
        return net(x, sigma, labels)


@pytest.mark.parametrize("kind", sorted(NETWORKS))
def test_edm_pickle_gives_equal_network_and_runs_no_code(tmp_path, kind):
    net, kwargs = make_network(kind)
    marker = tmp_path / "pwned.txt"
    path = make_edm_pickle(tmp_path / "network-snapshot-000000.pkl", net, kwargs, marker)

    data = load_edm_pickle(path)

    assert not marker.exists(), "loading executed the module source embedded in the pickle"
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules
    ema = data["ema"]
    assert type(ema) is type(net) and type(ema.model) is type(net.model)
    assert not ema.training and not any(p.requires_grad for p in ema.parameters())
    for key, value in net.state_dict().items():
        assert torch.equal(ema.state_dict()[key], value), key
    assert torch.equal(outputs(ema), outputs(net))
    assert data["loss_fn"] == InertRecord("EDMLoss", (), {"P_std": 1.3}, {"P_mean": -1.2, "P_std": 1.3, "sigma_data": 0.5})
    assert data["augment_pipe"].class_name == "AugmentPipe" and data["augment_pipe"].init_kwargs == {"p": 0.12}
    assert data["dataset_kwargs"]["path"] == "cifar10.zip"


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_every_pickle_protocol(tmp_path, protocol):
    """EDM used Python's default protocol (3 or 4); older tools may write 0-2 (copyreg, _codecs)."""
    net, kwargs = make_network("edm-ddpmpp-cond")
    marker = tmp_path / "pwned.txt"
    path = make_edm_pickle(tmp_path / "net.pkl", net, kwargs, marker, protocol=protocol)
    assert torch.equal(outputs(load_edm_pickle(path)["ema"]), outputs(net))
    assert not marker.exists()


def test_control_edm_semantics_would_execute_the_embedded_source(tmp_path):
    """The test pickle is really dangerous: EDM's loader (exec of module_src) writes the marker."""
    net, kwargs = make_network("vp-ddpmpp")
    marker = tmp_path / "pwned.txt"
    path = make_edm_pickle(tmp_path / "net.pkl", net, kwargs, marker)

    def exec_like_edm(meta):
        exec(meta["module_src"], {})  # what torch_utils.persistence._src_to_module does
        return meta["class_name"]

    with fake_persistence_module(exec_like_edm), open(path, "rb") as f:
        pickle.load(f)
    assert marker.exists()


def test_load_network_dispatches_pkl_to_the_ema_network(tmp_path):
    net, kwargs = make_network("edm-ddpmpp-cond")
    path = make_edm_pickle(tmp_path / "edm.pkl", net, kwargs, tmp_path / "pwned.txt")
    loaded = load_network(path, device="cpu")
    assert isinstance(loaded, zoo.EDMPrecond)
    assert torch.equal(outputs(loaded), outputs(net))
    assert not (tmp_path / "pwned.txt").exists()


def test_os_system_global_is_refused_and_named(tmp_path):
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pkl"
    # Protocol-0 opcodes for os.system("touch <marker>"): GLOBAL 'os system', args, REDUCE.
    path.write_bytes(f"cos\nsystem\n(V touch {marker}\ntR.".encode())
    with pytest.raises(CheckpointError, match=r"os\.system") as err:
        load_edm_pickle(path)
    assert str(path) in str(err.value)
    assert not marker.exists()


def test_reduce_to_os_system_from_an_object_is_refused(tmp_path):
    marker = tmp_path / "pwned.txt"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"ema": Evil()}))
    with pytest.raises(CheckpointError, match=r"system.*not on the allow-list"):
        load_edm_pickle(path)
    assert not marker.exists()


def test_unknown_persistent_class_is_refused_and_named(tmp_path):
    net, kwargs = make_network("vp-ddpmpp")
    path = write_edm_pickle(tmp_path / "net.pkl", {"ema": net}, "class EvilNet: pass", {id(net): kwargs},
                            class_names={id(net): "EvilNet"})
    with pytest.raises(CheckpointError, match="unknown persistent class 'EvilNet'") as err:
        load_edm_pickle(path)
    assert str(path) in str(err.value)


def test_unknown_plain_class_is_refused_and_named(tmp_path):
    # A plain (non-persistent) reference to EDM's module, which the loader must never import:
    # GLOBAL 'training.networks EDMPrecond' then STOP.
    path = tmp_path / "net.pkl"
    path.write_bytes(b"ctraining.networks\nEDMPrecond\n.")
    with pytest.raises(CheckpointError, match=r"'training\.networks\.EDMPrecond'"):
        load_edm_pickle(path)
    assert "training" not in sys.modules


def test_missing_ema_key_is_named(tmp_path):
    net, kwargs = make_network("vp-ddpmpp")
    path = write_edm_pickle(tmp_path / "net.pkl", {"network": net}, "", {id(net): kwargs})
    with pytest.raises(CheckpointError, match=r"lacks the key\(s\) \['ema'\].*found \['network'\]"):
        load_edm_pickle(path)


def test_random_bytes_and_truncated_pickles_name_the_file(tmp_path):
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0), dtype=torch.uint8).numpy().tobytes())
    with pytest.raises(CheckpointError, match="junk.pkl"):
        load_edm_pickle(junk)

    net, kwargs = make_network("vp-ddpmpp")
    full = make_edm_pickle(tmp_path / "full.pkl", net, kwargs, tmp_path / "m")
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="cut.pkl.*corrupt, truncated"):
        load_edm_pickle(cut)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_edm_pickle(tmp_path / "absent.pkl")
    torch.save({"ema": net.state_dict()}, tmp_path / "saved.pkl")
    with pytest.raises(CheckpointError, match=r"saved\.pkl' is a zip archive"):
        load_edm_pickle(tmp_path / "saved.pkl")


def test_record_without_init_kwargs_is_refused(tmp_path):
    net, _ = make_network("vp-ddpmpp")

    class NoKwargsPickler(EDMStylePickler):
        def reducer_override(self, obj):
            out = super().reducer_override(obj)
            if out is not NotImplemented and obj is net:
                out[1][0]["state"]["_init_kwargs"] = None  # EDM's _record_init_args = False
            return out

    path = tmp_path / "net.pkl"
    with fake_persistence_module(_never_called), open(path, "wb") as f:
        NoKwargsPickler(f, "", {}).dump({"ema": net})
    with pytest.raises(CheckpointError, match="no recorded constructor arguments"):
        load_edm_pickle(path)


def test_weights_of_another_architecture_are_refused(tmp_path):
    net, kwargs = make_network("vp-ddpmpp")
    wrong = dict(kwargs, model_channels=32)  # recorded arguments that do not fit the tensors
    path = write_edm_pickle(tmp_path / "net.pkl", {"ema": net}, "", {id(net): wrong})
    with pytest.raises(CheckpointError, match="another architecture.*shape mismatches"):
        load_edm_pickle(path)


def test_bare_layer_as_ema_is_refused(tmp_path):
    layer = zoo.Linear(4, 4)
    path = write_edm_pickle(tmp_path / "net.pkl", {"ema": layer}, "", {id(layer): dict(in_features=4, out_features=4)})
    with pytest.raises(CheckpointError, match="bare EDM layer \\(Linear\\)"):
        load_edm_pickle(path)


EDM_SOURCE = os.environ.get("ONESTEP_EDM_SOURCE")


@pytest.mark.skipif(not EDM_SOURCE, reason="cross-check against EDM's own code needs $ONESTEP_EDM_SOURCE (an NVlabs/edm checkout)")
def test_pickles_written_by_edm_itself_load_with_equal_outputs(tmp_path):
    script = textwrap.dedent("""
        import copy, pickle, sys, torch
        sys.path.insert(0, sys.argv[1])
        from training import networks, loss, augment
        torch.manual_seed(0)
        net = networks.EDMPrecond(img_resolution=8, img_channels=3, label_dim=10, model_type='SongUNet',
            model_channels=16, channel_mult=[1, 2], num_blocks=1, attn_resolutions=[4], augment_dim=9)
        with torch.no_grad():
            for p in net.parameters(): p.add_(torch.randn_like(p) * 0.05)
        ema = copy.deepcopy(net).eval().requires_grad_(False)
        with open(sys.argv[2] + '/edm.pkl', 'wb') as f:
            pickle.dump(dict(ema=ema, loss_fn=loss.EDMLoss(), augment_pipe=augment.AugmentPipe(p=0.1),
                             dataset_kwargs=dict(path='x.zip')), f)
        x = torch.randn(3, 3, 8, 8); sigma = torch.tensor([0.02, 1.0, 30.0]); labels = torch.eye(10)[:3]
        with torch.no_grad():
            torch.save(dict(x=x, sigma=sigma, labels=labels, y=ema(x, sigma, labels)), sys.argv[2] + '/ref.pt')
    """)
    subprocess.run([sys.executable, "-c", script, EDM_SOURCE, str(tmp_path)], check=True)
    ref = torch.load(tmp_path / "ref.pt", weights_only=True)
    data = load_edm_pickle(tmp_path / "edm.pkl")
    with torch.no_grad():
        y = data["ema"](ref["x"], ref["sigma"], ref["labels"])
    torch.testing.assert_close(y, ref["y"], rtol=1e-5, atol=1e-5)
    assert data["augment_pipe"].init_kwargs == {"p": 0.1}
