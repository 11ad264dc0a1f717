"""Generation: per-seed determinism, EDM's file layout, the npz archive, grids, the CLI, and
saving/loading generators. Networks are the zoo's digits 8x8 net with random weights (labelled
as such: these tests check plumbing, not image quality) and the exact Gaussian denoiser."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from onestep.benchmarks.cli import main as cli_main
from onestep.benchmarks.generate import (generate_images, generated_images, image_path, load_npz, load_png_images,
                                         png_bytes, save_image_grid, save_npz)
from onestep.benchmarks.sampling import quantize, seeded_inputs
from onestep.methods.solvers import (GaussianDenoiser, OneStepGenerator, SolverGenerator, as_generator, load_generator,
                                     read_generator_record, save_generator)

STEPS = 3  # Heun with 3 levels + 0: 5 NFE, enough to exercise every code path quickly


@pytest.fixture(scope="module")
def digits_net():
    from onestep.methods.zoo import build_network

    torch.manual_seed(0)
    net = build_network("digits-8x8-cond").eval().requires_grad_(False)  # random (untrained) weights
    # EDM's init makes the output layer ~0 (D ~ c_skip x); perturb every weight so that the
    # network's output, including its use of the class label, shows in the images.
    for p in net.parameters():
        p.add_(0.05 * torch.randn_like(p))
    return net


@pytest.fixture(scope="module")
def net_checkpoint(digits_net, tmp_path_factory):
    from onestep.methods.checkpoints import save_network

    return save_network(tmp_path_factory.mktemp("ckpt") / "teacher", digits_net, {"note": "random weights"})


def read_png(path) -> np.ndarray:
    return np.asarray(PIL.Image.open(path))


def reference_images(G, seeds, class_idx=None):
    """Each image generated alone (batch of one): the definition of per-seed output."""
    out = []
    for s in seeds:
        z, labels, rnd = seeded_inputs([s], (G.img_channels, G.img_resolution, G.img_resolution), G.label_dim,
                                       class_idx=class_idx)
        with torch.no_grad():
            out.append(quantize(G(z, labels)))
    return torch.cat(out).numpy()


def test_batch_size_never_changes_an_image(digits_net, tmp_path):
    G = SolverGenerator(digits_net, "heun", STEPS)
    seeds = list(range(10))
    for batch in (1, 7, 10):
        generate_images(G, seeds, tmp_path / f"b{batch}", batch_size=batch, progress=False)
    for s in seeds:
        data = {(tmp_path / f"b{b}" / f"{s:06d}.png").read_bytes() for b in (1, 7, 10)}
        assert len(data) == 1, f"seed {s}: PNG bytes differ between batch sizes"
    # ... and each file is what seed i alone gives, as a grayscale 8x8 PNG.
    ref = reference_images(G, seeds)
    for s in seeds:
        img = PIL.Image.open(tmp_path / "b7" / f"{s:06d}.png")
        assert img.mode == "L" and img.size == (8, 8)
        assert np.array_equal(np.asarray(img), ref[s, 0])
    assert len(set(ref.reshape(10, -1).tobytes()[i * 64:(i + 1) * 64] for i in range(10))) == 10


def test_ranks_split_the_work_and_together_equal_one_process(digits_net, tmp_path):
    G = SolverGenerator(digits_net, "heun", STEPS)
    seeds = list(range(9))
    generate_images(G, seeds, tmp_path / "one", batch_size=2, progress=False)
    for rank in (0, 1):  # two ranks, each every other batch of 2 (EDM's split), into one folder
        generate_images(G, seeds, tmp_path / "two", batch_size=2, rank=rank, world_size=2, progress=False)
    assert np.array_equal(load_png_images(tmp_path / "one", seeds), load_png_images(tmp_path / "two", seeds))
    only0 = tmp_path / "rank0"
    generate_images(G, seeds, only0, batch_size=2, rank=0, world_size=2, progress=False)
    assert sorted(int(p.stem) for p in only0.iterdir()) == [0, 1, 4, 5, 8]
    with pytest.raises(ValueError, match="grid needs every rank"):
        generate_images(G, seeds, only0, grid=tmp_path / "g.png", rank=0, world_size=2, progress=False)
    with pytest.raises(FileNotFoundError, match="seed 2"):
        load_png_images(only0, [0, 2])


def test_subdirs_layout_and_names(tmp_path):
    G = SolverGenerator(GaussianDenoiser(), "euler", 2)
    seeds = [5, 998, 999, 1000, 2001]
    generate_images(G, seeds, tmp_path, subdirs=True, progress=False)
    found = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.png"))
    assert found == ["000000/000005.png", "000000/000998.png", "000000/000999.png", "001000/001000.png",
                     "002000/002001.png"]
    assert image_path("o", 1234, subdirs=False) == Path("o/001234.png")


def test_npz_layout_and_class(digits_net, tmp_path):
    G = SolverGenerator(digits_net, "heun", STEPS)
    seeds = [3, 1, 4, 15, 9]
    s = generate_images(G, seeds, tmp_path, fmt="npz", batch_size=2, progress=False)
    data = load_npz(s["npz"])
    assert Path(s["npz"]) == tmp_path / "images.npz"
    assert data["images"].shape == (5, 8, 8, 1) and data["images"].dtype == np.uint8
    assert data["seeds"].tolist() == seeds
    assert np.array_equal(data["images"][..., 0], reference_images(G, seeds)[:, 0])
    # Labels are the classes EDM's per-seed draw gives (latent first, then label).
    _, onehot, _ = seeded_inputs(seeds, (1, 8, 8), 10)
    assert data["labels"].tolist() == onehot.argmax(1).tolist()

    fixed = generate_images(G, seeds, tmp_path / "c7.npz", fmt="npz", npz_path=tmp_path / "c7.npz", class_idx=7,
                            progress=False)
    d7 = load_npz(fixed["npz"])
    assert d7["labels"].tolist() == [7] * 5
    assert np.array_equal(d7["images"][..., 0], reference_images(G, seeds, class_idx=7)[:, 0])
    assert not np.array_equal(d7["images"], data["images"])  # the class changes the images


def test_class_conditioning_reaches_the_denoiser(tmp_path):
    # Gaussian teacher whose class k has mean offset 0.3 (k - 4.5): class 0 is darker than 9.
    G = SolverGenerator(GaussianDenoiser(mean=0.0, std=0.1, label_dim=10, class_offset=0.15), "heun", 8)
    lo = generate_images(G, range(20), tmp_path / "lo.npz", fmt="npz", npz_path=tmp_path / "lo.npz", class_idx=0,
                         progress=False)
    hi = generate_images(G, range(20), tmp_path / "hi.npz", fmt="npz", npz_path=tmp_path / "hi.npz", class_idx=9,
                         progress=False)
    mean_lo = load_npz(lo["npz"])["images"].mean() / 127.5 - 1
    mean_hi = load_npz(hi["npz"])["images"].mean() / 127.5 - 1
    assert mean_lo == pytest.approx(-0.675, abs=0.05) and mean_hi == pytest.approx(0.675, abs=0.05)
    with pytest.raises(ValueError, match="out of range"):
        generate_images(G, [0], tmp_path / "x", class_idx=10, progress=False)
    with pytest.raises(ValueError, match="unconditional"):
        generate_images(SolverGenerator(GaussianDenoiser(), "euler", 2), [0], tmp_path / "y", class_idx=1,
                        progress=False)


def test_save_image_grid_places_images_row_major(tmp_path):
    imgs = np.zeros((5, 3, 2, 3), dtype=np.uint8)
    for i in range(5):
        imgs[i] = 10 * (i + 1)
    save_image_grid(imgs, tmp_path / "g.png", nrow=2)
    grid = read_png(tmp_path / "g.png")
    assert grid.shape == (6, 6, 3)  # 3 rows of 2 images, 2x3 pixels each
    for i in range(5):
        r, c = divmod(i, 2)
        assert (grid[2 * r:2 * r + 2, 3 * c:3 * c + 3] == 10 * (i + 1)).all()
    assert (grid[4:6, 3:6] == 0).all()  # the empty cell
    with pytest.raises(TypeError, match="uint8"):
        save_image_grid(imgs.astype(np.float32), tmp_path / "bad.png")


def test_grid_of_generated_images(digits_net, tmp_path):
    G = SolverGenerator(digits_net, "heun", STEPS)
    save_image_grid(generated_images(G, [4, 5, 6, 7], batch_size=3), tmp_path / "g.png", nrow=3, padding=1)
    grid = read_png(tmp_path / "g.png")
    ref = reference_images(G, [4, 5, 6, 7])
    assert grid.shape == (17, 26)  # 2 rows x 3 columns of 8x8 with 1-pixel gaps
    assert np.array_equal(grid[9:17, 0:8], ref[3, 0]) and (grid[8, :] == 0).all()


def test_png_and_npz_round_trip(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (3, 4, 5), dtype=np.uint8)
    (tmp_path / "a.png").write_bytes(png_bytes(rgb))
    assert np.array_equal(read_png(tmp_path / "a.png"), rgb.transpose(1, 2, 0))
    save_npz(tmp_path / "a.npz", rgb[None], [42], None)
    back = load_npz(tmp_path / "a.npz")
    assert np.array_equal(back["images"][0], rgb.transpose(1, 2, 0)) and "labels" not in back
    np.savez(tmp_path / "wrong.npz", images=np.zeros((2, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        load_npz(tmp_path / "wrong.npz")


def test_nan_generator_is_a_clear_error(tmp_path):
    class NaNGen(torch.nn.Module):
        img_resolution, img_channels, label_dim = 4, 1, 0

        def forward(self, z, labels=None):
            return z * float("nan")

    with pytest.raises(FloatingPointError, match="NaN"):
        generate_images(NaNGen(), [0, 1], tmp_path, progress=False)


# --- saving and loading generators ----------------------------------------------------------

def test_one_step_generator_round_trip(digits_net, tmp_path):
    from onestep.methods.zoo import OneStepPrecond

    G = OneStepGenerator(OneStepPrecond.from_teacher(digits_net), 80.0)
    path = save_generator(tmp_path / "gen", G, {"method": "gdd"})
    assert read_generator_record(path) == {"kind": "one_step", "sigma": 80.0}
    G2 = load_generator(path)
    assert isinstance(G2, OneStepGenerator) and G2.sigma == 80.0
    z, labels, _ = seeded_inputs([0, 1, 2], (1, 8, 8), 10)
    with torch.no_grad():
        assert torch.equal(G(z, labels), G2(z, labels))
    with pytest.raises(ValueError, match="one-step generator"):
        load_generator(path, steps=10)


def test_solver_generator_round_trip_and_overrides(digits_net, net_checkpoint, tmp_path):
    G = SolverGenerator(digits_net, "dpm_solver_pp_3m", 6, afs=True)
    path = save_generator(tmp_path / "teacher_dpm", G)
    G2 = load_generator(path)
    assert (G2.solver, G2.num_steps, G2.options, G2.nfe) == ("dpm_solver_pp_3m", 6, {"afs": True}, 5)
    z, labels, _ = seeded_inputs([0, 1], (1, 8, 8), 10)
    with torch.no_grad():
        assert torch.equal(G(z, labels), G2(z, labels))
    assert load_generator(path, solver="heun", steps=4).nfe == 7
    # A plain denoiser checkpoint (no record) is sampled with EDM's defaults.
    plain = load_generator(net_checkpoint)
    assert isinstance(plain, SolverGenerator) and (plain.solver, plain.num_steps, plain.nfe) == ("heun", 18, 35)
    with pytest.raises(TypeError, match="bare denoiser"):
        save_generator(tmp_path / "x", digits_net)


def test_invalid_generator_record_is_a_clear_error(digits_net, tmp_path):
    from onestep.methods.checkpoints import CheckpointError, save_network

    for i, bad in enumerate([{"kind": "two_step"}, {"kind": "one_step"}, "one_step"]):
        path = save_network(tmp_path / f"bad{i}", digits_net, {"generator": bad})
        with pytest.raises(CheckpointError, match="generator record"):
            load_generator(path)


def test_as_generator_passes_generators_through():
    D = GaussianDenoiser()
    G = as_generator(D, "euler", 4)
    assert isinstance(G, SolverGenerator) and G.nfe == 4
    one = OneStepGenerator(D, 2.5)
    assert as_generator(one) is one
    with pytest.raises(ValueError, match="already a generator"):
        as_generator(one, steps=4)


# --- the command line -----------------------------------------------------------------------

def test_cli_generate_png_grid_and_npz(digits_net, net_checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    rc = cli_main(["generate", "--network", str(net_checkpoint), "--seeds", "0-11", "--outdir", str(out),
                   "--steps", str(STEPS), "--batch", "5", "--grid", str(tmp_path / "grid.png"), "--grid-nrow", "4",
                   "--summary", str(tmp_path / "summary.json"), "--device", "cpu"])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == [f"{s:06d}.png" for s in range(12)]
    ref = reference_images(SolverGenerator(digits_net, "heun", STEPS), range(12))
    assert np.array_equal(read_png(out / "000011.png"), ref[11, 0])
    grid = read_png(tmp_path / "grid.png")
    # 8x8 images are enlarged 8x (nearest) in the grid, as the teacher's grid is: 3 rows x 4 of 64x64
    big = ref[4, 0].repeat(8, axis=0).repeat(8, axis=1)
    assert grid.shape == (192, 256) and np.array_equal(grid[64:128, 0:64], big)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["num_images"] == 12 and summary["nfe"] == 5 and summary["generator"]["solver"] == "heun"

    rc = cli_main(["generate", "--network", str(net_checkpoint), "--seeds", "0-3", "--outdir",
                   str(tmp_path / "s.npz"), "--format", "npz", "--steps", str(STEPS), "--class", "2", "--quiet"])
    assert rc == 0
    d = load_npz(tmp_path / "s.npz")
    assert d["labels"].tolist() == [2] * 4 and d["images"].shape == (4, 8, 8, 1)


def test_cli_errors_name_the_problem(net_checkpoint, tmp_path, capsys):
    assert cli_main(["generate", "--network", str(tmp_path / "missing.pkl"), "--outdir", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli_main(["generate", "--network", str(net_checkpoint), "--outdir", str(tmp_path), "--solver", "hune",
                     "--quiet"]) == 2
    assert "did you mean 'heun'" in capsys.readouterr().err
    assert cli_main(["generate", "--network", str(net_checkpoint), "--outdir", str(tmp_path), "--class", "12",
                     "--steps", "2", "--seeds", "0", "--quiet"]) == 2
    assert "out of range" in capsys.readouterr().err
    assert cli_main(["generate", "--network", str(net_checkpoint), "--outdir", str(tmp_path), "--seeds", "5-1"]) == 2
    assert "empty" in capsys.readouterr().err
