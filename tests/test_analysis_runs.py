"""End-to-end mechanics of the built-in analyses on a random-weights digits teacher (tiny
budgets: this checks wiring, files and records, not the papers' claims)."""
import json

import pytest
import torch

from onestep.benchmarks.analyses import execute_analysis

TINY_LOOP = {"total_kimg": 0.032, "batch_size": 16, "checkpoint_kimg": 0.032, "log_kimg": 0.032}


@pytest.fixture(scope="module")
def random_teacher(tmp_path_factory):
    from onestep.methods.checkpoints import save_network
    from onestep.methods.zoo import build_network

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("teacher") / "teacher"
    save_network(path, build_network("digits-8x8-cond"))
    return str(path)


def _final(run):
    final = json.loads((run.path / "final.json").read_text())
    assert final["kind"] == "analysis" and final["summary"] and final["claims"]
    for f in final["figures"] + final["tables"]:
        assert (run.path / f).stat().st_size > 0
    return final


def test_activations_run(random_teacher, tmp_path):
    state, run = execute_analysis("activations", "smoke", {"teacher": random_teacher, "num_steps": 8, "n_images": 2},
                                  store=tmp_path, device="cpu", log=lambda s: None)
    final = _final(run)
    assert final["figures"] == ["activations.png"]
    rows = (run.path / "activations.csv").read_text().splitlines()
    n_blocks = len(final["data"]["enc"]["blocks"]) + len(final["data"]["dec"]["blocks"])
    assert len(rows) == 1 + 8 * n_blocks


def test_relfid_and_frequency_runs(random_teacher, tmp_path, digits_feature_net):
    common = {"teacher": random_teacher}
    state, run = execute_analysis("relfid", "smoke", {**common, "steps": [2], "sigmas": [5.0], "n_samples": 64,
                                                      "batch_size": 64, "loop_overrides": TINY_LOOP},
                                  store=tmp_path, device="cpu", log=lambda s: None)
    final = _final(run)
    steps = final["data"]["steps"]
    assert [r["teacher_steps"] for r in steps] == [1, 2] and steps[0]["rel"] == 0.0
    assert sorted(p.name for p in (run.path / "checkpoints").iterdir()) == ["sigma5", "steps2", "student"]
    state, run = execute_analysis("frequency", "smoke", {**common, "num_steps": 4, "n_images": 4,
                                                         "student_loop_overrides": TINY_LOOP},
                                  store=tmp_path, device="cpu", log=lambda s: None)
    final = _final(run)
    assert len(final["data"]["centroids"]) == 3  # 4 steps -> 3 consecutive differences
