"""Forward and forward+backward time of the zoo's networks: fast path vs reference (vs EDM's code).

    python -m onestep.benchmarks.perf.network_speed [--preset edm-cifar10-32x32-uncond-vp] \
        [--batch 8] [--repeats 5] [--device cpu] [--threads 1] [--compile] [--json out.json]

Variants, measured side by side in one process, interleaved repeat by repeat (medians printed):
  reference     our default path (EDM's arithmetic)
  fast          zoo/fast.py: scaled_dot_product_attention + box-filter resampling as pooling
  fast+nhwc     the same with channels_last
  fast+nhwc+compile  fast+nhwc under torch.compile (only with --compile; the compile time is
                printed apart, not counted in the times)
  edm           NVlabs/edm's own training/networks.py with our weights, when $ONESTEP_EDM_SOURCE
                points at a checkout of it (the speed base then; else the reference path is)
Each variant's forward output and input gradient are compared with the reference path's
(max |x - ref| / max |ref|; the fast path must stay within 1e-5). Target: >= 1.2x faster than
the base at batch 8. Random weights, every kernel N(0, 1/fan_in) (fill_random_weights: EDM's
zero-initialised layers would hide differences); speed does not depend on the values.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import torch

TARGET_SPEEDUP = 1.2
TOLERANCE = 1e-5


def edm_network(preset: str, state_dict: dict, source: str, **overrides) -> torch.nn.Module:
    """EDM's own network class for `preset`, loaded with our weights (same keys)."""
    from onestep.methods.zoo.presets import resolve_preset

    sys.path.insert(0, source)
    from training import networks  # noqa: E402 (NVlabs/edm checkout)

    precond, pkw, model_type, mkw = resolve_preset(preset, **overrides)
    net = getattr(networks, precond)(**pkw, model_type=model_type, **mkw)
    net.load_state_dict(state_dict)
    return net


def fill_random_weights(net: torch.nn.Module, seed: int = 3) -> torch.nn.Module:
    """Every weight matrix/kernel drawn N(0, 1/fan_in), in place. EDM's init zeroes conv1 and
    the attention projections and scales the output layer down, so at init the residual and
    attention branches barely reach the output (doubling an attention projection moves it by
    1e-9): an agreement check on such a network passes whatever those paths compute."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=g).to(p) / p[0].numel() ** 0.5)
    return net


CONV_OPS = ("aten::mkldnn_convolution", "aten::convolution_backward", "aten::_slow_conv2d_forward",
            "aten::_slow_conv2d_backward", "aten::cudnn_convolution", "aten::_convolution_depthwise2d",
            "aten::thnn_conv2d", "aten::slow_conv_transpose2d", "aten::mkldnn_convolution_backward")


def profile_split(net, fn) -> dict:
    """One call of fn(net) under torch.profiler: total self CPU time, that of the convolution
    kernels (forward and backward), and the five most expensive ops."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn(net)
    self_s = {e.key: e.self_cpu_time_total / 1e6 for e in prof.key_averages()}
    total = sum(self_s.values())
    conv = sum(v for k, v in self_s.items() if k in CONV_OPS)
    top = sorted(self_s.items(), key=lambda kv: -kv[1])[:5]
    return {"total_s": total, "conv_s": conv, "top": top}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30))


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median(xs):
    s = sorted(xs)
    return s[len(s) // 2] if len(s) % 2 else 0.5 * (s[len(s) // 2 - 1] + s[len(s) // 2])


def measure(preset: str, batch: int, repeats: int, device: torch.device, compile: bool = False,
            edm_source: str | None = None, log=print, network_kwargs: dict | None = None,
            profile: bool = False) -> dict:
    from onestep.methods.zoo.fast import enable_fast_path
    from onestep.methods.zoo.presets import build_network

    torch.manual_seed(0)
    ref = fill_random_weights(build_network(preset, **(network_kwargs or {})).eval()).to(device)
    nets = {"reference": ref,
            "fast": enable_fast_path(copy.deepcopy(ref)),
            "fast+nhwc": enable_fast_path(copy.deepcopy(ref), channels_last=True)}
    if compile:
        nets["fast+nhwc+compile"] = enable_fast_path(copy.deepcopy(ref), channels_last=True, compile=True)
    if edm_source:
        nets["edm"] = edm_network(preset, ref.state_dict(), edm_source, **(network_kwargs or {})).eval().to(device)
    g = torch.Generator().manual_seed(1)
    res, ch, nl = ref.img_resolution, ref.img_channels, ref.label_dim
    sigma = torch.exp(torch.randn(batch, generator=g) * 1.2 - 1.2).to(device)  # EDM's training noise levels
    x = (torch.randn(batch, ch, res, res, generator=g).to(device) * sigma.view(-1, 1, 1, 1))
    labels = torch.nn.functional.one_hot(torch.arange(batch) % nl, nl).float().to(device) if nl else None

    def fwd(net):
        with torch.no_grad():
            return net(x, sigma, labels)

    def fwd_bwd(net):
        xi = x.clone().requires_grad_(True)
        net(xi, sigma, labels).square().mean().backward()
        for p in net.parameters():
            p.grad = None
        return xi.grad

    out_ref, grad_ref = fwd(ref), fwd_bwd(ref)
    rows = {}
    for name, net in nets.items():  # agreement, and the warm-up (compilation) of every variant
        t = time.perf_counter()
        rows[name] = {"forward_rel_diff": _rel(fwd(net), out_ref), "input_grad_rel_diff": _rel(fwd_bwd(net), grad_ref),
                      "forward_s": [], "forward_backward_s": [], "first_calls_s": time.perf_counter() - t}
    for r in rows.values():
        r.update(forward_cpu_s=[], forward_backward_cpu_s=[])
    for _ in range(repeats):  # interleaved: the machine's load drifts over all variants alike
        for name, net in nets.items():
            for key, fn in (("forward", fwd), ("forward_backward", fwd_bwd)):
                _sync(device)
                t, c = time.perf_counter(), time.process_time()
                fn(net)
                _sync(device)
                rows[name][key + "_s"].append(time.perf_counter() - t)
                rows[name][key + "_cpu_s"].append(time.process_time() - c)
    base = "edm" if edm_source else "reference"
    for name, r in rows.items():
        for key in ("forward", "forward_backward"):
            for clock in ("_s", "_cpu_s"):
                r[key + clock.replace("_s", "_median_s")] = _median(r[key + clock])
                # paired: base time over this variant's time in the same round, then the median
                paired = [b / v for b, v in zip(rows[base][key + clock], r[key + clock])]
                r[key + clock.replace("_s", "_speedup_vs_base")] = _median(paired)
                r[key + clock.replace("_s", "_speedup_spread")] = [min(paired), max(paired)]
    log(f"{preset}, batch {batch}, {device}, {torch.get_num_threads()} thread(s), {repeats} interleaved repeats; "
        f"base = {base}")
    log("speed-ups are medians over rounds of base time / variant time in the same round; 'cpu' counts the "
        "process's CPU time, which a loaded machine's waiting does not inflate")
    log(f"{'variant':<18} {'fwd s':>7} {'x base':>6} {'cpu x':>6} {'fwd+bwd s':>9} {'x base':>6} {'cpu x':>6} "
        f"{'cpu x (min-max)':>15} {'out diff':>9} {'grad diff':>9}")
    for name, r in rows.items():
        lo, hi = r["forward_backward_cpu_speedup_spread"]
        log(f"{name:<18} {r['forward_median_s']:>7.3f} {r['forward_speedup_vs_base']:>6.2f} "
            f"{r['forward_cpu_speedup_vs_base']:>6.2f} {r['forward_backward_median_s']:>9.3f} "
            f"{r['forward_backward_speedup_vs_base']:>6.2f} {r['forward_backward_cpu_speedup_vs_base']:>6.2f} "
            f"{lo:>7.2f}-{hi:<7.2f} {r['forward_rel_diff']:>9.2e} {r['input_grad_rel_diff']:>9.2e}")
    for name, r in rows.items():
        if "compile" in name:  # the first forward and forward+backward, less their steady-state time
            r["compile_s"] = r["first_calls_s"] - r["forward_median_s"] - r["forward_backward_median_s"]
            log(f"{name}: compiling took {r['compile_s']:.0f} s (first forward and backward; not in the times above)")
    if profile:
        rows_prof = {name: profile_split(net, fwd_bwd) for name, net in nets.items()}
        log("profile of one forward+backward (torch.profiler self CPU time): convolutions vs everything else")
        for name, pr in rows_prof.items():
            top = ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in pr["top"])
            log(f"  {name:<18} total {pr['total_s']:.3f} s, convolutions {pr['conv_s']:.3f} s "
                f"({100 * pr['conv_s'] / pr['total_s']:.0f}%), rest {pr['total_s'] - pr['conv_s']:.3f} s; top: {top}")
            rows[name]["profile"] = pr
        bp = rows_prof[base]
        for name, pr in rows_prof.items():
            if name.startswith("fast"):  # the bound if every op but the convolutions took no time
                log(f"  ceiling of {name}: {base} total / its convolutions alone = {bp['total_s'] / pr['conv_s']:.2f}x")
    fast_ok = all(r["forward_rel_diff"] <= TOLERANCE and r["input_grad_rel_diff"] <= TOLERANCE
                  for n, r in rows.items() if n.startswith("fast"))
    best = max((n for n in rows if n.startswith("fast")), key=lambda n: rows[n]["forward_backward_cpu_speedup_vs_base"])
    rb = rows[best]
    log(f"fast path within {TOLERANCE:g} of the reference: {'yes' if fast_ok else 'NO'}; best {best}: "
        f"{rb['forward_speedup_vs_base']:.2f}x forward, {rb['forward_backward_speedup_vs_base']:.2f}x forward+backward "
        f"(CPU time: {rb['forward_cpu_speedup_vs_base']:.2f}x, {rb['forward_backward_cpu_speedup_vs_base']:.2f}x) "
        f"vs {base} (target >= {TARGET_SPEEDUP}x)" + (f"; compile {rb['compile_s']:.0f} s once" if "compile_s" in rb else ""))
    return {"preset": preset, "batch": batch, "device": str(device), "threads": torch.get_num_threads(),
            "repeats": repeats, "base": base, "within_tolerance": fast_ok, "best": best, "rows": rows}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="edm-cifar10-32x32-uncond-vp")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--compile", action="store_true", help="also time the fast path under torch.compile")
    p.add_argument("--edm-source", default=os.environ.get("ONESTEP_EDM_SOURCE"),
                   help="NVlabs/edm checkout (default $ONESTEP_EDM_SOURCE); the speed base when given")
    p.add_argument("--profile", action="store_true",
                   help="also profile one forward+backward per variant: convolution time vs the rest, and the ceiling")
    p.add_argument("--json")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.edm_source and not (Path(args.edm_source) / "training" / "networks.py").is_file():
        p.error(f"--edm-source {args.edm_source} is not an NVlabs/edm checkout (no training/networks.py); "
                "clone https://github.com/NVlabs/edm there or unset ONESTEP_EDM_SOURCE")
    report = measure(args.preset, args.batch, args.repeats, torch.device(args.device), args.compile, args.edm_source,
                     profile=args.profile)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0 if report["within_tolerance"] else 1


if __name__ == "__main__":
    sys.exit(main())
