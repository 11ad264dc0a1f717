"""Freezing: parameter shares per role and the freezing-level ablation (paper 000 Table 2,
paper 001 Table 3).

The share table is `onestep zoo`'s (onestep.benchmarks.commands.zoo.describe over
methods/zoo/roles.py) for any zoo preset, plus the trainable share at each freeze level
(methods/freezing.py). The ablation is a suite (default benchmarks/suites/gdd_freezing_digits.yaml:
the GDD plugin at each `method.freeze` level) run through the ordinary runner into the same
store, so its runs are ordinary training runs; this analysis then tabulates and plots them.
Claims checked: GDD-I (conv frozen) at least as good as GDD (nothing frozen) at the same
budget; freezing the skip layers too is the worst row.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .base import Analysis, AnalysisContext, AnalysisResult, register_analysis

PAPER_TABLE2 = {"none": 1.66, "conv": 1.54, "conv_qkv": 1.60, "conv_qkv_skip": 2.51}  # CIFAR-10 FID, 5 Mimg


def share_rows(preset: str) -> list[dict]:
    """Role shares of a zoo preset and the trainable share at every freeze level."""
    from onestep.benchmarks.commands.zoo import build_meta, describe
    from onestep.methods.freezing import FREEZE_LEVELS, apply_freeze_level

    net = build_meta(preset)
    info = describe(preset, net)
    rows = [{"preset": preset, "kind": "role", "name": r, "params": int(c), "share": info["shares"][r]}
            for r, c in info["role_params"].items() if c]
    total = info["params"]
    for level in FREEZE_LEVELS:
        frozen = set(apply_freeze_level(net, level))
        trainable = sum(p.numel() for n, p in net.named_parameters() if n not in frozen)
        rows.append({"preset": preset, "kind": "freeze_level", "name": level, "params": int(trainable),
                     "share": trainable / total})
    return rows


@dataclass
class FreezingConfig:
    presets: list = field(default_factory=lambda: ["digits-8x8-cond", "edm-cifar10-32x32-uncond-ve",
                                                   "edm-cifar10-32x32-uncond-vp"])
    suite: str = "gdd_freezing_digits"  # the ablation suite (sweep over method.freeze)
    levels: list = field(default_factory=lambda: ["none", "conv", "conv_qkv", "conv_qkv_skip"])
    loop_overrides: dict = field(default_factory=dict)  # applied to every ablation run (same budget for all)
    metric: str | None = None  # default: the suite's first metric


@register_analysis
class Freezing(Analysis):
    name = "freezing"
    title = "Freezing: parameter shares per role and the freezing-level ablation (paper 000 Table 2, paper 001 Table 3)"
    Config = FreezingConfig
    presets = {
        "smoke": {"presets": ["digits-8x8-cond", "edm-cifar10-32x32-uncond-ve"], "levels": ["none", "conv"],
                  "loop_overrides": {"total_kimg": 1.6, "checkpoint_kimg": 1.6, "log_kimg": 1.6}},
        "digits": {},
        "cifar10": {"suite": "gdd_freezing", "presets": ["edm-cifar10-32x32-uncond-ve"]},
    }

    def run(self, ctx: AnalysisContext) -> AnalysisResult:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from onestep.benchmarks.runner import run_suite
        from onestep.benchmarks.store import ResultsStore
        from onestep.benchmarks.suites import expand_runs, load_suite

        cfg = self.config
        shares = [r for p in cfg.presets for r in share_rows(p)]
        t1 = ctx.write_csv("freezing_shares.csv", shares)

        suite = load_suite(cfg.suite)
        metric = cfg.metric or suite.evaluation.metrics[0]
        runs = [r for r in expand_runs(suite) if r.sweep_point.get("method.freeze") in cfg.levels]
        missing = set(cfg.levels) - {r.sweep_point.get("method.freeze") for r in runs}
        if missing:
            from onestep.methods.core.config import ConfigError

            raise ConfigError(f"suite {cfg.suite} has no runs with method.freeze in {sorted(missing)}")
        for r in runs:
            r.loop_config.update(cfg.loop_overrides)  # changes the run id: a different budget is a different run
        store = ResultsStore(ctx.run_dir.parent.parent)
        outcome = run_suite(runs, store, suite_name=f"{suite.name}-analysis", log=ctx.log)
        if outcome.failed:
            raise RuntimeError(f"ablation runs failed: {outcome.failed}; see their error.json in {store.runs_dir}")
        rows = []
        for r in runs:
            final = store.run(r.run_id).final() or {}
            level = r.sweep_point["method.freeze"]
            share = next((s["share"] for s in shares if s["kind"] == "freeze_level" and s["name"] == level
                          and s["preset"] == cfg.presets[0]), None)
            det = (final.get("metric_details") or {}).get("repeat0", {}).get(metric, {})
            rows.append({"freeze": level, "metric": metric, "value": final["metrics"][metric], "n": det.get("n"),
                         "data_floor": det.get("floor"), "trainable_share": share, "run_id": r.run_id,
                         "total_kimg": r.loop_config.get("total_kimg"), "paper_cifar10_fid": PAPER_TABLE2.get(level),
                         "untrained": bool(final.get("untrained_feature_weights"))})
        t2 = ctx.write_csv("freezing_ablation.csv", rows)

        fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
        ax = axes[0]
        ax.bar([r["freeze"] for r in rows], [r["value"] for r in rows], color="tab:blue", label=f"ours ({metric})")
        if rows and rows[0]["data_floor"] is not None:
            ax.axhline(rows[0]["data_floor"], color="k", ls="-.", lw=0.8, label="data floor")
        ax2 = ax.twinx()
        ax2.plot([r["freeze"] for r in rows], [r["paper_cifar10_fid"] for r in rows], "o--", color="tab:red",
                 label="paper 000 Table 2 (CIFAR-10 FID)")
        ax2.set_ylabel("paper FID", color="tab:red")
        ax.set(title="Freezing ablation", ylabel=metric, xlabel="frozen roles")
        ax.legend(fontsize=7, loc="upper left")
        ax = axes[1]
        for p in cfg.presets:
            sr = [s for s in shares if s["preset"] == p and s["kind"] == "role"]
            ax.barh([f"{p[:22]}:{s['name']}" for s in sr], [100 * s["share"] for s in sr])
        ax.set(xlabel="share of parameters (%)", title="Parameter shares per role")
        ax.tick_params(axis="y", labelsize=6)
        fig.tight_layout()
        f1 = ctx.save_figure(fig, "freezing.png")

        by = {r["freeze"]: r["value"] for r in rows}
        claims = []
        if "none" in by and "conv" in by:
            claims.append({"claim": "GDD-I (conv frozen) at least as good as GDD at the same budget",
                           "holds": by["conv"] <= by["none"],
                           "evidence": f"{metric}: conv {by['conv']:.3g} vs none {by['none']:.3g}"})
        if len(by) == 4:
            worst = max(by, key=by.get)
            claims.append({"claim": "freezing conv + QKV + skip is the worst row", "holds": worst == "conv_qkv_skip",
                           "evidence": ", ".join(f"{k} {v:.3g}" for k, v in by.items())})
        conv_share = next((s["share"] for s in shares if s["kind"] == "role" and s["name"] == "conv"), None)
        summary = (f"Ablation {suite.name} at {rows[0]['total_kimg']} kimg per run, {metric}: "
                   + ", ".join(f"{r['freeze']} {r['value']:.3g}" for r in rows))
        if rows[0]["data_floor"] is not None:
            summary += f" (data floor {rows[0]['data_floor']:.3g})"
        if conv_share is not None:
            summary += f". Conv share of {cfg.presets[0]}: {100 * conv_share:.1f}%"
        summary += ". "
        summary += " ".join(f"{c['claim']}: {'holds' if c['holds'] else 'does not hold'} ({c['evidence']})." for c in claims)
        untrained = any(r["untrained"] for r in rows)
        return AnalysisResult(summary, claims, [f1], [t1, t2], {"ablation": rows}, untrained)
