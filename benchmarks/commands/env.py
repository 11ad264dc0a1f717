"""`onestep env`: what this machine offers (torch/CUDA, GPUs, weights, Slurm, profile)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

NAME = "env"
HELP = "show torch/CUDA, GPUs, which feature-network and teacher weights are found, Slurm, the active profile"

PROFILE_ENV = "ONESTEP_PROFILE"


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--profile", default=None, help=f"profile to describe (default: ${PROFILE_ENV} or 'local')")


def _feature_weights() -> dict:
    from onestep.benchmarks.metrics import weights

    out = {}
    for key in weights.SPECS:
        try:
            w = weights.locate_weights(key, download=False)
            out[key] = {"found": True, "path": str(w.path), "released": w.released, "source": w.source}
        except (FileNotFoundError, ValueError) as e:
            out[key] = {"found": False, "why": str(e).split(". ")[0]}
    return out


def _teachers() -> dict:
    from onestep.methods import zoo
    from onestep.methods.checkpoints import CheckpointError, locate_checkpoint

    out = {}
    for name, preset in zoo.PRESETS.items():
        if not preset.checkpoint:
            continue
        try:
            out[name] = {"found": True, "path": str(locate_checkpoint(name, download=False))}
        except CheckpointError:
            out[name] = {"found": False}
    from onestep.methods.core.paths import cache_root

    digits = sorted(str(p) for p in cache_root().glob("teachers/**/*.safetensors"))
    out["digits (trained here)"] = {"found": bool(digits), "path": digits[0] if digits else None}
    return out


def _slurm() -> dict:
    if not shutil.which("sinfo"):
        return {"reachable": False, "why": "sinfo not on PATH"}
    try:
        r = subprocess.run(["sinfo", "-h", "-o", "%P %a %D %t %G"], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"reachable": False, "why": str(e)}
    if r.returncode != 0:
        return {"reachable": False, "why": (r.stderr or r.stdout).strip()[:200]}
    return {"reachable": True, "partitions": r.stdout.strip().splitlines()}


def collect(profile: str | None = None) -> dict:
    import torch

    from onestep.environments.executors import describe_profile, load_profile
    from onestep.methods.core.paths import cache_root

    info = {
        "torch": torch.__version__,
        "cuda_build": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else [],
        "cpu_count": os.cpu_count(),
        "cache": str(cache_root()),
        "feature_weights": _feature_weights(),
        "teacher_weights": _teachers(),
        "slurm": _slurm(),
    }
    name = profile or os.environ.get(PROFILE_ENV) or "local"
    try:
        info["profile"] = describe_profile(load_profile(name))
    except Exception as e:  # a broken profile is reported, not fatal for `env`
        info["profile"] = {"name": name, "error": str(e)}
    return info


def run(args) -> int:
    info = collect(args.profile)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"torch {info['torch']}  CUDA build {info['cuda_build']}  CUDA available: {info['cuda_available']}")
    print(f"GPUs: {', '.join(info['gpus']) or 'none'}   CPUs: {info['cpu_count']}   cache: {info['cache']}")
    print("feature-network weights:")
    for k, v in info["feature_weights"].items():
        print(f"  {k:22s} " + (f"found  {v['path']} ({'released' if v['released'] else 'NOT the released file'})" if v["found"] else f"missing ({v['why']})"))
    print("teacher weights:")
    for k, v in info["teacher_weights"].items():
        print(f"  {k:36s} " + (f"found  {v['path']}" if v["found"] else "missing"))
    s = info["slurm"]
    print("slurm: " + ("reachable\n  " + "\n  ".join(s["partitions"]) if s["reachable"] else f"not reachable ({s['why']})"))
    p = info["profile"]
    print(f"profile: {p.get('name')} " + (f"(error: {p['error']})" if "error" in p else
          f"executor={p['executor']} gpus_per_node={p['gpus_per_node']} tasks_per_node={p['tasks_per_node']}"))
    return 0
