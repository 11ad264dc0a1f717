"""Executors for runs and sweeps: Slurm (submitit), local processes, and in-process debug.

A profile (YAML in environments/profiles/, or a path) says where and how a run executes:

    executor: slurm          # slurm | local | debug
    partition: gpu           # slurm only; also account, qos, constraint
    nodes: 1
    gpus_per_node: 8
    tasks_per_node: 8        # one task per GPU: torch.distributed is set up from Slurm's env
    cpus_per_task: 8
    mem_gb: 400
    timeout_min: 1440
    array_parallelism: 16
    setup: []                # shell lines run before the job (module load, venv activation)
    additional: {}           # extra sbatch options passed through verbatim

`make_executor` turns a profile into a configured submitit executor.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from onestep.methods.core.config import ConfigError, build_config, suggest, to_dict

PROFILE_DIR = Path(__file__).parent / "profiles"
EXECUTORS = ("slurm", "local", "debug")


@dataclass
class Profile:
    name: str = "local"
    executor: str = "local"
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    nodes: int = 1
    gpus_per_node: int = 0
    tasks_per_node: int = 1
    cpus_per_task: int = 1
    mem_gb: float | None = None
    timeout_min: int = 60
    array_parallelism: int = 16
    setup: list[str] = field(default_factory=list)
    additional: dict[str, Any] = field(default_factory=dict)
    description: str = ""


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def load_profile(name_or_path: str | Path | dict) -> Profile:
    """A profile by name (environments/profiles/NAME.yaml), by path, or from a mapping."""
    if isinstance(name_or_path, Profile):
        return name_or_path
    if isinstance(name_or_path, dict):
        data, where = dict(name_or_path), "profile"
    else:
        path = Path(name_or_path)
        if path.suffix not in (".yaml", ".yml"):
            path = PROFILE_DIR / f"{name_or_path}.yaml"
            if not path.exists():
                names = available_profiles()
                raise ConfigError(
                    f"unknown profile '{name_or_path}'{suggest(str(name_or_path), names)}; available: {', '.join(names)}"
                )
        elif not path.exists():
            raise ConfigError(f"profile file {path} does not exist")
        data = yaml.safe_load(path.read_text()) or {}
        data.setdefault("name", path.stem)
        where = f"profile {path}"
    profile = build_config(Profile, data, where=where)
    if profile.executor not in EXECUTORS:
        raise ConfigError(f"{where}: executor '{profile.executor}' is not one of {', '.join(EXECUTORS)}{suggest(profile.executor, EXECUTORS)}")
    if profile.executor != "slurm" and profile.nodes != 1:
        raise ConfigError(f"{where}: executor '{profile.executor}' runs on one machine; nodes must be 1, not {profile.nodes}")
    return profile


def slurm_available() -> bool:
    # submitit's Slurm executor also needs srun (it refuses to start without it).
    return all(shutil.which(b) is not None for b in ("sbatch", "sinfo", "srun"))


def slurm_gpus_per_node() -> int | None:
    """Largest GPU count any Slurm node reports in its GRES, None if Slurm is unreachable."""
    try:
        out = subprocess.run(["sinfo", "-h", "-N", "-o", "%G"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    best = 0
    for gres in out.stdout.split():
        for item in gres.split(","):
            parts = item.split("(")[0].split(":")
            if parts[0] == "gpu" and parts[-1].isdigit():
                best = max(best, int(parts[-1]))
    return best


def profiles_with_gpus(n: int) -> list[str]:
    """Names of the shipped profiles that give at least n GPUs per run (for error messages)."""
    out = []
    for name in available_profiles():
        try:
            p = load_profile(name)
        except ConfigError:
            continue
        if p.gpus_per_node * p.nodes >= n:
            out.append(f"{name} ({p.executor})")
    return out


def check_resources(profile: Profile) -> None:
    """Refuse, before any submission, a profile this machine/cluster cannot satisfy."""
    if profile.gpus_per_node <= 0:
        return
    if profile.executor in ("local", "debug"):
        import torch

        have = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if have < profile.gpus_per_node:
            raise ConfigError(
                f"profile '{profile.name}' asks for {profile.gpus_per_node} GPU(s) per node but this machine has {have}; "
                f"use a profile without GPUs (--profile local or --profile debug, if the suite's runs need none) or run "
                f"where {profile.gpus_per_node} GPU(s) exist"
            )
    elif profile.executor == "slurm":
        have = slurm_gpus_per_node()
        if have is not None and have < profile.gpus_per_node:
            raise ConfigError(
                f"profile '{profile.name}' asks for {profile.gpus_per_node} GPU(s) per node but the Slurm cluster's "
                f"nodes report at most {have} (sinfo %G); choose a profile that matches the cluster"
            )


def make_executor(profile: Profile | str | dict, folder: str | Path, check: bool = True):
    """A submitit executor configured from `profile`, logging under `folder`."""
    import submitit

    profile = load_profile(profile)
    if check:
        check_resources(profile)
    if profile.executor == "slurm" and not slurm_available():  # refused before anything is created
        raise ConfigError(
            f"profile '{profile.name}' uses Slurm but sbatch/sinfo/srun are not on PATH here: submit from the cluster's "
            f"login node (where `sinfo` works). On this machine `onestep validate --dry-run SUITE` checks the suite, "
            f"and `onestep run SUITE --method NAME` runs a run locally"
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if profile.executor == "debug":
        return submitit.DebugExecutor(folder=folder)
    if profile.executor == "local":
        ex = submitit.LocalExecutor(folder=folder)
        ex.update_parameters(
            timeout_min=profile.timeout_min, gpus_per_node=profile.gpus_per_node, tasks_per_node=profile.tasks_per_node
        )
        return ex
    ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
    params: dict[str, Any] = dict(
        timeout_min=profile.timeout_min,
        nodes=profile.nodes,
        tasks_per_node=profile.tasks_per_node,
        cpus_per_task=profile.cpus_per_task,
        slurm_array_parallelism=profile.array_parallelism,
        slurm_setup=list(profile.setup),
        slurm_additional_parameters=dict(profile.additional),
    )
    if profile.gpus_per_node:
        params["gpus_per_node"] = profile.gpus_per_node
    if profile.mem_gb:
        params["mem_gb"] = profile.mem_gb
    for key in ("partition", "account", "qos", "constraint"):
        value = getattr(profile, key)
        if value:
            params[f"slurm_{key}"] = value
    ex.update_parameters(**params)
    return ex


def describe_profile(profile: Profile) -> dict[str, Any]:
    return to_dict(profile)
