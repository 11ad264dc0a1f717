"""The loop's hooks and records: evaluation schedule, best snapshot, JSONL log, snapshots,
gradient clipping, precision selection."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from onestep.benchmarks.training import LoopContext, autocast_dtype, train

sys.path.insert(0, str(Path(__file__).parent))


def test_evaluations_best_snapshot_and_log(tmp_path):
    from test_training_resume import TOTAL_STEPS, tiny_method
    from onestep.methods.solvers import SolverGenerator, load_generator

    method, loop, data = tiny_method({"loop.eval_kimg": 0.048, "loop.best_metric": "score"})
    calls = []

    def evaluate(G, cur_nimg):
        assert isinstance(G, SolverGenerator) and not G.training
        assert G.denoiser is not method.net  # the EMA copy, not the live network
        calls.append(cur_nimg)
        return {"score": abs(cur_nimg - 96) / 16.0}  # best (0) at 96 images = step 6

    lines = []
    result = train(method, data, loop, tmp_path, evaluate=evaluate, log=lines.append)
    assert calls == [48, 96, 144, 192]  # every 3 steps of 16 images, the last one at the end
    assert result.best["kimg"] == 0.096 and result.best["score"] == 0
    assert json.loads((tmp_path / "best.json").read_text())["step"] == 6
    best_G = load_generator(tmp_path / "best" / "generator")
    assert isinstance(best_G, SolverGenerator) and best_G.num_steps == 18
    records = [json.loads(l) for l in (tmp_path / "log.jsonl").read_text().splitlines()]
    kinds = [r["kind"] for r in records]
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("eval") == 4 and kinds.count("tick") == 4
    tick = next(r for r in records if r["kind"] == "tick")
    assert tick["images_per_s"] > 0 and tick["loss"] > 0 and tick["step"] == 3
    assert any("img/s" in l and "loss" in l for l in lines)  # the progress line
    snaps = sorted(p.name for p in (tmp_path / "snapshots").iterdir())
    assert snaps == ["snapshot-0000000096.json", "snapshot-0000000096.safetensors"]  # snapshot_kimg 0.096 = step 6
    final = json.loads((tmp_path / "final.json").read_text())
    assert final["step"] == TOTAL_STEPS and final["best"]["step"] == 6 and len(final["evaluations"]) == 4
    with pytest.raises(KeyError, match="best_metric 'fid'"):
        m2, l2, d2 = tiny_method({"loop.eval_kimg": 0.048, "loop.best_metric": "fid"})
        train(m2, d2, l2, tmp_path / "other", evaluate=evaluate, log=lambda s: None)


def test_optimizer_step_clips_the_global_norm_and_zeroes():
    w = nn.Parameter(torch.zeros(4))
    opt = torch.optim.SGD([w], lr=1.0)
    ctx = LoopContext(seed=0, batch_size=4, device=torch.device("cpu"), grad_clip=0.5)
    w.grad = torch.tensor([6.0, 8.0, 0.0, 0.0])  # norm 10 -> scaled to norm 0.5
    ctx.optimizer_step(opt, [w])
    assert torch.allclose(w.detach(), torch.tensor([-0.3, -0.4, 0.0, 0.0]), atol=1e-6)
    assert w.grad is None and ctx.last_grad_norm == pytest.approx(10.0)
    no_clip = LoopContext(seed=0, batch_size=4, device=torch.device("cpu"))
    w.grad = torch.tensor([6.0, 8.0, 0.0, 0.0])
    no_clip.optimizer_step(opt, [w])
    assert torch.allclose(w.detach(), torch.tensor([-6.3, -8.4, 0.0, 0.0]), atol=1e-6)


def test_per_call_clip_rules_nan_to_num_value_and_norm():
    from onestep.methods.plugin import GradClip

    ctx = LoopContext(seed=0, batch_size=4, device=torch.device("cpu"), grad_clip=0.5)
    w = nn.Parameter(torch.zeros(4))
    opt = torch.optim.SGD([w], lr=1.0)
    # SiDA's fake score: nan_to_num (nan -> 0, inf -> 1e5), then element-wise value clip at 1.
    w.grad = torch.tensor([float("nan"), float("inf"), -3.0, 0.25])
    ctx.optimizer_step(opt, [w], clip=GradClip(nan_to_num=True, value=1.0))
    assert torch.equal(w.detach(), torch.tensor([0.0, -1.0, 1.0, -0.25]))  # the loop's norm 0.5 not applied
    # A generator step: nan_to_num only, no clipping at all.
    w.data.zero_()
    w.grad = torch.tensor([float("nan"), float("-inf"), 6.0, 8.0])
    ctx.optimizer_step(opt, [w], clip=GradClip(nan_to_num=True))
    assert torch.equal(w.detach(), torch.tensor([0.0, 1e5, -6.0, -8.0]))
    # DMD: norm 10 on a gradient of norm 20 halves it.
    w.data.zero_()
    w.grad = torch.tensor([12.0, 16.0, 0.0, 0.0])
    ctx.optimizer_step(opt, [w], clip=GradClip(norm=10.0))
    assert torch.allclose(w.detach(), torch.tensor([-6.0, -8.0, 0.0, 0.0])) and ctx.last_grad_norm == pytest.approx(20.0)
    with pytest.raises(ValueError, match="GradClip.value must be positive"):
        GradClip(value=0.0)


def test_precision_selection():
    cpu = torch.device("cpu")
    assert autocast_dtype("auto", cpu) is None and autocast_dtype("fp32", cpu) is None
    assert autocast_dtype("bf16", cpu) is torch.bfloat16
    ctx = LoopContext(seed=0, batch_size=2, device=cpu, precision="bf16")
    with ctx.autocast():
        y = nn.Linear(4, 4)(torch.randn(2, 4))
    assert y.dtype == torch.bfloat16
    with LoopContext(seed=0, batch_size=2, device=cpu).autocast():
        assert nn.Linear(4, 4)(torch.randn(2, 4)).dtype == torch.float32
