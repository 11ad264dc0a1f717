"""torch.distributed set-up from the launcher's environment (torchrun or Slurm), and tear-down.

The training loop never wraps modules in DistributedDataParallel: it averages gradients itself
(`all_reduce_mean`), so this module only has to find out who we are and open the process group.

Launchers and what they set:
- torchrun / torch.distributed.launch: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT.
- Slurm (srun, one task per GPU): SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, and the node list;
  the master is the first node of SLURM_JOB_NODELIST (else SLURM_LAUNCH_NODE_IPADDR) and the port
  is derived from the job id so concurrent jobs sharing a node do not collide.
Backend: NCCL when the device is a GPU, gloo on CPU.
"""
from __future__ import annotations

import contextlib
import datetime
import os
import re
from dataclasses import dataclass
from typing import Iterator, Mapping

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    """Who this process is, as read from the launcher's environment variables."""

    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int
    source: str  # "torchrun", "slurm" or "single"


def first_slurm_host(nodelist: str) -> str:
    """First host name of a Slurm node list: 'gpu[003-005,9],cpu1' -> 'gpu003'."""
    nodelist = nodelist.strip()
    if not nodelist:
        raise ValueError("empty Slurm node list")
    m = re.match(r"([^,\[]+)(\[([^\]]+)\])?", nodelist)
    if not m:
        raise ValueError(f"cannot parse Slurm node list {nodelist!r}")
    prefix, _, ranges = m.groups()
    if not ranges:
        return prefix
    first = ranges.split(",")[0].split("-")[0]
    return prefix + first


def slurm_port(job_id: str | int) -> int:
    """A port in [12000, 32000) derived from the job id (same on every task of the job)."""
    digits = re.sub(r"\D", "", str(job_id)) or "0"
    return 12000 + int(digits) % 20000


def detect_env(environ: Mapping[str, str] | None = None) -> DistEnv:
    """Read the launcher's variables; a plain `python` run is rank 0 of 1."""
    env = os.environ if environ is None else environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return DistEnv(
            rank=int(env["RANK"]), world_size=int(env["WORLD_SIZE"]), local_rank=int(env.get("LOCAL_RANK", 0)),
            master_addr=env.get("MASTER_ADDR", "127.0.0.1"), master_port=int(env.get("MASTER_PORT", 29500)),
            source="torchrun",
        )
    if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST") or ""
        addr = env.get("MASTER_ADDR") or (first_slurm_host(nodelist) if nodelist else None) \
            or env.get("SLURM_LAUNCH_NODE_IPADDR")
        if not addr:
            raise RuntimeError("Slurm multi-task run without SLURM_JOB_NODELIST or SLURM_LAUNCH_NODE_IPADDR: "
                               "cannot find the master address; set MASTER_ADDR")
        port = int(env["MASTER_PORT"]) if "MASTER_PORT" in env else slurm_port(env.get("SLURM_JOB_ID", "0"))
        return DistEnv(
            rank=int(env["SLURM_PROCID"]), world_size=int(env["SLURM_NTASKS"]),
            local_rank=int(env.get("SLURM_LOCALID", 0)), master_addr=addr, master_port=port, source="slurm",
        )
    return DistEnv(rank=0, world_size=1, local_rank=0, master_addr="127.0.0.1", master_port=0, source="single")


def default_device(env: DistEnv) -> torch.device:
    """cuda:LOCAL_RANK when GPUs exist, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", env.local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def resolve_rank_device(device: torch.device | str | None, env: DistEnv) -> torch.device:
    """This process's device: `cuda` without an index means this rank's GPU (local rank, as EDM's
    torch.cuda.set_device(rank % device_count)), never cuda:0 for every rank; an explicit
    cuda:N is kept."""
    if device is None:
        return default_device(env)
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return torch.device("cuda", env.local_rank % n) if n else device
    return device


def init_distributed(device: torch.device | str | None = None, env: DistEnv | None = None,
                     timeout_s: float = 1800.0) -> tuple[DistEnv, torch.device]:
    """Open the process group (no-op for a single process). Returns (env, device)."""
    env = env or detect_env()
    device = resolve_rank_device(device, env)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if env.world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(
            backend=backend, init_method=f"tcp://{env.master_addr}:{env.master_port}",
            rank=env.rank, world_size=env.world_size, timeout=datetime.timedelta(seconds=timeout_s),
        )
    return env, device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def distributed(device: torch.device | str | None = None, env: DistEnv | None = None) -> Iterator[tuple[DistEnv, torch.device]]:
    """`with distributed() as (env, device):` opens the process group and always tears it down."""
    opened = not (dist.is_available() and dist.is_initialized())
    env, device = init_distributed(device, env)
    try:
        yield env, device
    finally:
        if opened:
            shutdown()


# --- helpers the loop uses (all no-ops in a single process) --------------------------------
def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """In-place average over ranks; returns the tensor."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor.div_(dist.get_world_size())
    return tensor


def broadcast_object(obj, src: int = 0):
    """Rank `src`'s Python object on every rank."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
