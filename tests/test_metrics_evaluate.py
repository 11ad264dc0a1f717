"""evaluate(): streaming generation, rel-FID, data floor, protocols, bad input, the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from onestep.benchmarks import sampling
from onestep.benchmarks.cli import main as cli_main
from onestep.benchmarks.datasets import ArrayImageDataset, load_digits
from onestep.benchmarks.metrics.evaluate import evaluate, evaluate_repeated
from onestep.benchmarks.metrics.extractors.digits import DigitsExtractor
from onestep.benchmarks.metrics.kid import NotEnoughSamplesError
from onestep.benchmarks.metrics.protocols import PROTOCOLS, aggregate_values, get_protocol, parse_metrics


class ToyGenerator(torch.nn.Module):
    """A conditional 'generator': a class template plus noise; counts its calls."""

    img_resolution, img_channels, label_dim = 8, 1, 10

    def __init__(self, noise_scale=0.3, nan_every=0):
        super().__init__()
        digits = load_digits(split="train")
        means = torch.stack([digits.images[digits.labels == c].float().mean(0) for c in range(10)])
        self.register_buffer("templates", means / 127.5 - 1)
        self.noise_scale, self.nan_every, self.calls = noise_scale, nan_every, 0

    def forward(self, z, class_labels=None):
        self.calls += 1
        assert class_labels is not None and class_labels.shape == (len(z), 10)
        x = torch.einsum("bk,kchw->bchw", class_labels, self.templates) + self.noise_scale * z
        if self.nan_every:
            x[:: self.nan_every] = float("nan")
        return x.clamp(-1, 1)


@pytest.fixture(scope="module")
def ext(digits_feature_net):
    return {"digits": DigitsExtractor(net=digits_feature_net)}


def test_generator_is_streamed_once_and_equals_its_images(ext):
    G = ToyGenerator()
    seeds = list(range(100, 260))
    out = evaluate(G, "digits-8-train", ["fd_digits", "is_digits", "prc_digits"], seeds=seeds, batch_size=50,
                   extractors=ext, progress=False)
    assert G.calls == 4  # ceil(160 / 50) batches for three metrics: generated once
    images = torch.cat([x for _, x in sampling.iter_generated(ToyGenerator(), seeds, batch_size=7)])
    same = evaluate(ArrayImageDataset(images), "digits-8-train", ["fd_digits", "is_digits", "prc_digits"],
                    extractors=ext, progress=False)
    for a, b in zip(out.records, same.records):
        assert a.metric == b.metric and a.value == pytest.approx(b.value, rel=1e-9)
    assert out["FD-digits"].n == 160 and out["FD-digits"].seeds == "100-259"
    assert {r.metric for r in out.records} == {"FD-digits", "IS-digits", "precision-digits", "recall-digits"}


def test_rel_fid_of_a_generator_against_itself_is_zero(ext):
    G = ToyGenerator()
    rec = evaluate(G, ToyGenerator(), ["fd_digits"], num_samples=150, extractors=ext, progress=False)["rel-FD-digits"]
    # Identical features: zero up to rounding (the raw value may land on either side of 0).
    assert 0.0 <= rec.value < 1e-6 and abs(rec.raw) < 1e-6
    other = evaluate(G, ToyGenerator(noise_scale=0.8), ["fd_digits"], num_samples=150, extractors=ext,
                     progress=False)["rel-FD-digits"]
    assert other.value > 1.0


def test_data_floor_is_real_vs_disjoint_real_at_the_same_n(ext):
    real = load_digits(split="all")
    out = evaluate(load_digits(split="test"), real, ["fd_digits", "prc_digits"], data_floor=True, extractors=ext,
                   progress=False)
    fd = out["FD-digits"]
    assert fd.floor_n == fd.n == 359
    # recompute: two disjoint random halves of the reference (seed 0), each of n images
    order = torch.randperm(len(real), generator=torch.Generator().manual_seed(0))
    a, b = real.subset(order[:359].sort().values), real.subset(order[359:718].sort().values)
    assert not set(order[:359].tolist()) & set(order[359:718].tolist())
    direct = evaluate(a, b, ["fd_digits", "prc_digits"], extractors=ext, progress=False, use_cache=False)
    assert fd.floor == pytest.approx(direct["FD-digits"].value, rel=1e-9)
    assert out["recall-digits"].floor == pytest.approx(direct["recall-digits"].value)
    assert "real-vs-real floor" in fd.format() and "n=359" in fd.format()
    # a reference larger than n: the floor is at n; a smaller one: at N // 2, and it says so
    small = evaluate(load_digits(split="train"), load_digits(split="test"), ["fd_digits"], data_floor=True,
                     extractors=ext, progress=False)["FD-digits"]
    assert small.floor_n == 359 // 2 and small.n == 1438


def test_nan_samples_are_reported_with_their_count(ext):
    with pytest.raises(FloatingPointError, match="4 of 16 generated images contain NaN"):
        evaluate(ToyGenerator(nan_every=4), "digits-8-train", ["fd_digits"], num_samples=16, batch_size=16,
                 extractors=ext, progress=False)


def test_too_few_samples_and_empty_sets_are_clear_errors(ext, tmp_path):
    G = ToyGenerator()
    with pytest.raises(NotEnoughSamplesError, match="KID subset size 1000"):
        evaluate(G, "digits-8-train", ["kid_digits"], num_samples=64, extractors=ext, progress=False)
    with pytest.raises(NotEnoughSamplesError, match="k=3 needs more than 3"):
        evaluate(G, "digits-8-train", ["prc_digits"], num_samples=3, extractors=ext, progress=False)
    with pytest.raises(ValueError, match="is empty"):
        evaluate(ArrayImageDataset(torch.zeros(0, 1, 8, 8, dtype=torch.uint8), name="none"), "digits-8-train",
                 ["fd_digits"], extractors=ext, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        evaluate(str(tmp_path / "empty"), "digits-8-train", ["fd_digits"], extractors=ext, progress=False)
    with pytest.raises(ValueError, match="need a reference"):
        evaluate(G, None, ["fd_digits"], num_samples=8, extractors=ext, progress=False)


def test_generator_without_label_dim_is_refused(ext):
    class NoLabels(torch.nn.Module):
        img_resolution, img_channels = 8, 1

        def forward(self, z, class_labels=None):
            return z

    with pytest.raises(TypeError, match="label_dim"):
        evaluate(NoLabels(), "digits-8-train", ["fd_digits"], num_samples=8, extractors=ext, progress=False)


def test_unknown_metric_suggests_the_right_name():
    with pytest.raises(ValueError, match="did you mean 'fd_digits'"):
        parse_metrics("fid_digits")


def test_untrained_extractor_labels_every_record(digits_feature_net):
    ext = {"digits": DigitsExtractor(net=digits_feature_net, untrained=True)}
    out = evaluate(load_digits(split="test"), load_digits(split="train"), ["fd_digits", "is_digits"], extractors=ext,
                   progress=False, use_cache=False)
    assert all(r.untrained and r.extractor["untrained"] for r in out.records)
    assert "UNTRAINED" in out.table()
    assert all(d["untrained"] for d in json.loads(out.to_json()))


def test_protocols_and_repeated_evaluation(ext):
    edm, sida = get_protocol("edm"), get_protocol("sida")
    assert (edm.num_samples, edm.repeats, edm.aggregate) == (50_000, 3, "best")
    assert (sida.repeats, sida.aggregate) == (10, "mean_std")
    ranges = PROTOCOLS["single"].seed_ranges()
    assert ranges == [list(range(50_000))]
    r3 = edm.seed_ranges(num_samples=150)  # n > 128 features: full-rank covariance
    assert [r[0] for r in r3] == [0, 150, 300] and len({s for r in r3 for s in r}) == 450

    G = ToyGenerator()
    kwargs = dict(extractors=ext, progress=False)
    rep = evaluate_repeated(G, "digits-8-train", ["fd_digits", "prc_digits"], seed_ranges=r3, aggregate="mean_std",
                            **kwargs)
    singles = [evaluate(G, "digits-8-train", ["fd_digits"], seeds=r, **kwargs)["FD-digits"].value for r in r3]
    fd = rep["FD-digits"]
    assert fd.runs == pytest.approx(singles)
    assert fd.value == pytest.approx(np.mean(singles)) and fd.std == pytest.approx(np.std(singles, ddof=1))
    best = evaluate_repeated(G, "digits-8-train", ["fd_digits", "prc_digits"], seed_ranges=r3, aggregate="best", **kwargs)
    assert best["FD-digits"].value == pytest.approx(min(singles))  # EDM: the minimum FID of 3
    assert best["precision-digits"].value == max(best["precision-digits"].runs)  # higher is better
    with pytest.raises(ValueError, match="disjoint"):
        evaluate_repeated(G, "digits-8-train", ["fd_digits"], seed_ranges=[[0, 1, 2], [2, 3, 4]], **kwargs)
    assert aggregate_values([3.0], "mean_std", True)["std"] is None


def test_cli_eval_writes_json_and_csv(digits_feature_net, tmp_path, capsys):
    out_json, out_csv = tmp_path / "r.json", tmp_path / "r.csv"
    rc = cli_main(["eval", "--images", "digits-8-test", "--ref", "digits-8-train", "--metrics", "fd_digits,is_digits",
                   "--data-floor", "--quiet", "--json", str(out_json), "--csv", str(out_csv),
                   "--weights", f"digits={digits_feature_net.path}"])
    assert rc == 0
    records = json.loads(out_json.read_text())
    assert [r["metric"] for r in records] == ["FD-digits", "IS-digits"]
    assert records[0]["n"] == 359 and records[0]["floor"] is not None
    assert records[0]["extractor"]["weights_sha256"] == digits_feature_net.weights_sha256
    assert out_csv.read_text().startswith("metric,value")
    assert "FD-digits" in capsys.readouterr().out
    rc = cli_main(["eval", "--images", "digits-8-test", "--ref", "digits-8-train", "--metrics", "kid_digits", "--quiet"])
    assert rc == 2 and "KID subset size 1000" in capsys.readouterr().err


def test_mismatched_reference_is_refused_before_any_generation(ext, digits_feature_net, tmp_path):
    from onestep.benchmarks.metrics.reference import ReferenceMismatchError, compute_reference

    ref = compute_reference(load_digits(split="train"), DigitsExtractor(net=digits_feature_net, untrained=True),
                            ["pool"], keep_features=False, use_cache=False)
    G = ToyGenerator()
    with pytest.raises(ReferenceMismatchError, match="trained vs untrained"):
        evaluate(G, ref, ["fd_digits"], num_samples=64, extractors=ext, progress=False)
    assert G.calls == 0


def test_relative_naming_for_two_image_sets(ext):
    a, b = load_digits(split="test"), load_digits(split="train")
    out = evaluate(a, b, ["fd_digits"], relative=True, extractors=ext, progress=False)
    assert out["rel-FD-digits"].value == pytest.approx(evaluate(a, b, ["fd_digits"], extractors=ext,
                                                                progress=False)["FD-digits"].value)


def test_cli_eval_of_a_teacher_checkpoint_with_the_edm_protocol(digits_teacher_checkpoint, digits_feature_net, tmp_path,
                                                                capsys):
    path, _ = digits_teacher_checkpoint
    out_json = tmp_path / "r.json"
    rc = cli_main(["eval", "--network", str(path), "--steps", "4", "--ref", "digits-8-train", "--metrics", "fd_digits",
                   "--protocol", "edm", "--num", "150", "--quiet", "--json", str(out_json)])
    assert rc == 0, capsys.readouterr().err
    (rec,) = json.loads(out_json.read_text())
    assert rec["metric"] == "FD-digits" and len(rec["runs"]) == 3 and rec["value"] == min(rec["runs"])
    assert rec["seeds"] == "0-149;150-299;300-449" and rec["aggregate"] == "best"
    assert "x 3 runs, best" in capsys.readouterr().out
