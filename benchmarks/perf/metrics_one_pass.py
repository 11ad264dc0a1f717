"""All metrics for one generator in one generation pass (harness) vs the naive path; PR/KID memory.

    python -m onestep.benchmarks.perf.metrics_one_pass [--n 64] [--batch 64] [--device cuda] \
        [--inception FILE --vgg16 FILE --clip FILE | --random-weights] [--memory-n 50000] \
        [--repeats 3] [--skip-naive]

1. Speed: FID, IS, KID, precision/recall (VGG16) and CLIP-FID of one generator against a
   reference set, each path in its own fresh process, side by side in one run:
   - harness: `evaluate()`: images generated once, each batch streamed to Inception, VGG16 and
     CLIP; reference features computed once and cached (run twice: cold cache, then warm, as
     every later generator evaluated against this reference is).
   - naive: generate, write PNGs, torch-fidelity (Inception: FID/IS/KID; VGG16: PR), then
     clean-fid (CLIP-FID), library defaults: every library decodes the PNGs and extracts both
     sides again on every call.
   Both paths feed the networks the same batches, so the numbers agree; the script checks it.
   Per image both run the same networks on the same batches, so on a CPU, where the networks
   are nearly all the time, the harness saves the reference side (half the work at equal n,
   once cached) and the PNG round trip: the cached ratio approaches 2x from below as n grows.
   - bare: the same extractors' forward passes on the same uint8 batches and nothing else (the
     harness's floor); building the extractors and generating are timed apart. The cached
     harness and the bare run alternate `--repeats` times (ABAB..., medians and spread): the
     harness time over the bare forward time (target <= 1.10), in wall and CPU time, comes with
     the harness's own breakdown (StageTimer: extractor build, generation, forward, statistics,
     Frechet linear algebra, other metrics, cache I/O), the ratio without the fixed costs that
     any implementation pays once per evaluation (weights loading, one eigenproblem per FD),
     and the n from which those fit in the 10%. `--skip-naive` runs only harness and bare.
   Prints the times, the ratios (target >= 2x) and the agreement.
2. Memory: peak RSS of precision/recall (4096-d VGG features) and KID (2048-d) on `--memory-n`
   random feature rows per side with the harness's batched implementations, in a fresh process,
   the feature matrices included (target within 4 GB at 50k), next to what torch-fidelity's
   full mode allocates for one n x n float32 distance matrix.

Weights: real files where given or found (weights.locate_weights); with --random-weights,
random files in the released formats are made (tests/fixtures/random_weights.py) and every
number is labelled UNTRAINED. The generator is a small random convolutional network: speed
and agreement do not depend on what it draws.
"""
from __future__ import annotations

import argparse
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
TARGET_OVER_BARE = 1.10
REPO = Path(__file__).resolve().parents[2]


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


METRIC_KEYS = ("FID", "IS", "KID", "precision", "recall", "CLIP-FID")


def _inputs(n: int, device: str):
    from onestep.benchmarks.datasets import load_digits

    images = load_digits(16, 3, "train").images
    if n > len(images):  # n = 5,000 on a GPU: the reference repeats the digits (speed, not quality)
        images = images.repeat(-(-n // len(images)), 1, 1, 1)
    return TinyGenerator().eval().to(device), images[:n].clone()


class StageTimer:
    """Wall and CPU time spent inside patched callables, by stage (the harness's breakdown).
    Exclusive times: a timed call inside another (the Frechet distance inside the metric
    computation) counts for its own stage only, so the stages add up without double counting.
    CPU time (the process's, all threads) is what a loaded machine's waiting does not inflate."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        self._inner: list[list[float]] = []  # per open timed call: [wall, cpu] of the timed calls inside

    def _open(self):
        self._inner.append([0.0, 0.0])
        return time.perf_counter(), time.process_time()

    def _close(self, stage: str, start) -> None:
        wall, cpu = time.perf_counter() - start[0], time.process_time() - start[1]
        inner = self._inner.pop()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + wall - inner[0]
        self.cpu_seconds[stage] = self.cpu_seconds.get(stage, 0.0) + cpu - inner[1]
        if self._inner:
            self._inner[-1][0] += wall
            self._inner[-1][1] += cpu

    def wrap(self, stage: str, fn, sync_device=None):
        def timed(*args, **kwargs):
            start = self._open()
            try:
                out = fn(*args, **kwargs)
                if sync_device is not None:
                    _sync(sync_device)
                return out
            finally:
                self._close(stage, start)
        return timed

    def wrap_iter(self, stage: str, fn):
        """For generator functions: the time of each next() (generating a batch) counts."""
        def timed(*args, **kwargs):
            it = iter(fn(*args, **kwargs))
            while True:
                start = self._open()
                try:
                    item = next(it)
                except StopIteration:
                    return
                finally:
                    self._close(stage, start)
                yield item
        return timed


def _timed_stages(timer: StageTimer, exts: dict, device):
    """Patches that time each stage of evaluate(): extractor forwards, feature statistics,
    the Frechet distance's linear algebra, the other metrics, cache reads/writes, generation."""
    import importlib
    from unittest import mock

    # the modules themselves (the package re-exports a function named `evaluate`)
    ev = importlib.import_module("onestep.benchmarks.metrics.evaluate")
    ref_mod = importlib.import_module("onestep.benchmarks.metrics.reference")
    st = importlib.import_module("onestep.benchmarks.metrics.statistics")

    patches = [mock.patch.object(type(ext), "__call__", timer.wrap("forward", type(ext).__call__, device))
               for ext in {type(e): e for e in exts.values()}.values()]
    patches += [mock.patch.object(st.FeatureCollector, name, timer.wrap("statistics", getattr(st.FeatureCollector, name)))
                for name in ("update", "moments", "features")]
    patches += [mock.patch.object(ev, "frechet_distance_stats", timer.wrap("fd_linear_algebra", ev.frechet_distance_stats)),
                mock.patch.object(ev, "_compute", timer.wrap("other_metrics", ev._compute)),
                mock.patch.object(ref_mod.Reference, "load", classmethod(timer.wrap("cache_io", ref_mod.Reference.load.__func__))),
                mock.patch.object(ref_mod.Reference, "save", timer.wrap("cache_io", ref_mod.Reference.save)),
                mock.patch.object(ev.sampling, "iter_generated", timer.wrap_iter("generate", ev.sampling.iter_generated))]
    return patches


def harness(n, batch, files, untrained, device) -> tuple[dict, float]:
    from contextlib import ExitStack

    from onestep.benchmarks.metrics.evaluate import MetricOptions, evaluate
    from onestep.benchmarks.metrics.extractors.registry import build_extractor

    G, reference = _inputs(n, device)
    t, c = time.perf_counter(), time.process_time()
    exts = {key: build_extractor(key, files.get(key), untrained=untrained, device=device)
            for key in ("inception", "vgg16", "clip")}
    built, built_cpu = time.perf_counter() - t, time.process_time() - c
    timer = StageTimer()
    with ExitStack() as stack:
        for patch in _timed_stages(timer, exts, device):
            stack.enter_context(patch)
        res = evaluate(G, reference, ["fid", "isc", "kid", "prc", "clip_fid"], num_samples=n, batch_size=batch,
                       device=device, extractors=exts, options=MetricOptions(kid_subset_size=min(1000, n)),
                       progress=True)
    seconds = time.perf_counter() - t
    values = {"FID": res["FID"].raw, "IS": res["IS"].value, "KID": res["KID"].raw, "precision": res["precision"].value,
              "recall": res["recall"].value, "CLIP-FID": res["CLIP-FID"].raw}
    values["untrained"] = all(r.untrained for r in res.records)
    cpu = time.process_time() - c
    stages = {"build_extractors": built, **timer.seconds}
    stages["unaccounted"] = seconds - sum(stages.values())
    cpu_stages = {"build_extractors": built_cpu, **timer.cpu_seconds}
    cpu_stages["unaccounted"] = cpu - sum(cpu_stages.values())
    return {"metrics": values, "stages_s": stages, "cpu_stages_s": cpu_stages, "cpu_s": cpu}, seconds


def naive(n, batch, files, untrained, device) -> tuple[dict, float]:
    from onestep.benchmarks.metrics.naive import naive_metrics
    from onestep.benchmarks.sampling import iter_generated

    G, reference = _inputs(n, device)
    t = time.perf_counter()
    images = [imgs.cpu() for _, imgs in iter_generated(G, list(range(n)), batch, device)]
    out = naive_metrics(images, reference, inception_weights=files.get("inception"), vgg16_weights=files.get("vgg16"),
                        clip_weights=files.get("clip"), batch_size=batch, device=device)
    seconds = time.perf_counter() - t
    values = {"FID": out["frechet_inception_distance"], "IS": out["inception_score_mean"],
              "KID": out["kernel_inception_distance_mean"], "precision": out["precision"], "recall": out["recall"],
              "CLIP-FID": out["clip_fid"], "untrained": out["untrained"], "stages_s": out["seconds"]}
    return values, seconds


def _sync(device) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def bare(n, batch, files, untrained, device) -> tuple[dict, float]:
    """The floor of the harness: the same extractors' forward passes on the same uint8 batches,
    nothing else timed; the other stages of a harness run are timed apart to explain the rest."""
    from onestep.benchmarks.metrics.extractors.registry import build_extractor
    from onestep.benchmarks.sampling import iter_generated

    G, _ = _inputs(n, device)
    stages = {}
    t = time.perf_counter()
    exts = {key: build_extractor(key, files.get(key), untrained=untrained, device=device)
            for key in ("inception", "vgg16", "clip")}
    stages["build_extractors"] = time.perf_counter() - t
    t = time.perf_counter()
    batches = [imgs for _, imgs in iter_generated(G, list(range(n)), batch, device)]
    _sync(device)
    stages["generate"] = time.perf_counter() - t
    forward = 0.0
    for key, ext in exts.items():
        t, c = time.perf_counter(), time.process_time()
        for imgs in batches:
            ext(imgs)
        _sync(device)
        stages[f"forward_{key}"] = time.perf_counter() - t
        stages[f"cpu_forward_{key}"] = time.process_time() - c
        forward += stages[f"forward_{key}"]
    if "clip" in exts:  # CLIP's share of its forward that is the resize to 224
        t = time.perf_counter()
        for imgs in batches:
            exts["clip"].resize(imgs, device)
        _sync(device)
        stages["clip_resize_only"] = time.perf_counter() - t
    return {"stages_s": stages}, forward


def _path_child(spec: str) -> None:
    """Runs in a fresh process: one path, its values and seconds as the last stdout line."""
    args = json.loads(spec)
    fn = {"harness": harness, "naive": naive, "bare": bare}[args["path"]]
    values, seconds = fn(args["n"], args["batch"], args["files"], args["untrained"], args["device"])
    print(json.dumps({"values": values, "seconds": seconds}))


def run_path(path: str, n: int, batch: int, files: dict, untrained: bool, device: str, cache: str) -> dict:
    spec = json.dumps({"path": path, "n": n, "batch": batch, "files": {k: str(v) if v else None for k, v in files.items()},
                       "untrained": untrained, "device": device})
    env = {**os.environ, "ONESTEP_CACHE": cache}
    out = subprocess.run([sys.executable, "-m", "onestep.benchmarks.perf.metrics_one_pass", "--_path-child", spec],
                         stdout=subprocess.PIPE, text=True, env=env, check=True)  # progress lines stay on stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _median(xs):
    s = sorted(xs)
    return s[len(s) // 2] if len(s) % 2 else 0.5 * (s[len(s) // 2 - 1] + s[len(s) // 2])


# stages of a cached harness run that any implementation of the same metrics pays once per
# evaluation, whatever n: loading the networks' weights and one symmetric eigenvalue problem
# per Frechet distance (2048-d for FID)
FIXED_STAGES = ("build_extractors", "fd_linear_algebra")


def _over_bare_report(warm: list[dict], bares: list[dict], cold: dict, n: int) -> dict:
    """Harness (reference cached) over the bare forward passes, per alternated pair; medians,
    the spread, and the breakdown of the median pair."""
    pairs = []
    for w, b in zip(warm, bares):
        bare_s = sum(v for k, v in b["values"]["stages_s"].items() if k.startswith("forward_"))
        st = w["values"]["stages_s"]
        fixed = sum(st.get(k, 0.0) for k in FIXED_STAGES)
        bare_cpu = sum(v for k, v in b["values"]["stages_s"].items() if k.startswith("cpu_forward_"))
        cst = w["values"]["cpu_stages_s"]
        cpu_fixed = sum(cst.get(k, 0.0) for k in FIXED_STAGES)
        pairs.append({"harness_s": w["seconds"], "bare_s": bare_s, "ratio": w["seconds"] / bare_s,
                      "ratio_without_fixed": (w["seconds"] - fixed) / bare_s,
                      "cpu_ratio": w["values"]["cpu_s"] / bare_cpu, "harness_cpu_s": w["values"]["cpu_s"], "bare_cpu_s": bare_cpu,
                      "cpu_ratio_without_fixed": (w["values"]["cpu_s"] - cpu_fixed) / bare_cpu,
                      "forward_ratio": st.get("forward", 0.0) / bare_s,
                      "stages": st, "cpu_stages": cst, "bare_stages": b["values"]["stages_s"]})
    ratios = sorted(p["ratio"] for p in pairs)
    mid = sorted(pairs, key=lambda p: p["ratio"])[len(pairs) // 2]
    med = {k: _median([p[k] for p in pairs]) for k in ("ratio", "ratio_without_fixed", "cpu_ratio",
                                                       "cpu_ratio_without_fixed", "forward_ratio")}
    over, without = med["ratio"], med["ratio_without_fixed"]
    st, bst = mid["stages"], mid["bare_stages"]

    def spread(key):
        xs = sorted(p[key] for p in pairs)
        return f" ({xs[0]:.3f}-{xs[-1]:.3f} over {len(pairs)} alternated pairs)" if len(pairs) > 1 else ""

    print(f"harness (reference cached) over the bare forward passes of the same extractors on the same batches: "
          f"{over:.3f}{spread('ratio')} (target <= {TARGET_OVER_BARE}: {'met' if over <= TARGET_OVER_BARE else 'NOT met'}); "
          f"in CPU time {med['cpu_ratio']:.3f}{spread('cpu_ratio')}")
    print(f"      without the fixed costs every implementation pays once per evaluation ({' + '.join(FIXED_STAGES)}): "
          f"{without:.3f}{spread('ratio_without_fixed')}, in CPU time {med['cpu_ratio_without_fixed']:.3f}"
          f"{spread('cpu_ratio_without_fixed')}; the harness's own forward passes over the bare ones "
          f"{med['forward_ratio']:.3f}{spread('forward_ratio')}")
    print(f"      bare forward {mid['bare_s']:.1f} s = " + ", ".join(f"{k[8:]} {v:.1f} s" for k, v in bst.items() if k.startswith("forward_"))
          + f" (CLIP's resize alone {bst.get('clip_resize_only', 0):.1f} s), CPU "
          + ", ".join(f"{k[12:]} {v:.1f} s" for k, v in bst.items() if k.startswith("cpu_forward_"))
          + f"; bare build {bst['build_extractors']:.1f} s")
    print(f"      harness {mid['harness_s']:.1f} s = " + ", ".join(f"{k} {v:.2f} s" for k, v in st.items()))
    print("      harness CPU s = " + ", ".join(f"{k} {v:.2f}" for k, v in mid["cpu_stages"].items()))
    # in CPU time (a loaded machine's waiting does not inflate it): the n from which the fixed
    # costs fit in the 10%, the per-image rest scaling with n
    fixed = sum(mid["cpu_stages"].get(k, 0.0) for k in FIXED_STAGES)
    rest = mid["harness_cpu_s"] - fixed - mid["bare_cpu_s"]
    room = (TARGET_OVER_BARE - 1) * mid["bare_cpu_s"] - rest
    if room > 0:
        print(f"      in CPU time the whole ratio reaches {TARGET_OVER_BARE} from about n = {fixed / room * n:.0f} "
              f"(the fixed {fixed:.1f} CPU s spread over more images; the per-image rest is {rest:.1f} CPU s at n = {n})")
    cold_st = cold["values"]["stages_s"]
    print(f"      harness with the reference computed {cold['seconds']:.1f} s = " + ", ".join(f"{k} {v:.2f} s" for k, v in cold_st.items()))
    return {"bare_forward_s": mid["bare_s"], "harness_over_bare": over, "harness_over_bare_without_fixed": without,
            "harness_over_bare_cpu": med["cpu_ratio"], "harness_over_bare_cpu_without_fixed": med["cpu_ratio_without_fixed"],
            "harness_forward_over_bare": med["forward_ratio"],
            "harness_over_bare_all": ratios, "harness_stages_s": st, "harness_cpu_stages_s": mid["cpu_stages"],
            "harness_cold_stages_s": cold_st, "bare_stages_s": bst,
            "harness_rest_s": mid["harness_s"] - st.get("forward", 0.0)}


def _memory_child(kind: str, n: int, dim: int) -> None:
    """Runs in a fresh process: peak RSS of one metric on random features, features included."""
    from onestep.benchmarks.metrics.kid import kernel_inception_distance
    from onestep.benchmarks.metrics.prc import precision_recall

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux: torch + Python
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, dim, generator=g), torch.randn(n, dim, generator=g) + 0.1
    t = time.perf_counter()
    if kind == "prc":
        precision_recall(a, b)
    else:
        kernel_inception_distance(a, b, subset_size=min(1000, n))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    features_gb = 2 * n * dim * 4 / 2**30
    print(json.dumps({"peak_gb": peak / 2**20, "baseline_gb": before / 2**20, "features_gb": features_gb,
                      "working_gb": (peak - before) / 2**20 - features_gb, "seconds": time.perf_counter() - t}))


def memory(kind: str, n: int, dim: int) -> dict:
    out = subprocess.run([sys.executable, "-m", "onestep.benchmarks.perf.metrics_one_pass", "--_memory-child", kind,
                          str(n), str(dim)], stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=64, help="generated images = reference images")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--device", default="cpu", help="torch device for both paths, e.g. cuda")
    p.add_argument("--inception"), p.add_argument("--vgg16"), p.add_argument("--clip")
    p.add_argument("--random-weights", action="store_true", help="make random files in the released formats (UNTRAINED)")
    p.add_argument("--memory-n", type=int, default=50_000, help="rows per side for the PR/KID memory check (0: skip)")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--skip-naive", action="store_true", help="only the harness and its floor (the bare forward)")
    p.add_argument("--repeats", type=int, default=1, help="cached-harness / bare pairs, alternated (medians printed)")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.add_argument("--_memory-child", nargs=3, help=argparse.SUPPRESS)
    p.add_argument("--_path-child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._memory_child:
        _memory_child(args._memory_child[0], int(args._memory_child[1]), int(args._memory_child[2]))
        return 0
    if args._path_child:
        _path_child(args._path_child)
        return 0

    report: dict = {}
    ok = True
    if not args.skip_speed:
        from onestep.methods.core.paths import cache_dir

        files = {"inception": args.inception, "vgg16": args.vgg16, "clip": args.clip}
        if args.random_weights:
            files = random_weight_files(cache_dir("random-weights"))
        common = dict(n=args.n, batch=args.batch, files=files, untrained=args.random_weights, device=args.device)
        with tempfile.TemporaryDirectory() as fresh, tempfile.TemporaryDirectory() as unused:
            # the first harness run computes the reference features into an empty cache, the
            # later ones read them; the naive and bare runs get an empty cache they do not use.
            # Cached harness and bare runs alternate (ABAB...), so drifting machine load hits both.
            runs = {"harness_cold": run_path("harness", **common, cache=fresh)}
            if not args.skip_naive:
                runs["naive"] = run_path("naive", **common, cache=unused)
            warm, bares = [], []
            for _ in range(args.repeats):
                warm.append(run_path("harness", **common, cache=fresh))
                bares.append(run_path("bare", **common, cache=unused))
        ours = runs["harness_cold"]["values"]["metrics"]
        tag = "  [UNTRAINED weights: not real measurements]" if ours["untrained"] else ""
        print(f"\nall metrics, n={args.n} generated vs {args.n} reference images, batch {args.batch}, "
              f"{args.device}, {torch.get_num_threads()} thread(s){tag}")
        agree = all(w["values"]["metrics"] == ours for w in warm)  # the cached reference changes no number
        t = {"harness_cold": runs["harness_cold"]["seconds"], "harness_warm": _median([w["seconds"] for w in warm])}
        speed: dict = {"n": args.n, "batch": args.batch, "device": args.device, "repeats": args.repeats, "harness": ours}
        if "naive" in runs:
            theirs = dict(runs["naive"]["values"])
            stages = theirs.pop("stages_s")
            print(f"{'metric':<10} {'harness':>16} {'naive':>16} {'rel. diff':>10}")
            for k in METRIC_KEYS:
                a, b = ours[k], theirs[k]
                rel = abs(a - b) / max(abs(b), 1e-12)
                agree &= rel <= 1e-6 or abs(a - b) <= 1e-9
                print(f"{k:<10} {a:>16.9g} {b:>16.9g} {rel:>10.2e}")
            t["naive"] = runs["naive"]["seconds"]
            ratio, ratio_warm = t["naive"] / t["harness_cold"], t["naive"] / t["harness_warm"]
            print(f"time: naive {t['naive']:.1f} s | harness, reference computed {t['harness_cold']:.1f} s ({ratio:.2f}x) | "
                  f"harness, reference cached {t['harness_warm']:.1f} s ({ratio_warm:.2f}x)")
            print("      naive stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in stages.items()))
            print(f"speed-up target >= {TARGET_SPEEDUP}x over the naive path: "
                  f"{'met' if ratio_warm >= TARGET_SPEEDUP else 'NOT met'} with the reference cached, "
                  f"{'met' if ratio >= TARGET_SPEEDUP else 'not met'} with it computed")
            speed.update(ratio_cold=ratio, ratio_warm=ratio_warm, naive=theirs, naive_stages_s=stages)
        speed.update(_over_bare_report(warm, bares, runs["harness_cold"], args.n))
        print(f"numbers agree (rel. <= 1e-6; the cached reference changes nothing): {'yes' if agree else 'NO'}")
        ok &= agree
        speed.update(seconds=t, agree=agree)
        report["speed"] = speed
    if args.memory_n:
        n = args.memory_n
        print(f"\npeak memory at n={n} random feature rows per side, whole process incl. the features "
              f"(target <= {TARGET_PEAK_GB} GB at 50k)")
        full_gb = n * n * 4 / 2**30
        for kind, dim in (("prc", 4096), ("kid", 2048)):
            m = memory(kind, n, dim)
            print(f"{kind:<4} d={dim}: peak {m['peak_gb']:.2f} GB = Python/torch {m['baseline_gb']:.2f} + features "
                  f"{m['features_gb']:.2f} + metric working memory {m['working_gb']:.2f}, in {m['seconds']:.1f} s"
                  + (f"   (torch-fidelity full mode: {full_gb:.2f} GB per n x n distance matrix, 3 of them)"
                     if kind == "prc" else ""))
            report[f"memory_{kind}"] = {"n": n, "dim": dim, **m}
            if n >= 50_000:
                ok &= m["peak_gb"] <= TARGET_PEAK_GB
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
