"""`onestep validate --dry-run`: build every run of a suite at its real architecture and take
one training step of each method at a tiny batch, so a typo or shape error in a paper preset
is found on a laptop, not after a cluster job starts.

Generic on the Method interface: the run's resolved configs go through the same
`instantiate_method` and the same training loop as a real run (one step, batch `batch`, into
a temporary directory: prepare, step, EMA, resume checkpoint, final snapshot). What a laptop
lacks is stood in for, and each stand-in is reported:
  - a teacher whose weights are missing: the zoo preset's network with random weights (a
    digits teacher not trained yet: the `edm` preset's network with random weights);
  - the dataset: random images of the suite's shape (a dry run never reads the dataset);
  - discriminator feature networks whose files are missing: `random_weights: true`;
  - checkpoints of earlier runs the config names but that do not exist yet (a SiD2A run's SiD
    generator, an SFD second stage's first stage): what the method's `upstream_stand_ins` writes
    from the teacher into the dry run's temporary folder.
Runs that differ only in float hyperparameters (a learning-rate sweep) share one step: the
architecture and code path are the same. `device="meta"` builds and steps on PyTorch's meta
device (shapes only: no memory, no arithmetic) where the CPU would need gigabytes.
"""
from __future__ import annotations

import copy
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from onestep.methods.core.config import ConfigError


@dataclass
class DryRunResult:
    label: str
    ok: bool
    detail: str
    stand_ins: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _structure_key(tree: Any) -> Any:
    """The config with float values dropped: runs equal on it have the same architecture."""
    if isinstance(tree, dict):
        return tuple(sorted((k, _structure_key(v)) for k, v in tree.items() if not isinstance(v, float)))
    if isinstance(tree, list):
        return tuple(_structure_key(v) for v in tree)
    return tree


def _build_teacher(spec, device, stand_ins: list[str]):
    """The run's teacher at its real architecture: the real weights where found, random otherwise."""
    from onestep.methods import zoo
    from onestep.methods.checkpoints import CheckpointError, load_network, locate_checkpoint

    name = spec.teacher
    try:
        from onestep.benchmarks import teachers

        digits = teachers.DIGITS_TEACHERS
    except ImportError:
        digits = {}
    if name in digits:
        plan = teachers.plan_digits_teacher(name)
        ckpt = teachers.teacher_checkpoint(plan)
        if ckpt.with_suffix(".json").is_file() and device.type != "meta":
            return load_network(ckpt, device)
        from onestep.methods.plugin import get_method, resolve_preset

        net_name = resolve_preset(get_method("edm"), digits[name].preset).get("method", {}).get("network")
        net_name = net_name or get_method("edm").Config().network
        stand_ins.append(f"teacher {name}: not trained yet here; random-weight '{net_name}'")
        with torch.device(device):
            return zoo.build_network(net_name).eval().requires_grad_(False)
    if name in zoo.PRESETS:
        if device.type != "meta" and zoo.PRESETS[name].checkpoint:
            try:
                locate_checkpoint(name, download=False)
                return load_network(name, device)
            except CheckpointError:
                pass
        stand_ins.append(f"teacher {name}: {zoo.PRESETS[name].checkpoint or 'weights'} missing or not read; "
                         f"random-weight network of the preset")
        with torch.device(device):
            return zoo.build_network(name).eval().requires_grad_(False)
    return load_network(name, device)  # a checkpoint path: it must exist (CheckpointError names it)


def _stand_in_discriminators(tree: Any, stand_ins: list[str], where: str = "method") -> Any:
    """A copy of the method config with random_weights set where a feature network's file is missing."""
    from .preflight import method_weight_files

    tree = copy.deepcopy(tree)
    places = set()
    for what, _, files in method_weight_files(tree):
        if not any(f.is_file() for f in files):
            stand_ins.append(f"{what}: {files[0]} missing; random weights")
            places.add(what.split(":")[0])
    _set_random(tree, places, where)
    return tree


def _set_random(tree: Any, places: set[str], where: str) -> None:
    if isinstance(tree, dict):
        if where in places:
            tree["random_weights"] = True
        for k, v in tree.items():
            _set_random(v, places, f"{where}.{k}")
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            _set_random(v, places, f"{where}[{i}]")


def _data(spec, teacher, batch: int, stand_ins: list[str]):
    from .datasets import ArrayImageDataset, load_digits

    ds = spec.dataset
    if ds["name"] == "digits":
        return load_digits(ds["resolution"], ds["channels"], split="train", conditional=ds["conditional"])
    label_dim = int(getattr(teacher, "label_dim", 0) or 0) if ds.get("conditional") else 0
    if ds.get("conditional") and not label_dim:
        label_dim = 1000 if "imagenet" in ds["name"] else 10
    g = torch.Generator().manual_seed(0)
    n = max(2 * batch, 4)
    images = torch.randint(0, 256, (n, ds["channels"], ds["resolution"], ds["resolution"]), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, label_dim, (n,), generator=g) if label_dim else None
    stand_ins.append(f"dataset {ds['name']}: random {ds['resolution']}x{ds['resolution']}x{ds['channels']} images "
                     f"(a dry run never reads the dataset)")
    return ArrayImageDataset(images, labels, label_dim, name=f"{ds['name']}-stand-in")


def dry_run_one(spec, device: torch.device, batch: int = 2) -> DryRunResult:
    with tempfile.TemporaryDirectory(prefix="onestep-dryrun-") as tmp:
        return _dry_run_in(spec, device, batch, tmp)


def _upstream(cls, method_cfg: dict, teacher, data, folder: str, stand_ins: list[str]) -> dict:
    """The method config with stand-ins for missing checkpoints of earlier runs (written on the CPU:
    a meta teacher is rebuilt there from its architecture record, with random weights)."""
    from onestep.methods.core.config import build_config

    from .training import data_spec_of

    if teacher is not None and next(iter(teacher.parameters()), torch.empty(0)).is_meta:
        from onestep.methods.zoo import network_config, network_from_config

        teacher = network_from_config(network_config(teacher)).eval().requires_grad_(False)
    config = build_config(cls.Config, method_cfg, where=f"{cls.name}.method")
    made = cls.upstream_stand_ins(config, teacher, data_spec_of(data), folder)
    method_cfg = dict(method_cfg)
    for key, (value, what) in made.items():
        method_cfg[key] = value
        stand_ins.append(f"method.{key}: {what}")
    return method_cfg


def _dry_run_in(spec, device: torch.device, batch: int, tmp: str) -> DryRunResult:
    from onestep.methods.plugin import get_method

    from .training import LoopConfig, data_spec_of, instantiate_method, train

    t0 = time.perf_counter()
    stand_ins: list[str] = []
    cls = get_method(spec.method)
    teacher = _build_teacher(spec, device, stand_ins) if cls.needs_teacher and spec.teacher else None
    data = _data(spec, teacher, batch, stand_ins)
    method_cfg = _stand_in_discriminators(spec.method_config, stand_ins)
    method_cfg = _upstream(cls, method_cfg, teacher, data, tmp, stand_ins)
    loop = {k: v for k, v in spec.loop_config.items() if k in LoopConfig.__dataclass_fields__}
    # One step at the tiny batch; intervals above it so nothing but the final files is written.
    loop.update(batch_size=batch, total_kimg=batch / 1000, eval_kimg=None, best_metric=None, snapshot_kimg=None,
                checkpoint_kimg=1.0, log_kimg=1.0, precision="fp32")
    overrides = {f"method.{k}": v for k, v in method_cfg.items()}
    overrides.update({f"loop.{k}": v for k, v in loop.items()})
    import contextlib

    # On meta every module is constructed there (no memory, no initialisation arithmetic).
    with torch.device(device) if device.type == "meta" else contextlib.nullcontext(), warnings.catch_warnings():
        # Loading a stand-in checkpoint into meta modules copies nothing, by design of a meta run.
        warnings.filterwarnings("ignore", message=".*copying from a non-meta parameter", category=UserWarning)
        method, loop_cfg = instantiate_method(spec.method, None, overrides, teacher=teacher,
                                              data_spec=data_spec_of(data), device=device)
    n_params = sum(p.numel() for m in method.modules().values() for p in m.parameters())
    if device.type == "meta":
        detail = _meta_check(method, loop_cfg, data, batch, device)
    else:
        result = train(method, data, loop_cfg, Path(tmp) / "run", evaluate=None, device=device, log=lambda s: None)
        detail = f"took {result.step} step at batch {batch} on {device.type}"
    detail = f"built ({n_params / 1e6:.1f}M parameters in its modules), {detail}"
    return DryRunResult(spec.label, True, detail, stand_ins, time.perf_counter() - t0)


def _meta_check(method, loop_cfg, data, batch: int, device) -> str:
    """On the meta device nothing can be computed (no random numbers, no values), so instead of a
    step: prepare the method and push a batch through its generator, checking the output shape."""
    from .training.context import LoopContext

    ctx = LoopContext(loop_cfg.seed, batch, device, "fp32", loop_cfg.grad_clip, method.name)
    method.prepare(ctx)
    G = method.build_generator(method.ema_modules())
    shape = (batch, data.channels, data.resolution, data.resolution)
    labels = torch.zeros(batch, data.label_dim, device=device) if data.label_dim else None
    with torch.no_grad():
        try:
            out = G(torch.zeros(shape, device=device), labels)
        except (RuntimeError, NotImplementedError) as e:
            if "meta" not in str(e):
                raise
            # A sampler that reads values (e.g. a schedule's .item()) cannot run on meta; the build
            # itself succeeded. `--dry-run-device cpu` takes a real step.
            return f"prepared; built on meta; generator forward not checked there ({e}); use the CPU dry run"
    if tuple(out.shape) != shape:
        raise ValueError(f"generator output has shape {tuple(out.shape)}, expected {shape}")
    return f"prepared; generator maps {shape} -> {tuple(out.shape)} on meta (no step: meta tensors hold no values)"


def run_key(spec) -> Any:
    """Runs with equal keys share one dry run: same method, teacher, data shape and config up to
    float hyperparameters."""
    return (spec.method, spec.teacher, _structure_key(spec.dataset), _structure_key(spec.method_config))


def dry_run(runs, device: str = "cpu", batch: int = 2, log: Callable[[str], None] = print,
            key: Callable[[Any], Any] = run_key, done: dict | None = None) -> list[DryRunResult]:
    """One DryRunResult per run; an exception of a run is its error line, the others go on.
    `done` (key -> label) may be shared between calls to skip architectures seen before."""
    dev = torch.device(device)
    if batch <= 0:
        raise ConfigError(f"--dry-run batch must be positive, got {batch}")
    done = {} if done is None else done
    out = []
    for spec in runs:
        key_ = key(spec)
        if key_ in done:
            out.append(DryRunResult(spec.label, True, f"same architecture and code path as {done[key_]}: not built again"))
            log(f"  dry-run {spec.label}: {out[-1].detail}")
            continue
        try:
            res = dry_run_one(spec, dev, batch)
            done[key_] = spec.label
        except Exception as e:  # reported per run, with the exception type: this is what the dry run is for
            res = DryRunResult(spec.label, False, f"{type(e).__name__}: {e}".splitlines()[0][:600])
        out.append(res)
        log(f"  dry-run {spec.label}: {'ok' if res.ok else 'FAILED'}: {res.detail}" +
            (f" ({res.seconds:.1f}s)" if res.ok else ""))
        for s in res.stand_ins:
            log(f"    stood in: {s}")
    return out


__all__ = ["dry_run", "dry_run_one", "DryRunResult"]
