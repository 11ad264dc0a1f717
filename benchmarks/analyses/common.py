"""What several analyses share: the teacher and data, GAN training through the GDD plugin and
the one training loop, and measurements through the one metrics harness. Nothing here is a
second copy: it only wires those parts together."""
from __future__ import annotations

from typing import Any, Mapping

from torch import nn

from onestep.methods.core.config import ConfigError


def load_teacher(name: str, device, log=print) -> nn.Module:
    from onestep.benchmarks.teachers import load_teacher as _load

    return _load(name, device=device, log=log)


def teacher_and_inputs(cfg, ctx):
    """(teacher, z, labels) of an analysis that follows the teacher from `cfg.n_images` seeded
    inputs (seeds cfg.seed, cfg.seed + 1, ...; the sampling module's per-seed draws)."""
    from onestep.benchmarks.sampling import seeded_inputs

    teacher = load_teacher(cfg.teacher, ctx.device, log=ctx.log)
    seeds = list(range(cfg.seed, cfg.seed + cfg.n_images))
    shape = (teacher.img_channels, teacher.img_resolution, teacher.img_resolution)
    z, labels, _ = seeded_inputs(seeds, shape, int(teacher.label_dim or 0), ctx.device)
    return teacher, z, labels


def load_data(dataset: Mapping[str, Any], split: str = "train"):
    """The training data (ArrayImageDataset) an analysis trains and measures against."""
    if dataset.get("name", "digits") != "digits":
        from onestep.benchmarks import datasets

        if not dataset.get("path"):
            raise ConfigError(f"dataset {dataset['name']}: give dataset.path (only 'digits' is embedded)")
        return datasets.load_dataset(dataset["path"], resolution=dataset["resolution"])
    from onestep.benchmarks.datasets import load_digits

    return load_digits(dataset.get("resolution", 8), dataset.get("channels", 1), split=split,
                       conditional=dataset.get("conditional", True))


def train_gdd(ctx, key: str, teacher: nn.Module, data, preset: str, method_overrides: Mapping[str, Any] | None = None,
              loop_overrides: Mapping[str, Any] | None = None, steps: int = 1, sigma_mid: float | None = None,
              method_name: str = "gdd"):
    """Train a generator with the GDD plugin's GAN objective through the one training loop.

    steps = 1: the plugin's own one-step student. steps > 1 (or a sigma_mid): the same plugin
    training its k-step PD teacher (`generator_steps`), so the only difference is the number of
    network passes. Checkpoints live in ctx.checkpoint_dir(key): an interrupted training
    resumes. Returns the EMA generator."""
    from onestep.benchmarks.training import data_spec_of, instantiate_method, train

    overrides = {f"method.{k}": v for k, v in (method_overrides or {}).items()}
    overrides.update({f"loop.{k}": v for k, v in (loop_overrides or {}).items()})
    overrides.update({"method.generator_steps": steps, "method.generator_sigma_mid": sigma_mid})
    method, loop = instantiate_method(method_name, preset, overrides, teacher=teacher, data_spec=data_spec_of(data),
                                      device=ctx.device)
    result = train(method, data, loop, ctx.checkpoint_dir(key), device=ctx.device, log=lambda s: None)
    ctx.log(f"  trained {key}: {result.step} steps, {result.cur_nimg / 1000:g} kimg ({result.seconds:.1f}s)")
    return result.generator.eval()


# --- measurements ------------------------------------------------------------------------------
def measure(generator, reference, metric: str, n: int, seeds: list[int], device, batch_size: int = 250,
            data_floor: bool = False) -> dict:
    """One metric of a generator against a dataset (abs) or another generator (rel-, same seeds)."""
    from onestep.benchmarks.metrics.evaluate import evaluate

    res = evaluate(generator, reference, [metric], num_samples=n, seeds=seeds, batch_size=batch_size, device=device,
                   progress=False, data_floor=data_floor)
    rec = res.records[0]
    return {"metric": rec.metric, "value": float(rec.value), "n": rec.n, "untrained": bool(rec.untrained),
            "floor": rec.floor, "floor_n": rec.floor_n}


def spearman(x, y) -> float:
    """Rank correlation (ties get mean ranks); NaN when either side is constant."""
    import numpy as np
    from scipy.stats import spearmanr

    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    return float(spearmanr(x, y).statistic)
