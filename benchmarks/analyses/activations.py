"""Differential activations across time steps: paper 000 section 4.1 / Figure 3.

The teacher samples over T(i, N), N = 256 (i = 256: sigma_max ... i = 0: sigma_min), with one
network call per step (Euler). Forward hooks record the last convolution of every U-Net
block's main path (`conv1`) at each step; each (block, step) is reduced to the mean absolute
activation over images, channels and pixels (the paper plots one "relative value" per layer
and step without naming the reduction), then min-max normalized per layer across steps:
    O^_t^l = (O_t^l - min_t O^l) / (max_t O^l - min_t O^l).
Heatmaps for the encoder and the decoder (rows: blocks by depth, columns: time step).
Claim checked: "the shallow layers are maximally activated at the end time steps, while the
deep layers are more sensitive to the beginning time steps" (rank correlation between a
block's depth and the step index of its maximum).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Analysis, AnalysisContext, AnalysisResult, register_analysis


def minmax_normalize(values: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """(v - min) / (max - min) along `dim`; a constant row maps to 0 (nothing to normalize)."""
    v = values.to(torch.float64)
    lo = v.amin(dim=dim, keepdim=True)
    span = v.amax(dim=dim, keepdim=True) - lo
    return torch.where(span > 0, (v - lo) / torch.where(span > 0, span, torch.ones_like(span)), torch.zeros_like(v))


def trajectory_activations(denoiser, z: torch.Tensor, labels, num_steps: int):
    """(blocks, sigmas (steps,), activations (blocks, steps)): mean |conv1 output| of every
    U-Net block at each Euler step over T(i, num_steps), i = num_steps .. 1."""
    from onestep.methods.solvers import solve
    from onestep.methods.solvers.schedules import reversed_index_sigma

    from .hooks import record_blocks

    i = torch.arange(num_steps, -1, -1)
    sigmas = reversed_index_sigma(i, num_steps, max(0.002, float(denoiser.sigma_min)),
                                  min(80.0, float(denoiser.sigma_max))).to(z.device)
    with torch.no_grad(), record_blocks(denoiser, "conv1", reduce=lambda t: t.abs().mean()) as rec:
        solve("euler", denoiser, z.to(torch.float64) * sigmas[0], sigmas, labels)
    acts = torch.tensor([[float(call[b.name]) for call in rec.calls] for b in rec.blocks], dtype=torch.float64)
    return rec.blocks, sigmas[:-1].cpu(), acts


@dataclass
class ActivationsConfig:
    teacher: str = "digits"
    num_steps: int = 256  # N of T(i, N), paper 000 section 4.1
    n_images: int = 64
    seed: int = 0


@register_analysis
class Activations(Analysis):
    name = "activations"
    title = "Differential activations across time steps (paper 000 Sec. 4.1, Fig. 3)"
    Config = ActivationsConfig
    presets = {
        "smoke": {"num_steps": 64, "n_images": 16},
        "digits": {},
        "cifar10": {"teacher": "edm-cifar10-32x32-uncond-ve", "n_images": 16},
    }

    def run(self, ctx: AnalysisContext) -> AnalysisResult:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from .common import spearman, teacher_and_inputs

        cfg = self.config
        teacher, z, labels = teacher_and_inputs(cfg, ctx)
        blocks, sigmas, acts = trajectory_activations(teacher, z, labels, cfg.num_steps)
        norm = minmax_normalize(acts, dim=1)
        step_index = list(range(cfg.num_steps, 0, -1))  # i of T(i, N) at each recorded call
        rows = []
        for b, raw, nv in zip(blocks, acts, norm):
            for i, s, r, v in zip(step_index, sigmas.tolist(), raw.tolist(), nv.tolist()):
                rows.append({"block": b.name, "part": b.part, "depth": b.depth, "resolution": b.resolution,
                             "step_i": i, "sigma": s, "mean_abs": r, "normalized": v})
        t1 = ctx.write_csv("activations.csv", rows)

        claims, data = [], {}
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
        for ax, part, title in zip(axes, ("enc", "dec"), ("A. Encoder", "B. Decoder")):
            idx = sorted((k for k, b in enumerate(blocks) if b.part == part), key=lambda k: blocks[k].depth)
            if not idx:
                ax.set_visible(False)
                continue
            im = ax.imshow(norm[idx].numpy(), aspect="auto", cmap="magma", interpolation="nearest",
                           extent=(cfg.num_steps + 0.5, 0.5, len(idx) - 0.5, -0.5))
            ax.set_yticks(range(len(idx)), [blocks[k].name.split(".")[-1] for k in idx], fontsize=6)
            ax.set(title=title, xlabel="time step i of T(i, N) (sigma_max -> sigma_min)", ylabel="shallow -> deep")
            fig.colorbar(im, ax=ax, fraction=0.04)
            peak_i = [step_index[int(norm[k].argmax())] for k in idx]
            depth = [blocks[k].depth for k in idx]
            rho = spearman(depth, peak_i)
            data[part] = {"blocks": [blocks[k].name for k in idx], "peak_step_i": peak_i, "spearman_depth_peak": rho}
            claims.append({"claim": f"{part}: deeper blocks peak at earlier time steps (larger i), shallow ones at the end",
                           "holds": bool(rho > 0) if rho == rho else None,
                           "evidence": f"Spearman(depth, i of max) = {rho:.2f}; peaks (shallow->deep) i = {peak_i}"})
        fig.tight_layout()
        f1 = ctx.save_figure(fig, "activations.png")
        summary = (f"Teacher {cfg.teacher}, Euler over T(i, {cfg.num_steps}), {cfg.n_images} images, mean |conv1| per "
                   f"block. " + " ".join(f"{c['claim']}: {'holds' if c['holds'] else 'does not hold' if c['holds'] is False else 'undetermined'} "
                                         f"({c['evidence']})." for c in claims))
        return AnalysisResult(summary, claims, [f1], [t1], data)
