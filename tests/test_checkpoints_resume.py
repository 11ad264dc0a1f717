"""Resume state: torch.save written atomically, read weights-only."""
from __future__ import annotations

import pytest
import torch

from onestep.methods.checkpoints import CheckpointError, load_resume_state, save_resume_state


def _model_and_optimizer(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.SiLU(), torch.nn.Linear(8, 2))
    return model, torch.optim.Adam(model.parameters(), lr=1e-2)


def _train_step(model, opt, gen):
    x = torch.randn(16, 4, generator=gen)
    loss = model(x).square().mean()
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def test_round_trip_continues_bit_identically(tmp_path):
    model, opt = _model_and_optimizer()
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        _train_step(model, opt, gen)
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "rng": {"data": gen.get_state(), "torch": torch.get_rng_state()},
             "progress": {"cur_nimg": 48, "step": 3, "kimg_per_tick": 0.5, "phase": "sid", "history": [1.5, 2.5]},
             "nothing": None}
    path = save_resume_state(tmp_path / "resume.pt", state)
    assert not list(tmp_path.glob(".*.tmp"))

    for _ in range(2):  # the uninterrupted run
        _train_step(model, opt, gen)

    loaded = load_resume_state(path)
    assert loaded["progress"] == state["progress"] and loaded["nothing"] is None
    assert loaded["rng"]["data"].dtype == torch.uint8
    model2, opt2 = _model_and_optimizer(seed=123)
    model2.load_state_dict(loaded["model"])
    opt2.load_state_dict(loaded["optimizer"])
    gen2 = torch.Generator()
    gen2.set_state(loaded["rng"]["data"])
    for _ in range(2):
        _train_step(model2, opt2, gen2)
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.equal(a, b)


def test_objects_are_refused_at_save_and_the_old_file_survives(tmp_path):
    path = save_resume_state(tmp_path / "resume.pt", {"step": 1})
    with pytest.raises(TypeError, match=r"state\.modules\.net is a Linear"):
        save_resume_state(path, {"step": 2, "modules": {"net": torch.nn.Linear(2, 2)}})
    assert load_resume_state(path) == {"step": 1}


def test_types_the_weights_only_loader_cannot_rebuild_are_refused_when_saving(tmp_path):
    import collections

    import numpy as np

    ok = {"betas": (0.9, 0.99), "dtype": torch.bfloat16, "device": torch.device("cpu"), "shape": torch.Size([2, 3]),
          "ids": {1, 2}, "ordered": collections.OrderedDict(a=1), "blob": b"xy"}
    assert load_resume_state(save_resume_state(tmp_path / "ok.pt", ok)) == ok
    Pair = collections.namedtuple("Pair", "a b")
    for bad, name in ((Pair(1, 2), "Pair"), (np.float64(1.5), "float64"), (np.zeros(2), "ndarray"),
                      (collections.defaultdict(int), "defaultdict")):
        with pytest.raises(TypeError, match=rf"state\.extra\[0\] is a {name}"):
            save_resume_state(tmp_path / "bad.pt", {"extra": [bad]})
    assert not (tmp_path / "bad.pt").exists()


def test_code_in_the_file_is_not_run(tmp_path):
    marker = tmp_path / "pwned.txt"

    class Opens:
        def __reduce__(self):  # unpickling with a full unpickler would create the marker file
            return open, (str(marker), "w")

    path = tmp_path / "evil.pt"
    torch.save({"step": 1, "x": Opens()}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pt.*refusing"):
        load_resume_state(path)
    assert not marker.exists()


def test_truncated_and_random_files_are_named(tmp_path):
    path = save_resume_state(tmp_path / "resume.pt", {"w": torch.randn(1000)})
    cut = tmp_path / "cut.pt"
    cut.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match=r"cut\.pt"):
        load_resume_state(cut)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(CheckpointError, match=r"junk\.pt"):
        load_resume_state(junk)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_resume_state(tmp_path / "absent.pt")
