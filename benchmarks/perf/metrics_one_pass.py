"""All metrics for one generator in one generation pass (harness) vs the naive path; PR/KID memory.

    python -m onestep.benchmarks.perf.metrics_one_pass [--n 64] [--batch 64] \
        [--inception FILE --vgg16 FILE --clip FILE | --random-weights] [--memory-n 50000]

1. Speed: FID, IS, KID, precision/recall and CLIP-FID of one generator against a reference
   set, (a) through `evaluate()` (images generated once, each batch streamed to Inception,
   VGG16 and CLIP; reference statistics computed once, then cached) and (b) the naive path
   (generate, write PNGs, torch-fidelity twice, then clean-fid: every library decodes the
   PNGs and extracts both sides again on every call). Prints the times, the ratios (target
   >= 2x) and whether the numbers agree. Both paths run each network once per image when the
   reference is not cached, so the cold ratio is near 1x; the saving is the reference side
   (half the work), which the harness computes once per (data, extractor, weights, n).
2. Memory: peak extra RSS of precision/recall (4096-d VGG features) and KID (2048-d) on
   `--memory-n` random feature rows per side with the harness's batched implementations
   (target within 4 GB at 50k), next to what torch-fidelity's full mode allocates for one
   n x n float32 distance matrix.

Weights: real files where given or found (weights.locate_weights); with --random-weights,
random files in the released formats are made (tests/fixtures/random_weights.py) and every
number is labelled UNTRAINED. The generator is a small random convolutional network: speed
and agreement do not depend on what it draws.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

TARGET_SPEEDUP = 2.0
TARGET_PEAK_GB = 4.0
REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def _env(name: str, value: str):
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


class TinyGenerator(torch.nn.Module):
    """A fixed random conv net z -> image in [-1, 1] with the Generator attributes."""

    def __init__(self, resolution: int = 16, channels: int = 3, seed: int = 0):
        super().__init__()
        self.img_resolution, self.img_channels, self.label_dim = resolution, channels, 0
        torch.manual_seed(seed)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(channels, 32, 3, padding=1), torch.nn.SiLU(),
                                       torch.nn.Conv2d(32, channels, 3, padding=1))

    def forward(self, z, class_labels=None):
        return torch.tanh(self.net(z))


def random_weight_files(folder: Path) -> dict[str, Path]:
    """Random-weight files in the released formats, made once (the tests' generators)."""
    sys.path.insert(0, str(REPO / "tests"))
    from fixtures import random_weights as rw  # noqa: E402 (test helpers, not part of the package)

    folder.mkdir(parents=True, exist_ok=True)
    files = {"inception": rw._save_once(folder / "weights-inception-2015-12-05-6726825d.pth", rw.random_inception_state_dict),
             "vgg16": rw._save_once(folder / "vgg16-397923af.pth", rw.random_vgg16_state_dict)}
    clip = folder / "open_clip_model.safetensors"
    if not clip.is_file():
        from safetensors.torch import save

        from onestep.methods.core.atomic import atomic_write_bytes

        atomic_write_bytes(clip, save({k: v.contiguous() for k, v in rw.random_clip_state_dict().items()}))
    files["clip"] = clip
    return files


def harness(G, reference, n, batch, files, untrained, use_cache) -> tuple[dict, float]:
    from onestep.benchmarks.metrics.evaluate import MetricOptions, evaluate
    from onestep.benchmarks.metrics.extractors.registry import build_extractor

    t = time.perf_counter()
    exts = {key: build_extractor(key, files.get(key), untrained=untrained) for key in ("inception", "vgg16", "clip")}
    res = evaluate(G, reference, ["fid", "isc", "kid", "prc", "clip_fid"], num_samples=n, batch_size=batch,
                   extractors=exts, options=MetricOptions(kid_subset_size=min(1000, n)), use_cache=use_cache, progress=True)
    seconds = time.perf_counter() - t
    values = {"FID": res["FID"].raw, "IS": res["IS"].value, "KID": res["KID"].raw, "precision": res["precision"].value,
              "recall": res["recall"].value, "CLIP-FID": res["CLIP-FID"].raw}
    values["untrained"] = all(r.untrained for r in res.records)
    return values, seconds


def naive(G, reference, n, batch, files) -> tuple[dict, float]:
    from onestep.benchmarks.metrics.naive import naive_metrics
    from onestep.benchmarks.sampling import iter_generated

    t = time.perf_counter()
    images = [imgs for _, imgs in iter_generated(G, list(range(n)), batch)]
    out = naive_metrics(images, reference, inception_weights=files.get("inception"), vgg16_weights=files.get("vgg16"),
                        clip_weights=files.get("clip"), batch_size=batch)
    seconds = time.perf_counter() - t
    values = {"FID": out["frechet_inception_distance"], "IS": out["inception_score_mean"],
              "KID": out["kernel_inception_distance_mean"], "precision": out["precision"], "recall": out["recall"],
              "CLIP-FID": out["clip_fid"], "untrained": out["untrained"]}
    return values, seconds


def _memory_child(kind: str, n: int, dim: int) -> None:
    """Runs in a fresh process: peak RSS added by one metric on random features."""
    from onestep.benchmarks.metrics.kid import kernel_inception_distance
    from onestep.benchmarks.metrics.prc import precision_recall

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, dim, generator=g), torch.randn(n, dim, generator=g) + 0.1
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    t = time.perf_counter()
    if kind == "prc":
        precision_recall(a, b)
    else:
        kernel_inception_distance(a, b, subset_size=min(1000, n))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"extra_gb": (peak - base) / 2**20, "seconds": time.perf_counter() - t}))


def memory(kind: str, n: int, dim: int) -> dict:
    out = subprocess.run([sys.executable, "-m", "onestep.benchmarks.perf.metrics_one_pass", "--_memory-child", kind,
                          str(n), str(dim)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=64, help="generated images = reference images")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--inception"), p.add_argument("--vgg16"), p.add_argument("--clip")
    p.add_argument("--random-weights", action="store_true", help="make random files in the released formats (UNTRAINED)")
    p.add_argument("--memory-n", type=int, default=50_000, help="rows per side for the PR/KID memory check (0: skip)")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.add_argument("--_memory-child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._memory_child:
        _memory_child(args._memory_child[0], int(args._memory_child[1]), int(args._memory_child[2]))
        return 0

    report: dict = {}
    ok = True
    if not args.skip_speed:
        from onestep.benchmarks.datasets import load_digits
        from onestep.methods.core.paths import cache_dir

        files = {"inception": args.inception, "vgg16": args.vgg16, "clip": args.clip}
        if args.random_weights:
            files = random_weight_files(cache_dir("random-weights"))
        G = TinyGenerator().eval()
        reference = load_digits(16, 3, "train").images[: args.n].clone()
        # Reference statistics go to a fresh cache: the first harness run computes them (cold),
        # the second reads them, as every later generator evaluated against this reference does.
        with tempfile.TemporaryDirectory() as tmp, _env("ONESTEP_CACHE", tmp):
            ours, t_ours = harness(G, reference, args.n, args.batch, files, args.random_weights, use_cache=True)
            warm, t_warm = harness(G, reference, args.n, args.batch, files, args.random_weights, use_cache=True)
        theirs, t_naive = naive(G, reference, args.n, args.batch, files)
        tag = "  [UNTRAINED weights: not real measurements]" if ours["untrained"] or theirs["untrained"] else ""
        print(f"\nall metrics, n={args.n} generated vs {args.n} reference images{tag}")
        print(f"{'metric':<10} {'harness':>16} {'naive':>16} {'rel. diff':>10}")
        agree = True
        for k in ("FID", "IS", "KID", "precision", "recall", "CLIP-FID"):
            a, b = ours[k], theirs[k]
            rel = abs(a - b) / max(abs(b), 1e-12)
            agree &= rel <= 1e-5 or abs(a - b) <= 1e-9
            print(f"{k:<10} {a:>16.9g} {b:>16.9g} {rel:>10.2e}")
        agree &= all(warm[k] == ours[k] for k in ours)  # cached reference gives the same numbers
        ratio, ratio_warm = t_naive / t_ours, t_naive / t_warm
        print(f"time: naive {t_naive:.1f} s | harness, reference computed {t_ours:.1f} s ({ratio:.2f}x) | "
              f"harness, reference statistics cached {t_warm:.1f} s ({ratio_warm:.2f}x)")
        print(f"speed-up target >= {TARGET_SPEEDUP}x: {'met' if ratio_warm >= TARGET_SPEEDUP else 'NOT met'} "
              f"with cached reference, {'met' if ratio >= TARGET_SPEEDUP else 'not met'} cold")
        print(f"numbers agree (rel. <= 1e-5): {'yes' if agree else 'NO'}")
        ok &= agree
        report["speed"] = {"n": args.n, "harness_cold_s": t_ours, "harness_warm_s": t_warm, "naive_s": t_naive,
                           "ratio_cold": ratio, "ratio_warm": ratio_warm, "agree": agree, "harness": ours, "naive": theirs}
    if args.memory_n:
        n = args.memory_n
        print(f"\npeak extra memory at n={n} random feature rows per side (target <= {TARGET_PEAK_GB} GB at 50k)")
        full_gb = n * n * 4 / 2**30
        for kind, dim in (("prc", 4096), ("kid", 2048)):
            m = memory(kind, n, dim)
            print(f"{kind:<4} d={dim}: {m['extra_gb']:.2f} GB in {m['seconds']:.1f} s"
                  + (f"   (torch-fidelity full mode: {full_gb:.2f} GB per n x n distance matrix, 3 of them)"
                     if kind == "prc" else ""))
            report[f"memory_{kind}"] = {"n": n, "dim": dim, **m}
            if n >= 50_000:
                ok &= m["extra_gb"] <= TARGET_PEAK_GB
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
