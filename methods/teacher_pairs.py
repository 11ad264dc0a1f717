"""DMD's paired dataset {z, teacher ODE output} (paper 003 section 3.3, appendix B), cached.

Pair i is (z_i, c_i, y_i): z_i (and the label c_i of a conditional teacher) drawn from seed
`seed_offset + i` exactly as `onestep generate` draws them (onestep.benchmarks.sampling:
per-seed generator, latent then label), and y_i = the teacher's deterministic Heun sampler
(EDM Algorithm 2, S_churn = 0) started from z_i. Only y is stored; z and c are re-drawn from
their seeds when a batch is read, so the dataset does not depend on batch sizes.

Layout under `root / key` (key = hash of the teacher's state checksum, solver settings, count,
shape, storage precision and chunk size):
    spec.json                 what the key covers
    chunk-000000.npy ...      outputs of pairs [k*chunk, (k+1)*chunk), each written atomically
    pairs.npy                 all outputs, (N, C, H, W), memory-mapped by readers
    done.json                 written last: its existence means complete (with the precision error)
Chunks make generation resumable (finished chunks are skipped) and splittable over a job array
(`task_index`/`task_count` take every task_count-th chunk); whoever finds every chunk present
merges them. Concurrent writers write identical bytes by atomic rename, so nothing is lost or
torn. Storage is float16 by default (half the bytes: 500k CIFAR-10 pairs take 3.1 GB): outputs
lie in about [-1, 1], where float16 rounds by at most 2^-12 ~ 2.4e-4 (2^-11 for 1 <= |y| < 2),
far below one uint8 level (7.8e-3); the measured largest error against float32 is recorded in
done.json. `dtype="float32"` stores exactly.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .core.atomic import atomic_write, atomic_write_json
from .solvers import SolverGenerator

DTYPES = ("float16", "float32")
FORMAT_VERSION = 1


@dataclass(frozen=True)
class PairSpec:
    teacher_sha256: str  # onestep.methods.checkpoints.state_checksum(teacher)
    num_pairs: int
    channels: int
    resolution: int
    label_dim: int
    solver: str = "heun"
    num_steps: int = 18  # paper 003 B: Heun-18 CIFAR-10, Heun-256 ImageNet 64
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    dtype: str = "float16"
    chunk_size: int = 1000
    seed_offset: int = 0

    def __post_init__(self):
        if self.num_pairs <= 0 or self.chunk_size <= 0:
            raise ValueError(f"PairSpec: num_pairs ({self.num_pairs}) and chunk_size ({self.chunk_size}) must be positive")
        if self.dtype not in DTYPES:
            raise ValueError(f"PairSpec.dtype {self.dtype!r}: choose one of {DTYPES}")

    def key(self) -> str:
        blob = json.dumps({"format": FORMAT_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    @property
    def num_chunks(self) -> int:
        return -(-self.num_pairs // self.chunk_size)

    def chunk_range(self, k: int) -> tuple[int, int]:
        return k * self.chunk_size, min((k + 1) * self.chunk_size, self.num_pairs)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.resolution, self.resolution)


def pair_inputs(spec: PairSpec, indices: Sequence[int], device: torch.device | str = "cpu"):
    """(z, one-hot labels or None) of pairs `indices`, per seed as `onestep generate`."""
    from onestep.benchmarks.sampling import seeded_inputs  # the one per-seed sampling rule (pure torch)

    seeds = [spec.seed_offset + int(i) for i in indices]
    z, labels, _ = seeded_inputs(seeds, spec.shape, spec.label_dim, device)
    return z, labels


def _teacher_sampler(teacher: nn.Module, spec: PairSpec) -> SolverGenerator:
    return SolverGenerator(teacher, spec.solver, spec.num_steps, sigma_min=spec.sigma_min, sigma_max=spec.sigma_max,
                           rho=spec.rho)


def _save_npy(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda f: np.save(f, array, allow_pickle=False))


class TeacherPairs:
    """The cached paired dataset of one PairSpec under `root`; `build()` then `batch(indices)`."""

    def __init__(self, spec: PairSpec, root: str | Path):
        self.spec = spec
        self.dir = Path(root) / spec.key()
        self._outputs: np.ndarray | None = None

    # --- status -----------------------------------------------------------------------------
    def chunk_path(self, k: int) -> Path:
        return self.dir / f"chunk-{k:06d}.npy"

    @property
    def merged_path(self) -> Path:
        return self.dir / "pairs.npy"

    @property
    def done_path(self) -> Path:
        return self.dir / "done.json"

    def is_complete(self) -> bool:
        return self.done_path.is_file() and self.merged_path.is_file()

    def missing_chunks(self) -> list[int]:
        return [k for k in range(self.spec.num_chunks) if not self.chunk_path(k).is_file()]

    # --- generation ---------------------------------------------------------------------------
    def build(self, teacher: nn.Module, device: torch.device | str = "cpu", batch_size: int = 250,
              task_index: int = 0, task_count: int = 1, merge: bool = True,
              log: Callable[[str], None] | None = print) -> bool:
        """Generate this task's missing chunks, then merge if every chunk exists. Returns True
        when the dataset is complete. Does nothing when it already is (idempotent)."""
        if self.is_complete():
            return True
        if not 0 <= task_index < task_count:
            raise ValueError(f"task_index {task_index} must lie in [0, task_count={task_count})")
        spec = self.spec
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.dir / "spec.json", asdict(spec))
        todo = [k for k in self.missing_chunks() if k % task_count == task_index]
        sampler = _teacher_sampler(teacher, spec).to(device)
        say = log or (lambda s: None)
        total = sum(b - a for a, b in map(spec.chunk_range, todo))
        done_images, t0 = 0, time.perf_counter()
        for k in todo:
            if self.chunk_path(k).is_file():  # another task finished it meanwhile
                continue
            lo, hi = spec.chunk_range(k)
            out, err = self._generate(sampler, range(lo, hi), device, batch_size)
            _save_npy(self.chunk_path(k), out)
            atomic_write_json(self.dir / f"chunk-{k:06d}.json", {"max_abs_error_vs_float32": err})
            done_images += hi - lo
            rate = done_images / max(time.perf_counter() - t0, 1e-9)
            say(f"dmd pairs {self.dir.name}: chunk {k + 1}/{spec.num_chunks}  {done_images}/{total} images "
                f"this task  {rate:.1f} img/s  ({spec.solver}-{spec.num_steps}, {sampler.nfe} NFE)")
        if merge and not self.missing_chunks():
            self.merge()
        return self.is_complete()

    @torch.no_grad()
    def _generate(self, sampler: SolverGenerator, indices: range, device, batch_size: int) -> tuple[np.ndarray, float]:
        dtype = np.dtype(self.spec.dtype)
        parts, err = [], 0.0
        for start in range(indices.start, indices.stop, batch_size):
            idx = list(range(start, min(start + batch_size, indices.stop)))
            z, labels = pair_inputs(self.spec, idx, device)
            y = sampler(z, labels).float().cpu().numpy()
            stored = y.astype(dtype)
            err = max(err, float(np.abs(stored.astype(np.float32) - y).max()))
            parts.append(stored)
        return np.concatenate(parts), err

    def merge(self) -> None:
        """Concatenate the chunks into pairs.npy (atomic), record done.json, drop the chunks."""
        spec = self.spec
        if self.is_complete():
            return
        missing = self.missing_chunks()
        if missing:
            raise RuntimeError(f"paired dataset {self.dir}: cannot merge, chunks {missing[:5]} are missing")
        dtype = np.dtype(spec.dtype)

        def write(f):
            np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                                                     "shape": (spec.num_pairs, *spec.shape)})
            for k in range(spec.num_chunks):
                arr = np.load(self.chunk_path(k), mmap_mode="r")
                lo, hi = spec.chunk_range(k)
                if arr.shape != (hi - lo, *spec.shape) or arr.dtype != dtype:
                    raise RuntimeError(f"{self.chunk_path(k)} has shape {arr.shape} {arr.dtype}, expected "
                                       f"{(hi - lo, *spec.shape)} {dtype}; delete it to regenerate")
                f.write(np.ascontiguousarray(arr).tobytes())

        atomic_write(self.merged_path, write)
        errs = []
        for k in range(spec.num_chunks):
            meta = self.dir / f"chunk-{k:06d}.json"
            if meta.is_file():
                errs.append(json.loads(meta.read_text())["max_abs_error_vs_float32"])
        atomic_write_json(self.done_path, {"spec": asdict(spec), "num_pairs": spec.num_pairs, "dtype": spec.dtype,
                                           "max_abs_error_vs_float32": max(errs) if errs else None})
        for k in range(spec.num_chunks):  # after done.json: a crash here leaves a complete dataset
            self.chunk_path(k).unlink(missing_ok=True)
            (self.dir / f"chunk-{k:06d}.json").unlink(missing_ok=True)

    # --- reading ----------------------------------------------------------------------------
    def outputs(self) -> np.ndarray:
        """The teacher outputs, memory-mapped (N, C, H, W)."""
        if self._outputs is None:
            if not self.is_complete():
                raise FileNotFoundError(f"paired dataset {self.dir} is not complete; run build() first "
                                        f"(missing chunks: {len(self.missing_chunks())})")
            self._outputs = np.load(self.merged_path, mmap_mode="r")
        return self._outputs

    def info(self) -> dict:
        return json.loads(self.done_path.read_text()) if self.done_path.is_file() else {}

    def batch(self, indices: torch.Tensor | Sequence[int], device: torch.device | str = "cpu"):
        """(z, labels or None, y float32) of the pairs `indices`."""
        idx = [int(i) for i in (indices.tolist() if isinstance(indices, torch.Tensor) else indices)]
        z, labels = pair_inputs(self.spec, idx, device)
        y = torch.from_numpy(np.asarray(self.outputs()[np.asarray(idx)], dtype=np.float32)).to(device)
        return z, labels, y
