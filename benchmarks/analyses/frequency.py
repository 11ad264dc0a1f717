"""Frequency-specific processing: paper 001 section 4.5, Figure 4 and Figure 6 (appendix E).

    D_FFT(x1, x2) = log(|FFT(x1)| + 1) - log(|FFT(x2)| + 1)

radially averaged (smaller radius = lower frequency), for
  - consecutive outputs D_FFT(O_t, O_{t-1}) and output vs input D_FFT(O_t, I_t) along the
    teacher's sampling trajectory (O_t = D(x_t; t), I_t = x_t), Figure 4B/C;
  - every U-Net block: D_FFT(block output, block input) at each time step (forward hooks),
    Figure 6B/C; blocks that change the resolution are compared after both sides are reduced
    to their own spectra (radii up to each side's Nyquist), so only same-size blocks enter;
  - the one-step student (GDD, trained through the plugin) at its single step.
Claims checked (paper 001): D_FFT(O_t, I_t) < 0 in all bands, more so early; the bands
enhanced between consecutive outputs move from low to higher frequencies over the trajectory;
a shallow block's high-frequency change grows over time.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .base import Analysis, AnalysisContext, AnalysisResult, register_analysis


# --- public helpers ------------------------------------------------------------------------
def log_fft_difference(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """D_FFT(x1, x2) = log(|FFT(x1)| + 1) - log(|FFT(x2)| + 1) over the last two dimensions.

    2-D FFT per image and channel, zero frequency shifted to the centre (index (H//2, W//2)),
    as `radial_average` expects. Same shape as the inputs; float64."""
    if x1.shape != x2.shape:
        raise ValueError(f"log_fft_difference: shapes differ, {tuple(x1.shape)} vs {tuple(x2.shape)}")
    return log_magnitude(x1) - log_magnitude(x2)


def log_magnitude(x: torch.Tensor) -> torch.Tensor:
    """log(|FFT(x)| + 1) over the last two dimensions, zero frequency centred (float64)."""
    if x.dim() < 2:
        raise ValueError(f"need (..., H, W) images, got shape {tuple(x.shape)}")
    spec = torch.fft.fftshift(torch.fft.fft2(x.to(torch.float64)), dim=(-2, -1))
    return torch.log(spec.abs() + 1)


def radial_bins(h: int, w: int, device=None) -> torch.Tensor:
    """Integer radius (rounded distance from the centred zero frequency) of every (H, W) bin."""
    yy = torch.arange(h, device=device, dtype=torch.float64) - h // 2
    xx = torch.arange(w, device=device, dtype=torch.float64) - w // 2
    return torch.sqrt(yy[:, None] ** 2 + xx[None, :] ** 2).round().long()


def radial_average(spectrum: torch.Tensor) -> torch.Tensor:
    """Mean of a centred spectrum (..., H, W) over rings of equal integer radius -> (..., R),
    R = the largest rounded radius + 1; entry r averages the bins whose distance from the
    zero frequency rounds to r (r = 0 is the DC component)."""
    if spectrum.dim() < 2:
        raise ValueError(f"radial_average needs (..., H, W), got shape {tuple(spectrum.shape)}")
    h, w = spectrum.shape[-2:]
    r = radial_bins(h, w, spectrum.device).flatten()
    n_bins = int(r.max()) + 1
    flat = spectrum.reshape(-1, h * w).to(torch.float64)
    sums = torch.zeros(flat.shape[0], n_bins, dtype=torch.float64, device=spectrum.device).index_add_(1, r, flat)
    counts = torch.bincount(r, minlength=n_bins).to(torch.float64)
    return (sums / counts).reshape(*spectrum.shape[:-2], n_bins)


def radial_profile(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """Radially averaged D_FFT(x1, x2), averaged over batch and channels -> (R,). Channels may
    differ between x1 and x2 (a block's input and output): each side's log magnitude is
    averaged over its own channels first (equal to the mean of D_FFT when they match)."""
    a = log_magnitude(x1).mean(dim=tuple(range(x1.dim() - 2)))
    b = log_magnitude(x2).mean(dim=tuple(range(x2.dim() - 2)))
    if a.shape != b.shape:
        raise ValueError(f"radial_profile: spatial sizes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
    return radial_average(a - b)


def enhanced_centroid(profile: torch.Tensor) -> float:
    """Radius-weighted centroid of the positive (enhanced) part of a radial profile; NaN if none."""
    pos = profile.clamp(min=0)
    total = float(pos.sum())
    if total <= 0:
        return float("nan")
    r = torch.arange(profile.shape[-1], dtype=torch.float64)
    return float((pos * r).sum() / total)


# --- the analysis ----------------------------------------------------------------------------
@dataclass
class FrequencyConfig:
    teacher: str = "digits"
    dataset: dict = field(default_factory=lambda: {"name": "digits", "resolution": 8, "channels": 1, "conditional": True})
    solver: str = "euler"  # one network call per step, so O_t and I_t pair up per step
    num_steps: int = 18  # EDM schedule levels of the trajectory
    n_images: int = 64  # trajectories averaged
    seed: int = 0
    student_method: str = "gdd"  # the one-step student: trained with this plugin's preset
    student_preset: str = "smoke"
    student_loop_overrides: dict = field(default_factory=dict)


@register_analysis
class Frequency(Analysis):
    name = "frequency"
    title = "Frequency-specific processing (paper 001 Sec. 4.5, Figs. 4 and 6)"
    Config = FrequencyConfig
    presets = {
        "smoke": {"n_images": 32, "student_loop_overrides": {"total_kimg": 1.6, "checkpoint_kimg": 1.6, "log_kimg": 1.6}},
        "digits": {"n_images": 256},
        "cifar10": {"teacher": "edm-cifar10-32x32-uncond-ve", "student_preset": "cifar10-uncond", "n_images": 256,
                    "dataset": {"name": "cifar10", "resolution": 32, "channels": 3, "conditional": False, "path": None}},
    }

    def run(self, ctx: AnalysisContext) -> AnalysisResult:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from onestep.methods.solvers import solve
        from onestep.methods.solvers.schedules import make_sigmas

        from .common import load_data, spearman, teacher_and_inputs, train_gdd
        from .hooks import RecordingDenoiser, record_blocks

        cfg = self.config
        teacher, z, labels = teacher_and_inputs(cfg, ctx)

        # 1. the teacher's trajectory, with every block's input/output at every step
        rec = RecordingDenoiser(teacher)
        sigmas = make_sigmas("edm", cfg.num_steps, max(0.002, teacher.sigma_min), min(80.0, teacher.sigma_max),
                             round_sigma=teacher.round_sigma, device=ctx.device)
        with torch.no_grad(), record_blocks(teacher, "io") as blocks:
            solve(cfg.solver, rec, z.to(torch.float64) * sigmas[0], sigmas, labels)
        steps = [s for _, s, _ in rec.calls]
        out_in = [radial_profile(o, x) for x, s, o in rec.calls]  # I_t = x_t, the sampler's state
        consec = [radial_profile(rec.calls[t][2], rec.calls[t - 1][2]) for t in range(1, len(rec.calls))]
        block_prof = {}
        for b in blocks.blocks:
            profs = []
            for call in blocks.calls:
                xin, xout = call[b.name]
                if xin.shape[-1] != xout.shape[-1]:
                    break  # down/up-sampling block: no common spectrum
                profs.append(radial_profile(xout, xin))
            if len(profs) == len(blocks.calls):
                block_prof[b.name] = (b, profs)

        # 2. the one-step student at its single step
        data = load_data(cfg.dataset)
        student = train_gdd(ctx, "student", teacher, data, cfg.student_preset, None,
                            {"seed": cfg.seed, **cfg.student_loop_overrides}, method_name=cfg.student_method)
        srec = RecordingDenoiser(student.denoiser)
        with torch.no_grad(), record_blocks(student.denoiser, "io") as sblocks:
            s_sigma = float(student.sigma)
            srec(z * s_sigma, torch.full((len(z),), s_sigma), labels)
        x_s, _, o_s = srec.calls[0]
        student_out_in = radial_profile(o_s, x_s)
        student_blocks = {b.name: radial_profile(sblocks.calls[0][b.name][1], sblocks.calls[0][b.name][0])
                          for b in sblocks.blocks if b.name in block_prof}

        # 3. tables
        rows_traj = []
        for t, s in enumerate(steps):
            for r, v in enumerate(out_in[t].tolist()):
                rows_traj.append({"step": t, "sigma": s, "kind": "D_FFT(O_t, I_t)", "radius": r, "value": v})
            if t >= 1:
                for r, v in enumerate(consec[t - 1].tolist()):
                    rows_traj.append({"step": t, "sigma": s, "kind": "D_FFT(O_t, O_t-1)", "radius": r, "value": v})
        for r, v in enumerate(student_out_in.tolist()):
            rows_traj.append({"step": 0, "sigma": s_sigma, "kind": "student D_FFT(O, I)", "radius": r, "value": v})
        rows_blocks = []
        for name, (b, profs) in block_prof.items():
            for t, p in enumerate(profs):
                for r, v in enumerate(p.tolist()):
                    rows_blocks.append({"model": "teacher", "block": name, "part": b.part, "depth": b.depth,
                                        "resolution": b.resolution, "step": t, "sigma": steps[t], "radius": r, "value": v})
            for r, v in enumerate(student_blocks[name].tolist()):
                rows_blocks.append({"model": "student", "block": name, "part": b.part, "depth": b.depth,
                                    "resolution": b.resolution, "step": 0, "sigma": s_sigma, "radius": r, "value": v})
        t1 = ctx.write_csv("frequency_trajectory.csv", rows_traj)
        t2 = ctx.write_csv("frequency_blocks.csv", rows_blocks)

        # 4. claims, as numbers
        oi = torch.stack(out_in)  # (steps, R)
        frac_neg = float((oi < 0).double().mean())
        mean_oi = oi.mean(dim=1).tolist()
        rho_oi = spearman(list(range(len(steps))), mean_oi)
        cents = [enhanced_centroid(p) for p in consec]
        idx = [t for t, c in enumerate(cents) if c == c]
        rho_cent = spearman(idx, [cents[t] for t in idx])
        shallow = [v for v in block_prof.values() if v[0].resolution == teacher.img_resolution]
        shallow_name, shallow_hi, rho_hi = None, [], float("nan")
        if shallow:
            b, profs = min(shallow, key=lambda v: (v[0].depth, v[0].part != "dec"))
            half = profs[0].shape[0] // 2
            shallow_name = b.name
            shallow_hi = [float(p[half:].mean()) for p in profs]
            rho_hi = spearman(list(range(len(profs))), shallow_hi)
        claims = [
            {"claim": "D_FFT(O_t, I_t) < 0 in all bands (the model removes noise across the spectrum)",
             "holds": frac_neg == 1.0, "evidence": f"{100 * frac_neg:.1f}% of (step, radius) entries negative"},
            {"claim": "suppression strongest in early time steps (D_FFT(O_t, I_t) rises along the trajectory)",
             "holds": bool(rho_oi > 0), "evidence": f"Spearman(step, mean D) = {rho_oi:.2f}; first {mean_oi[0]:.3f}, last {mean_oi[-1]:.3f}"},
            {"claim": "enhanced frequencies of D_FFT(O_t, O_t-1) move from low to higher radii over time",
             "holds": bool(rho_cent > 0) if rho_cent == rho_cent else None,
             "evidence": f"Spearman(step, centroid of enhanced radii) = {rho_cent:.2f}; centroids "
                         + ", ".join(f"{c:.2f}" for c in cents)},
            {"claim": "a shallow block's high-frequency change grows over time (Fig. 6B)",
             "holds": bool(rho_hi > 0) if rho_hi == rho_hi else None,
             "evidence": f"{shallow_name}: Spearman(step, mean D over the upper half of radii) = {rho_hi:.2f}"},
        ]

        # 5. figures
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
        cmap = plt.get_cmap("viridis")
        for t, p in enumerate(consec):
            axes[0].plot(p.tolist(), color=cmap(t / max(1, len(consec) - 1)))
        axes[0].set(title="B. D_FFT(O_t, O_t-1)", xlabel="radius (low -> high frequency)", ylabel="radial mean")
        for t, p in enumerate(out_in):
            axes[1].plot(p.tolist(), color=cmap(t / max(1, len(out_in) - 1)))
        axes[1].plot(student_out_in.tolist(), "r--", label="one-step student")
        axes[1].legend(fontsize=7)
        axes[1].set(title="C. D_FFT(O_t, I_t)", xlabel="radius")
        if shallow_name:
            axes[2].plot(shallow_hi, "o-")
            axes[2].set(title=f"shallow block {shallow_name.split('.')[-1]}: high-band D", xlabel="step (early -> late)")
        sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, len(steps) - 1))
        fig.colorbar(sm, ax=axes[:2], label="step (early -> late)")
        f1 = ctx.save_figure(fig, "frequency_trajectory.png")

        n = len(block_prof)
        fig, axes = plt.subplots(1, n, figsize=(2.2 * n, 2.6), squeeze=False)
        for ax, (name, (b, profs)) in zip(axes[0], block_prof.items()):
            for t, p in enumerate(profs):
                ax.plot(p.tolist(), color=cmap(t / max(1, len(profs) - 1)), lw=0.8)
            ax.plot(student_blocks[name].tolist(), "r--", lw=1)
            ax.set_title(f"{b.part} {name.split('.')[-1]}", fontsize=7)
            ax.tick_params(labelsize=6)
        fig.suptitle("D_FFT(block output, block input) per step (red: one-step student)", fontsize=8)
        f2 = ctx.save_figure(fig, "frequency_blocks.png")

        summary = (f"Teacher {cfg.teacher}, {cfg.solver} {cfg.num_steps} steps, {cfg.n_images} trajectories; student "
                   f"{cfg.student_method}/{cfg.student_preset}. " +
                   " ".join(f"{c['claim']}: {'holds' if c['holds'] else 'does not hold' if c['holds'] is False else 'undetermined'} "
                            f"({c['evidence']})." for c in claims))
        data_out = {"fraction_negative_out_in": frac_neg, "spearman_out_in": rho_oi, "centroids": cents,
                    "spearman_centroid": rho_cent, "shallow_block": shallow_name, "shallow_high_band": shallow_hi,
                    "spearman_shallow_high": rho_hi, "student_out_in": student_out_in.tolist()}
        return AnalysisResult(summary, claims, [f1, f2], [t1, t2], data_out)
