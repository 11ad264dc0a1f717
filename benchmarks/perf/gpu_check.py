"""Every GPU measurement in one command (under 8 minutes on one GPU), one JSON and a table.

    python -m onestep.benchmarks.perf.gpu_check --out DIR [--tiny] [--device cuda] [--parts a,b]

Writes DIR/gpu_check.json (rewritten atomically after each part, so a run cut short keeps what
it measured) with these top-level sections, then prints a table:
  parity      fp32 CUDA vs CPU outputs of DDPM++, NCSN++ and ADM (max |a-b| / max |b|), strict
              fp32 (TF32 off) and PyTorch's default (cuDNN TF32 on), and bf16 autocast vs fp32.
  throughput  training images/s per GPU for EVERY registered method plugin
              (onestep.methods.plugin.available_methods(), so plugins added later are covered),
              at its CIFAR-10 paper preset (56M DDPM++/NCSN++ teacher, random weights: timing
              only) and the paper's per-GPU batch (preset batch / the paper's GPU count), next
              to the paper's per-GPU figure where one exists. A method that cannot be built at
              that scale gets a message, not a crash.
  fid50k      FID-50k end to end of a CIFAR-sized one-step generator (perf/fid50k.py; target < 60 s).
  one_pass    the one-pass harness vs the naive library path at n=5,000 (perf/metrics_one_pass.py;
              target >= 3x), with the harness time over the bare extractor forward time.
  sampling    one-step and few-step images/s vs the teacher's Heun-35 (sampling_measure()).
Each part has a time budget (BUDGET_S); a part, or a method inside `throughput`, that would
start after its budget is spent is skipped with a message. Random weights everywhere: every
number is a timing or an agreement, never a quality figure (FID values are labelled UNTRAINED).

--tiny shrinks every size (small networks, a few images, the smoke presets) so the whole script
runs on a CPU in seconds: tests/test_perf_gpu_check.py runs it, so the command never rots.
docs/GPU_CHECK.md holds the exact command for a lent machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import torch

SECTIONS = ("parity", "throughput", "fid50k", "one_pass", "sampling")
BUDGET_S = {"parity": 40, "throughput": 170, "fid50k": 80, "one_pass": 150, "sampling": 40}  # 480 s = 8 min
PARITY_NETWORKS = {"DDPM++": "edm-cifar10-32x32-uncond-vp", "NCSN++": "edm-cifar10-32x32-uncond-ve",
                   "ADM": "edm-imagenet-64x64-cond-adm"}
TINY_NET = {"model_channels": 16, "num_blocks": 1}
TEACHER_CIFAR = "edm-cifar10-32x32-uncond-vp"
# Paper training cost per GPU, where a paper states one. GPUs: the paper's count, which turns a
# preset's global batch into the per-GPU batch (8 where a method is not listed: every paper here).
PAPER = {
    "gdd": {"gpus": 8, "img_s_per_gpu": 5e6 / (6 * 3600) / 8, "hardware": "A100",
            "source": "paper 000 abstract: 5 Mimg in 6 h on 8 A100"},
    "d2o": {"gpus": 8, "img_s_per_gpu": None, "hardware": "A100", "source": "paper 001: 8 A100, no time stated"},
    "sid": {"gpus": 8, "img_s_per_gpu": 1000 / 3.3 / 8, "hardware": "V100",
            "source": "paper 002 Table 8 (SiD, CIFAR-10): 3.3 s per 1k images on 8 V100, 13.0 GB per GPU"},
    "sida": {"gpus": 8, "img_s_per_gpu": 1000 / 3.6 / 8, "hardware": "V100",
             "source": "paper 002 Table 8 (SiDA, CIFAR-10): 3.6 s per 1k images on 8 V100, 13.0 GB per GPU"},
}
# Methods without a CIFAR-10 paper preset, measured at CIFAR scale from another preset.
FALLBACK = {"edm": ("smoke", {"method.network": TEACHER_CIFAR, "method.network_overrides": {}}, 512,
                    "EDM trains CIFAR-10 DDPM++ with batch 512 on 8 GPUs (EDM README)")}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], Any], device: torch.device, repeats: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    _sync(device)
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        _sync(device)
        out.append(time.perf_counter() - t)
    return out


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    return s[len(s) // 2] if len(s) % 2 else 0.5 * (s[len(s) // 2 - 1] + s[len(s) // 2])


class Budget:
    def __init__(self, seconds: float):
        self.seconds, self.start = seconds, time.perf_counter()

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.start)

    def skip_message(self, what: str) -> str:
        return f"skipped: the {self.seconds:.0f} s budget was spent before {what}"


# --- parity -------------------------------------------------------------------------------
def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().cpu(), b.double().cpu()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def parity(device: torch.device, tiny: bool, budget: Budget) -> dict:
    from onestep.methods.zoo.presets import build_network

    out: dict = {"metric": "max |x - ref| / max |ref| over the batch; ref = CPU fp32 (eval mode, fixed inputs)"}
    for label, preset in PARITY_NETWORKS.items():
        if budget.left() <= 0:
            out[label] = {"message": budget.skip_message(label)}
            continue
        torch.manual_seed(0)
        net = build_network(preset, use_fp16=False, **(TINY_NET if tiny else {})).eval().requires_grad_(False)
        res, ch, nl = net.img_resolution, net.img_channels, net.label_dim
        g = torch.Generator().manual_seed(1)
        b = 4
        sigma = torch.tensor([0.002, 0.5, 2.0, 80.0])[:b]
        x = torch.randn(b, ch, res, res, generator=g) * sigma.view(-1, 1, 1, 1)
        labels = torch.nn.functional.one_hot(torch.arange(b) % nl, nl).float() if nl else None
        with torch.no_grad():
            ref = net(x, sigma, labels)
            row = {"preset": preset, "params_M": round(sum(p.numel() for p in net.parameters()) / 1e6, 2)}
            net.to(device)
            xd, sd, ld = x.to(device), sigma.to(device), None if labels is None else labels.to(device)
            if device.type == "cuda":
                flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
                torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
                row["device_fp32_strict"] = _rel(net(xd, sd, ld), ref)
                torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags
                row["device_fp32_default_tf32"] = _rel(net(xd, sd, ld), ref)
            else:
                row["device_fp32_strict"] = _rel(net(xd, sd, ld), ref)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                row["device_bf16_autocast"] = _rel(net(xd, sd, ld).float(), ref)
        out[label] = row
        del net
    return out


# --- throughput ---------------------------------------------------------------------------
def _cifar_preset(cls) -> str | None:
    names = [p for p in cls.presets if p.startswith("cifar10")]
    for want in ("cifar10-uncond", "cifar10"):
        if want in names:
            return want
    return next((p for p in names if "uncond" in p), names[0] if names else None)


def _offline_overrides(config_cls, prefix: str = "method") -> dict:
    """Dotted overrides that make a method's Config build without downloads: every field named
    `random_weights` -> True, every `lpips_backbone` -> 'random' (nested dataclasses walked)."""
    out = {}
    for f in dataclasses.fields(config_cls):
        key = f"{prefix}.{f.name}"
        if f.name == "random_weights":
            out[key] = True
        elif f.name == "lpips_backbone":
            out[key] = "random"
        else:
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if dataclasses.is_dataclass(default) and not isinstance(default, type):
                out.update(_offline_overrides(type(default), key))
    return out


def _plan(name: str, cls, tiny: bool) -> dict:
    """preset, overrides, per-GPU batch and where the batch comes from, or a message."""
    from onestep.benchmarks.training.build import resolve_config

    paper = PAPER.get(name, {})
    gpus = paper.get("gpus", 8)
    if tiny:
        preset = "smoke" if "smoke" in cls.presets else next(iter(cls.presets), None)
        if preset is None:
            return {"message": f"method '{name}' has no presets"}
        return {"preset": preset, "overrides": {}, "batch": 8, "batch_source": "--tiny: batch 8 of the smoke preset"}
    preset, extra = _cifar_preset(cls), {}
    if preset is not None:
        total = int(resolve_config(name, preset).loop.get("batch_size", 0) or 0)
        source = f"preset '{preset}': batch {total} on {gpus} GPUs"
    elif name in FALLBACK:
        preset, extra, total, source = FALLBACK[name]
        source = f"no CIFAR-10 preset: '{preset}' preset on {TEACHER_CIFAR}; {source}"
    else:
        return {"message": f"method '{name}' has no CIFAR-10 paper preset (presets: {', '.join(cls.presets)}); "
                           "add one (a preset named cifar10-*) to have it measured"}
    if total <= 0 or total % gpus:
        return {"message": f"preset '{preset}' of '{name}': global batch {total} does not split over {gpus} GPUs"}
    return {"preset": preset, "overrides": extra, "batch": total // gpus, "batch_source": source}


def _method_throughput(name: str, cls, plan: dict, device: torch.device, tiny: bool, steps: int) -> dict:
    from onestep.benchmarks.training import LoopContext, instantiate_method
    from onestep.benchmarks.training.build import resolve_config
    from onestep.methods.plugin import Batch, DataSpec
    from onestep.methods.zoo.presets import build_network

    batch = plan["batch"]
    over = {**_offline_overrides(cls.Config), **plan["overrides"], "loop.batch_size": batch}
    resolved = resolve_config(name, plan["preset"], over)
    teacher = None
    spec_net = resolved.method.get("teacher") or resolved.method.get("network") or TEACHER_CIFAR
    if cls.needs_teacher:
        teacher = build_network(spec_net).eval().requires_grad_(False).to(device)  # random weights: timing only
        probe = teacher
    else:
        probe = build_network(spec_net)
    label_dim = int(probe.label_dim or 0)
    spec = DataSpec(int(probe.img_resolution), int(probe.img_channels), label_dim)
    method, loop = instantiate_method(name, plan["preset"], over, teacher=teacher, data_spec=spec, device=device)
    for m in method.modules().values():
        m.to(device).train()  # as the loop runs them
    precision = loop.precision if device.type == "cuda" else "fp32"
    g = torch.Generator().manual_seed(0)
    images = (torch.rand(batch, spec.channels, spec.resolution, spec.resolution, generator=g) * 2 - 1).to(device)
    labels = (torch.nn.functional.one_hot(torch.arange(batch) % label_dim, label_dim).float().to(device)
              if label_dim else None)
    ctx = LoopContext(loop.seed, batch, device, precision, loop.grad_clip, name)
    ctx.begin_step(0, 0)
    method.prepare(ctx)
    counter = [0]

    def one_step():
        counter[0] += 1
        ctx.begin_step(counter[0], counter[0] * batch)
        method.step(Batch(images, labels), ctx)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = _timed(one_step, device, repeats=steps, warmup=2 if not tiny else 1)
    step_s = _median(times)
    row = {"preset": plan["preset"], "batch_per_gpu": batch, "batch_source": plan["batch_source"],
           "network": spec_net, "generator_params_M": round(sum(p.numel() for p in method.generator.parameters()) / 1e6, 1),
           "precision": precision, "steps_timed": steps, "step_s_median": round(step_s, 4),
           "images_per_s": round(batch / step_s, 2), "weights": "random (timing only)"}
    if device.type == "cuda":
        row["peak_memory_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    paper = PAPER.get(name)
    if paper:
        row["paper"] = {k: (round(v, 1) if isinstance(v, float) else v) for k, v in paper.items()}
        if paper.get("img_s_per_gpu"):
            row["ours_over_paper"] = round(row["images_per_s"] / paper["img_s_per_gpu"], 2)
    return row


def throughput(device: torch.device, tiny: bool, budget: Budget) -> dict:
    from onestep.methods.plugin import available_methods

    methods = available_methods()
    out: dict = {"methods": sorted(methods), "unit": "training images/s per GPU (one method.step = one batch)"}
    names = sorted(methods)
    for i, name in enumerate(names):
        cls = methods[name]
        if budget.left() <= 0:
            out[name] = {"message": budget.skip_message(f"method '{name}'")}
            continue
        plan = _plan(name, cls, tiny)
        if "message" in plan:
            out[name] = plan
            continue
        try:
            out[name] = _method_throughput(name, cls, plan, device, tiny, steps=2 if tiny else 5)
        except Exception as e:  # a plugin that cannot be built at this scale: say why, go on
            out[name] = {"preset": plan["preset"], "batch_per_gpu": plan["batch"],
                         "message": f"could not be measured: {type(e).__name__}: {e}",
                         "traceback_tail": traceback.format_exc().strip().splitlines()[-3:]}
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return out


# --- fid50k and one_pass: the existing scripts ---------------------------------------------
def fid50k(device: torch.device, tiny: bool, budget: Budget) -> dict:
    from onestep.benchmarks.perf import fid50k as script

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fid.json"
        n, batch = (12, 6) if tiny else (50_000, 1000)
        args = ["--device", str(device), "--n", str(n), "--batch", str(batch), "--random-weights", "--json", str(path)]
        if tiny:
            args += ["--reference-n", "24", "--small-network"]
        script.main(args)
        out = json.loads(path.read_text())
    out["target_s"] = script.TARGET_SECONDS
    out["met"] = out["seconds"] <= script.TARGET_SECONDS if n >= 50_000 else None
    return out


def one_pass(device: torch.device, tiny: bool, budget: Budget) -> dict:
    missing = [m for m in ("torch_fidelity", "cleanfid", "open_clip") if not _importable(m)]
    if missing:
        return {"message": f"skipped: the naive path needs {', '.join(missing)} (not installed here); "
                           "docs/GPU_CHECK.md carries them as wheels"}
    from onestep.benchmarks.perf import metrics_one_pass as script

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "one_pass.json"
        n, batch = (12, 12) if tiny else (5000, 250)
        script.main(["--n", str(n), "--batch", str(batch), "--device", str(device), "--random-weights",
                     "--memory-n", "0", "--json", str(path)])
        out = json.loads(path.read_text()).get("speed", {})
    out["target_ratio"] = 3.0
    return out


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


# --- sampling -----------------------------------------------------------------------------
def sampling_measure(device: torch.device, tiny: bool, budget: Budget) -> dict:
    """One-step and few-step sampling images/s against the teacher's Heun-35.

    The one function to switch at merge: when onestep.benchmarks.perf.sampling_speed (engineer
    sfd: SFD's samplers) is importable, its `measure(net, batch, device, repeats, nfes)` is used
    on the same teacher network; otherwise the same quantity is measured here (one-step
    generator and Euler few-step solvers of the zoo's DDPM++)."""
    import importlib

    try:
        sampling_speed = importlib.import_module("onestep.benchmarks.perf.sampling_speed")
    except ImportError:
        sampling_speed = None
    if sampling_speed is not None and hasattr(sampling_speed, "measure"):
        from onestep.methods.zoo.presets import build_network

        torch.manual_seed(0)
        net = build_network(TEACHER_CIFAR, **(TINY_NET if tiny else {}))
        batch = 4 if tiny else 500
        res = sampling_speed.measure(net, batch, device, 1 if tiny else 3, nfes=(1, 2, 4))
        rows = {(f"teacher heun 18 ({r['nfe']} NFE)" if k == "heun-35" else f"{k} ({r['nfe']} NFE)"):
                {"nfe": r["nfe"], "seconds": round(r["seconds"], 4), "images_per_s": round(r["images_per_s"], 1),
                 "over_heun35": round(r["speedup"], 1)} for k, r in res["rows"].items()}
        return {"source": "onestep.benchmarks.perf.sampling_speed.measure", "network": TEACHER_CIFAR,
                "batch": batch, "precision": "fp32", "rows": rows}
    return {"source": "gpu_check._own_sampling", **_own_sampling(device, tiny, budget)}


def _own_sampling(device: torch.device, tiny: bool, budget: Budget) -> dict:
    from onestep.methods.solvers.generator import OneStepGenerator, SolverGenerator
    from onestep.methods.zoo.presets import build_network

    torch.manual_seed(0)
    teacher = build_network(TEACHER_CIFAR, **(TINY_NET if tiny else {})).eval().requires_grad_(False).to(device)
    batch = 4 if tiny else 500
    gens = {"one-step (1 NFE)": OneStepGenerator(teacher, 80.0)}
    for steps in (2, 4):
        G = SolverGenerator(teacher, "euler", steps)
        gens[f"few-step euler {steps} ({G.nfe} NFE)"] = G
    gens["teacher heun 18 (35 NFE)"] = SolverGenerator(teacher, "heun", 18)
    z = torch.randn(batch, 3, teacher.img_resolution, teacher.img_resolution, device=device)
    out: dict = {"network": TEACHER_CIFAR, "batch": batch, "precision": "fp32", "rows": {}}
    for label, G in gens.items():
        if budget.left() <= 0:
            out["rows"][label] = {"message": budget.skip_message(label)}
            continue
        with torch.no_grad():
            times = _timed(lambda: G(z), device, repeats=1 if tiny or "35" in label else 3)
        s = _median(times)
        out["rows"][label] = {"nfe": int(getattr(G, "nfe", 1)), "seconds": round(s, 4), "images_per_s": round(batch / s, 1)}
    heun = out["rows"].get("teacher heun 18 (35 NFE)", {}).get("images_per_s")
    for row in out["rows"].values():
        if heun and "images_per_s" in row:
            row["over_heun35"] = round(row["images_per_s"] / heun, 1)
    return out


PARTS: dict[str, Callable[[torch.device, bool, Budget], dict]] = {
    "parity": parity, "throughput": throughput, "fid50k": fid50k, "one_pass": one_pass, "sampling": sampling_measure}


# --- report -------------------------------------------------------------------------------
def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if (v == 0 or 1e-3 <= abs(v) < 1e5) else f"{v:.2e}"
    return str(v)


def table(report: dict) -> str:
    lines = [f"gpu_check on {report['env']['device_name']} (torch {report['env']['torch']}, tiny={report['env']['tiny']})"]
    par = report.get("parity", {})
    lines.append("\nparity (max rel. diff vs CPU fp32)   fp32 strict   fp32 TF32   bf16 autocast")
    for label in PARITY_NETWORKS:
        r = par.get(label, {})
        if "message" in r:
            lines.append(f"  {label:<34} {r['message']}")
        elif r:
            lines.append(f"  {label:<34} {_fmt(r['device_fp32_strict']):>11} {_fmt(r.get('device_fp32_default_tf32', '-')):>11} "
                         f"{_fmt(r['device_bf16_autocast']):>15}")
    thr = report.get("throughput", {})
    lines.append("\nthroughput (img/s per GPU)  batch   ours     paper   ours/paper  peak GB  preset")
    for name in thr.get("methods", []):
        r = thr.get(name, {})
        if "images_per_s" in r:
            p = r.get("paper", {}).get("img_s_per_gpu")
            lines.append(f"  {name:<24} {r['batch_per_gpu']:>6} {r['images_per_s']:>8.1f} {_fmt(p) if p else '-':>8} "
                         f"{_fmt(r.get('ours_over_paper', '-')):>10} {_fmt(r.get('peak_memory_gb', '-')):>8}  {r['preset']}")
        else:
            lines.append(f"  {name:<24} {r.get('message', r)}")
    for key in ("fid50k", "one_pass"):
        r = report.get(key, {})
        if "message" in r or "error" in r:
            lines.append(f"\n{key}: {r.get('message') or r.get('error')}")
        elif key == "fid50k" and r:
            lines.append(f"\nfid50k: n={r['n']} in {r['seconds']:.1f} s ({r['images_per_s']:.0f} img/s), target < {r['target_s']:.0f} s: "
                         f"{ {True: 'met', False: 'NOT met', None: 'n/a (tiny)'}[r['met']] }")
        elif r:
            s = r.get("seconds", {})
            bare = r.get("bare_forward_s")
            lines.append(f"\none_pass: n={r.get('n')}: naive {s.get('naive', 0):.1f} s, harness {s.get('harness_cold', 0):.1f} s "
                         f"(ratio {r.get('ratio_cold', 0):.2f}x) / cached {s.get('harness_warm', 0):.1f} s ({r.get('ratio_warm', 0):.2f}x), "
                         f"target >= {r['target_ratio']}x"
                         + (f"; harness over bare forward {r['harness_over_bare']:.2f} (bare {bare:.1f} s)" if bare else ""))
    smp = report.get("sampling", {})
    if smp.get("rows"):
        lines.append(f"\nsampling (batch {smp.get('batch')}, {smp.get('source')})")
        for label, r in smp["rows"].items():
            lines.append(f"  {label:<28} " + (f"{r['images_per_s']:>10.1f} img/s  {_fmt(r.get('over_heun35', '-')):>6}x Heun-35"
                                              if "images_per_s" in r else r.get("message", "")))
    elif smp:
        lines.append(f"\nsampling: {smp.get('message') or smp.get('error') or smp}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for gpu_check.json")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--tiny", action="store_true", help="tiny sizes: the whole script in seconds on a CPU (the test)")
    p.add_argument("--parts", default=",".join(SECTIONS), help=f"comma list of {list(SECTIONS)}")
    p.add_argument("--budget-scale", type=float, default=1.0, help="multiply every part's time budget")
    args = p.parse_args(argv)
    parts = [x for x in args.parts.split(",") if x]
    bad = [x for x in parts if x not in PARTS]
    if bad:
        p.error(f"unknown part {bad[0]!r}; choose from {list(SECTIONS)}")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but torch sees no GPU here; pass --device cpu (with --tiny for the quick check)")
    from onestep.methods.core.atomic import atomic_write_json

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "gpu_check.json"
    report: dict = {"env": {"device": str(device), "tiny": args.tiny, "torch": torch.__version__,
                            "python": platform.python_version(), "host_cpus": torch.get_num_threads(),
                            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                            "budgets_s": {k: BUDGET_S[k] * args.budget_scale for k in SECTIONS}}}
    report.update({k: {"message": "not requested (--parts)"} for k in SECTIONS})
    t0 = time.perf_counter()
    report["env"]["total_s"] = 0.0
    planned = 0.0  # the parts' budgets so far: a part that would start after them is skipped
    for name in parts:
        budget = Budget(BUDGET_S[name] * args.budget_scale)
        planned += budget.seconds
        t = time.perf_counter()
        if t - t0 >= planned:
            report[name] = {"message": f"skipped: the {planned:.0f} s planned up to and including this part were "
                                       f"spent ({t - t0:.0f} s elapsed)", "elapsed_s": 0.0}
            print(f"[gpu_check] {name}: {report[name]['message']}", flush=True)
            atomic_write_json(path, report)
            continue
        print(f"[gpu_check] {name} (budget {budget.seconds:.0f} s) ...", flush=True)
        try:
            report[name] = PARTS[name](device, args.tiny, budget)
        except Exception as e:  # one broken part must not lose the others' figures
            report[name] = {"error": f"{type(e).__name__}: {e}", "traceback_tail": traceback.format_exc().strip().splitlines()[-4:]}
        report[name]["elapsed_s"] = round(time.perf_counter() - t, 2)
        if report[name]["elapsed_s"] > budget.seconds:
            report[name]["over_budget"] = True
        report["env"]["total_s"] = round(time.perf_counter() - t0, 2)
        atomic_write_json(path, report)
        print(f"[gpu_check] {name} done in {report[name]['elapsed_s']:.1f} s", flush=True)
    print("\n" + table(report))
    print(f"\nwritten: {path} (total {report['env']['total_s']:.0f} s)")
    return 0 if not any("error" in report[k] for k in parts) else 1


if __name__ == "__main__":
    sys.exit(main())
