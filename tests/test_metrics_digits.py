"""The digits feature network: accuracy, API, caching by checksum, torch-fidelity equality,
and that FD-digits orders held-out real digits < teacher samples < noise."""
from __future__ import annotations

import hashlib

import pytest
import torch

from onestep.benchmarks.datasets import ArrayImageDataset, load_digits, to_model_range
from onestep.benchmarks.metrics.evaluate import MetricOptions, evaluate
from onestep.benchmarks.metrics.extractors.digits import DigitsExtractor, register_with_torch_fidelity
from onestep.methods.feature_nets.digits import (DigitsNetFileError, get_digits_feature_net, load_digits_feature_net,
                                                 weights_checksum)


@pytest.mark.parametrize("resolution,channels", [(8, 1), (16, 1), (32, 3)])
def test_digits_net_classifies_held_out_digits(digits_feature_net, resolution, channels):
    test = load_digits(resolution=resolution, channels=channels, split="test")
    with torch.no_grad():
        pred = digits_feature_net(to_model_range(test.images)).argmax(1)
    accuracy = float((pred == test.labels).float().mean())
    assert accuracy >= 0.95, f"held-out accuracy {accuracy:.3f} at {resolution}x{resolution}, {channels} channels"
    assert float(digits_feature_net.metadata["test_accuracy"]) >= 0.95


def test_digits_net_api_frozen_and_shapes(digits_feature_net):
    net = digits_feature_net
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    x = torch.rand(5, 3, 32, 32) * 2 - 1
    assert net(x).shape == (5, 10)
    assert net.embed(x).shape == (5, net.embed_dim)
    maps = net.feature_maps(x)
    r = net.input_resolution
    assert [tuple(m.shape[-2:]) for m in maps] == [(r, r), (r // 2, r // 2), (r // 4, r // 4)]
    # grey and the same grey repeated on 3 channels are the same image to the net
    g = torch.rand(4, 1, 8, 8) * 2 - 1
    torch.testing.assert_close(net.embed(g), net.embed(g.repeat(1, 3, 1, 1)))
    with pytest.raises(TypeError, match="float images"):
        net(torch.zeros(1, 1, 8, 8, dtype=torch.uint8))


def test_digits_net_is_cached_and_identified_by_its_checksum(digits_feature_net):
    again = get_digits_feature_net()
    assert again.weights_sha256 == digits_feature_net.weights_sha256
    h = hashlib.sha256()  # the documented checksum: tensors in name order, metadata excluded
    for name, t in sorted(again.state_dict().items()):
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode() + t.numpy().tobytes())
    assert again.weights_sha256 == h.hexdigest()
    changed = {k: v.clone() for k, v in again.state_dict().items()}
    changed["head.bias"][0] += 1e-3
    assert weights_checksum(changed) != again.weights_sha256
    assert DigitsExtractor(net=again).identity.weights_sha256 == again.weights_sha256


def test_corrupt_digits_net_file_is_refused(tmp_path, digits_feature_net):
    bad = tmp_path / "digits_cnn.safetensors"
    bad.write_bytes(digits_feature_net.path.read_bytes()[:200])
    with pytest.raises(DigitsNetFileError, match="not a readable safetensors file"):
        load_digits_feature_net(bad)


def _uint8_dataset(images: torch.Tensor):
    class Bare(torch.utils.data.Dataset):  # torch-fidelity wants bare tensors
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            return images[i]

    return Bare()


def test_digits_metrics_equal_torch_fidelity_calculate_metrics(digits_feature_net):
    import torch_fidelity

    name = register_with_torch_fidelity()
    assert register_with_torch_fidelity() == name  # idempotent
    gen = load_digits(resolution=16, split="test")  # 359 images
    real = load_digits(resolution=16, split="train").subset(range(0, 1400, 2))  # 700 images
    tf = torch_fidelity.calculate_metrics(
        input1=_uint8_dataset(gen.images), input2=_uint8_dataset(real.images), fid=True, isc=True, kid=True, prc=True,
        feature_extractor=name, feature_extractor_weights_path=str(digits_feature_net.path), cuda=False, cache=False,
        save_cpu_ram=True, verbose=False, kid_subset_size=200, kid_subsets=20, batch_size=100)
    ours = evaluate(gen, real, ["fd_digits", "is_digits", "kid_digits", "prc_digits"], progress=False, use_cache=False,
                    extractors={"digits": DigitsExtractor(net=digits_feature_net)},
                    options=MetricOptions(kid_subset_size=200, kid_subsets=20))
    assert ours["FD-digits"].raw == pytest.approx(tf["frechet_inception_distance"], rel=1e-6)
    assert ours["IS-digits"].value == pytest.approx(tf["inception_score_mean"], rel=1e-6)
    assert ours["IS-digits"].std == pytest.approx(tf["inception_score_std"], rel=1e-5)
    assert ours["KID-digits"].raw == pytest.approx(tf["kernel_inception_distance_mean"], rel=1e-4)
    assert ours["precision-digits"].value == pytest.approx(tf["precision"], abs=1e-9)
    assert ours["recall-digits"].value == pytest.approx(tf["recall"], abs=1e-9)
    assert ours["FD-digits"].n == 359 and ours["FD-digits"].reference["n"] == 700


def test_fd_digits_orders_real_teacher_noise(digits_feature_net, digits_teacher):
    from onestep.methods.solvers import SolverGenerator

    ext = {"digits": DigitsExtractor(net=digits_feature_net)}
    train = load_digits(split="train")
    held_out = load_digits(split="test")
    n = len(held_out)
    teacher = SolverGenerator(digits_teacher, "heun", 10)
    noise = ArrayImageDataset(torch.randint(0, 256, (n, 1, 8, 8), generator=torch.Generator().manual_seed(0),
                                            dtype=torch.uint8), name="noise")
    fd = {what: evaluate(src, train, ["fd_digits"], num_samples=n, extractors=ext, progress=False)["FD-digits"].value
          for what, src in [("real", held_out), ("teacher", teacher), ("noise", noise)]}
    assert fd["real"] < fd["teacher"] < fd["noise"], fd


def test_training_the_feature_net_leaves_the_callers_rng_alone(tmp_path, monkeypatch):
    # A run that trains the net on first use must draw the same random numbers afterwards as a
    # run that found it cached (otherwise results depend on the cache's state).
    import torch

    from onestep.methods.feature_nets import digits

    monkeypatch.setenv("ONESTEP_CACHE", str(tmp_path))
    recipe = digits.DigitsNetRecipe(epochs=1)
    draws = []
    for _ in ("trains", "cached"):
        torch.manual_seed(5)
        digits.get_digits_feature_net(recipe=recipe, verbose=False)
        draws.append(torch.rand(3))
    assert digits.digits_feature_net_path(recipe).exists()
    assert torch.equal(draws[0], draws[1])
