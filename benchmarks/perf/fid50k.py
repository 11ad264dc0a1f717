"""FID-50k of a CIFAR-sized one-step generator, end to end, timed (target: under 60 s on one GPU).

    python -m onestep.benchmarks.perf.fid50k --device cuda [--n 50000] [--batch 500] \
        [--inception FILE | --random-weights] [--reference STATS.npz | --reference-n 1797]

The generator is EDM's CIFAR-10 DDPM++ (55.7M parameters) in GDD's OneStepPrecond at
sigma_max = 80 with fresh random weights: one network call per image, as every one-step student.
Timed: `evaluate(G, reference, ["fid"], num_samples=n)`: latents per seed, generation, EDM's uint8
quantization, Inception (torch-fidelity's inception-v3-compat) and the float64 statistics and
Frechet distance - everything a real FID-50k does once the reference statistics exist.
Not timed: building the networks and the reference statistics, which are computed once per
dataset and cached (or imported from EDM's fid-refs .npz with --reference).

Without --reference, the reference statistics are those of the first --reference-n digits images
(32x32 RGB) under the same Inception file. With --random-weights every number is labelled
UNTRAINED: the time is real, the FID value is not a measurement of anything.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

TARGET_SECONDS = 60.0
PRESET = "edm-cifar10-32x32-uncond-vp"


def build_generator(device: str, small: bool = False) -> torch.nn.Module:
    from onestep.methods.solvers.generator import OneStepGenerator
    from onestep.methods.zoo.presets import build_network

    torch.manual_seed(0)
    net = build_network(PRESET, precond="OneStepPrecond", sigma_max=80.0,
                        **({"model_channels": 16, "num_blocks": 1} if small else {}))
    return OneStepGenerator(net).eval().requires_grad_(False).to(device)


def build_reference(args, extractor):
    from onestep.benchmarks.datasets import load_digits
    from onestep.benchmarks.metrics.reference import compute_reference, load_reference_file

    if args.reference:
        return load_reference_file(args.reference)
    digits = load_digits(32, 3, "all")
    n = min(args.reference_n or len(digits), len(digits))
    return compute_reference(digits.subset(torch.arange(n), f"digits-32-first{n}"), extractor, ["pool"],
                             keep_features=False, batch_size=args.batch)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--n", type=int, default=50_000, help="generated images (seeds 0..n-1)")
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--inception", help="torch-fidelity's Inception weights file (else the usual search)")
    p.add_argument("--random-weights", action="store_true", help="a random file in the released format (UNTRAINED)")
    p.add_argument("--reference", help="reference statistics (.npz: ours or EDM's fid-refs)")
    p.add_argument("--reference-n", type=int, help="digits images for the reference without --reference (default: all 1,797)")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.add_argument("--small-network", action="store_true", help="a narrow DDPM++ (gpu_check --tiny: the code path only)")
    args = p.parse_args(argv)

    from onestep.benchmarks.metrics.evaluate import evaluate
    from onestep.benchmarks.metrics.extractors.inception import InceptionExtractor

    weights = args.inception
    if args.random_weights:
        from onestep.benchmarks.perf.metrics_one_pass import random_weight_files
        from onestep.methods.core.paths import cache_dir

        weights = random_weight_files(cache_dir("random-weights"))["inception"]
    inception = InceptionExtractor(weights, untrained=args.random_weights, device=args.device)
    G = build_generator(args.device, args.small_network)
    reference = build_reference(args, inception)

    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    result = evaluate(G, reference, ["fid"], num_samples=args.n, batch_size=args.batch, device=args.device,
                      extractors={"inception": inception}, progress=True)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t

    record = result["FID"]
    device_name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu"
    print(f"\n{record.format()}")
    print(f"FID-{args.n} of a {sum(p.numel() for p in G.parameters()) / 1e6:.1f}M-parameter one-step generator on "
          f"{device_name}: {seconds:.1f} s end to end ({args.n / seconds:.3g} images/s, batch {args.batch})")
    met = seconds <= TARGET_SECONDS
    if args.n >= 50_000:
        print(f"target <= {TARGET_SECONDS:.0f} s: {'met' if met else 'NOT met'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"n": args.n, "batch": args.batch, "device": device_name,
                                               "seconds": seconds, "images_per_s": args.n / seconds,
                                               "fid": record.raw, "untrained": record.untrained}, indent=2))
    return 0 if met or args.n < 50_000 else 1


if __name__ == "__main__":
    sys.exit(main())
