"""`onestep eval`: metrics of a generator or an image set against a reference."""
from __future__ import annotations

import argparse
import sys

NAME = "eval"
HELP = "evaluate a generator or an image set (FID, IS, KID, PR, CLIP-FID, FD-DINOv2, digits metrics)"
DESCRIPTION = """\
Evaluate --network (a generator/denoiser checkpoint or preset; images are generated once per
seed, streamed to every feature extractor, never written to disk) or --images (a folder, EDM
zip, .npz or dataset name) against --ref: a dataset (statistics cached), a statistics .npz (ours,
EDM's fid-refs, the ADM reference batch), or --ref-network (another generator: rel-FID).

Metrics: fid, isc, kid, prc (VGG16), clip_fid, fd_dinov2, and the digits feature network's
fd_digits, is_digits, kid_digits, prc_digits. Protocols: single (50k, seeds 0-49999), edm (min
of 3 disjoint 50k runs), sida (mean +- std of 10 runs).

examples:
  onestep eval --network runs/gdd/generator.json --ref digits-8 --metrics fd_digits,is_digits \\
      --num 2000 --data-floor
  onestep eval --network edm-cifar10-32x32-cond-vp --ref cifar10-32x32.npz --metrics fid --protocol edm
  onestep eval --images samples.npz --ref digits-8-test --metrics fd_digits,prc_digits --json out.json
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--network", metavar="PATH_OR_PRESET", help="generator or denoiser checkpoint / preset")
    src.add_argument("--images", metavar="PATH_OR_NAME", help="image set: folder, EDM zip, .npz, dataset name")
    ref = p.add_mutually_exclusive_group()
    ref.add_argument("--ref", metavar="PATH_OR_NAME", help="reference dataset or statistics .npz")
    ref.add_argument("--ref-network", metavar="PATH_OR_PRESET", help="reference generator (rel-FID)")
    p.add_argument("--metrics", default="fd_digits", help="comma-separated metrics (default fd_digits)")
    p.add_argument("--num", type=int, default=None, help="samples (generator default 50000; image set: all)")
    p.add_argument("--seeds", default=None, help="explicit seeds, e.g. 0-49999 (overrides --num)")
    p.add_argument("--protocol", default=None, help="single, edm (min of 3) or sida (mean +- std of 10)")
    p.add_argument("--solver", default=None, help="solver for a denoiser checkpoint (default heun)")
    p.add_argument("--steps", type=int, default=None, help="solver steps for a denoiser checkpoint")
    p.add_argument("--class", dest="class_idx", type=int, default=None, metavar="N", help="generate class N only")
    p.add_argument("--data-floor", action="store_true", help="also report real-vs-real at the same n")
    p.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--weights", action="append", default=[], metavar="EXTRACTOR=PATH",
                   help="weights file of a feature extractor (inception, clip, vgg16, dinov2, digits)")
    p.add_argument("--kid-subset-size", type=int, default=1000, help="KID subset size (default 1000)")
    p.add_argument("--kid-subsets", type=int, default=100, help="KID subsets (default 100)")
    p.add_argument("--json", default=None, metavar="FILE", help="write the records as JSON")
    p.add_argument("--csv", default=None, metavar="FILE", help="write the records as CSV")
    p.add_argument("--quiet", action="store_true", help="no progress line")


def run(args: argparse.Namespace) -> int:
    from onestep.benchmarks.metrics.evaluate import MetricOptions, evaluate, evaluate_repeated
    from onestep.benchmarks.metrics.protocols import get_protocol
    from onestep.methods.core.atomic import atomic_write_text

    from onestep.benchmarks.metrics.extractors.registry import EXTRACTORS
    from onestep.benchmarks.runner import resolve_device
    from onestep.methods.core.config import ConfigError, suggest

    from ._checks import check_output_file, check_positive

    # Everything that can be refused is refused here, before a sample is generated.
    device = str(resolve_device(args.device))
    check_positive(args.num, "--num", " of samples (the default without it: 50,000 for a generator)")
    check_positive(args.batch, "--batch", " of images per batch")
    check_positive(args.kid_subset_size, "--kid-subset-size")
    check_positive(args.kid_subsets, "--kid-subsets")
    check_output_file(args.json, "--json")
    check_output_file(args.csv, "--csv")
    weights = {}
    for item in args.weights:
        key, sep, path = item.partition("=")
        if not sep:
            raise ConfigError(f"--weights expects EXTRACTOR=PATH, got '{item}'")
        if key not in EXTRACTORS:
            raise ConfigError(f"--weights {item}: unknown feature extractor '{key}'{suggest(key, EXTRACTORS)}; "
                              f"known: {', '.join(sorted(EXTRACTORS))}")
        weights[key] = path
    from .generate import resolve_network_name

    try:
        if args.network:
            from onestep.methods.solvers import load_generator

            args.network = resolve_network_name(args.network)
            source = load_generator(args.network, solver=args.solver, steps=args.steps, device=device).eval()
        else:
            source = args.images
        reference = args.ref
        if args.ref_network:
            from onestep.methods.solvers import load_generator

            reference = load_generator(args.ref_network, solver=args.solver, steps=args.steps, device=device).eval()
        kwargs = dict(batch_size=args.batch, device=device, class_idx=args.class_idx, data_floor=args.data_floor,
                      weights=weights, progress=not args.quiet,
                      options=MetricOptions(kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size))
        if args.protocol:
            if not args.network:
                raise ValueError("--protocol repeats generation over disjoint seeds: it needs --network")
            proto = get_protocol(args.protocol)
            ranges = proto.seed_ranges(args.num)
            result = (evaluate(source, reference, args.metrics, seeds=ranges[0], **kwargs) if proto.repeats == 1 else
                      evaluate_repeated(source, reference, args.metrics, seed_ranges=ranges, aggregate=proto.aggregate,
                                        **kwargs))
        else:
            result = evaluate(source, reference, args.metrics, num_samples=args.num, seeds=args.seeds, **kwargs)
    except (ValueError, TypeError, FileNotFoundError, FloatingPointError, ImportError, KeyError) as e:
        print(f"onestep eval: error: {e}", file=sys.stderr)
        return 2
    print(result.table())
    if args.json:
        atomic_write_text(args.json, result.to_json() + "\n")
    if args.csv:
        atomic_write_text(args.csv, result.to_csv())
    return 0
