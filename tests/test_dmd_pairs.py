"""DMD's cached paired dataset (methods/teacher_pairs.py) and the plugin's use of it.

A narrow random-weight digits network with a 3-step Heun sampler keeps this fast; the
properties tested (per-seed inputs, batch-size independence, reuse, resume, job-array split,
precision) do not depend on the weights.
"""
import numpy as np
import pytest
import torch

from onestep.benchmarks.sampling import seeded_inputs
from onestep.benchmarks.training import LoopContext, instantiate_method
from onestep.methods.checkpoints import state_checksum
from onestep.methods.plugin import DataSpec
from onestep.methods.solvers import SolverGenerator
from onestep.methods.teacher_pairs import PairSpec, TeacherPairs
from onestep.methods.zoo import build_network


@pytest.fixture(scope="module")
def tiny_teacher():
    torch.manual_seed(0)
    return build_network("digits-8x8-cond", model_channels=16).eval().requires_grad_(False)


def _spec(teacher, **kw):
    args = dict(num_pairs=25, channels=1, resolution=8, label_dim=10, num_steps=3, chunk_size=10, dtype="float32")
    args.update(kw)
    return PairSpec(state_checksum(teacher), **args)


def test_pairs_are_the_teacher_heun_outputs_of_per_seed_inputs(tiny_teacher, tmp_path):
    spec = _spec(tiny_teacher)
    pairs = TeacherPairs(spec, tmp_path)
    assert pairs.build(tiny_teacher, batch_size=8, log=None)
    z, labels, y = pairs.batch([3, 24, 0])
    # independent path: `onestep generate`'s per-seed draws, then the teacher's Heun sampler
    z_ref, l_ref, _ = seeded_inputs([3, 24, 0], (1, 8, 8), 10)
    torch.testing.assert_close(z, z_ref)
    torch.testing.assert_close(labels, l_ref)
    with torch.no_grad():
        want = SolverGenerator(tiny_teacher, "heun", 3)(z_ref, l_ref).float()
    torch.testing.assert_close(y, want, rtol=0, atol=1e-5)
    assert pairs.outputs().shape == (25, 1, 8, 8) and isinstance(pairs.outputs(), np.memmap)


def test_batch_size_independent_and_reused(tiny_teacher, tmp_path, monkeypatch):
    spec = _spec(tiny_teacher)
    a, b = TeacherPairs(spec, tmp_path / "a"), TeacherPairs(spec, tmp_path / "b")
    a.build(tiny_teacher, batch_size=3, log=None)
    b.build(tiny_teacher, batch_size=25, log=None)
    np.testing.assert_allclose(np.asarray(a.outputs()), np.asarray(b.outputs()), rtol=0, atol=1e-5)

    def no_work(*args, **kwargs):
        raise AssertionError("a complete paired dataset must not be generated again")

    monkeypatch.setattr(TeacherPairs, "_generate", no_work)
    assert TeacherPairs(spec, tmp_path / "a").build(tiny_teacher, log=None)  # second build: no work


def test_interrupted_generation_resumes_with_the_same_result(tiny_teacher, tmp_path, monkeypatch):
    spec = _spec(tiny_teacher)
    whole = TeacherPairs(spec, tmp_path / "whole")
    whole.build(tiny_teacher, log=None)

    real_generate = TeacherPairs._generate
    calls = []

    def crash_after_first(self, sampler, indices, device, batch_size):
        if calls:
            raise KeyboardInterrupt("simulated preemption")
        calls.append(indices)
        return real_generate(self, sampler, indices, device, batch_size)

    monkeypatch.setattr(TeacherPairs, "_generate", crash_after_first)
    part = TeacherPairs(spec, tmp_path / "part")
    with pytest.raises(KeyboardInterrupt):
        part.build(tiny_teacher, log=None)
    assert part.missing_chunks() == [1, 2] and not part.is_complete()
    assert not list(part.dir.glob(".*.tmp"))  # no torn files left behind

    resumed = []

    def count(self, sampler, indices, device, batch_size):
        resumed.append(indices)
        return real_generate(self, sampler, indices, device, batch_size)

    monkeypatch.setattr(TeacherPairs, "_generate", count)
    assert part.build(tiny_teacher, log=None)
    assert resumed == [range(10, 20), range(20, 25)]  # only the missing chunks
    np.testing.assert_array_equal(np.asarray(part.outputs()), np.asarray(whole.outputs()))
    assert not part.missing_chunks() or part.is_complete()


def test_job_array_split_and_merge(tiny_teacher, tmp_path):
    spec = _spec(tiny_teacher)
    shared = TeacherPairs(spec, tmp_path / "shared")
    assert not shared.build(tiny_teacher, task_index=0, task_count=2, log=None)  # chunks 0, 2
    assert shared.missing_chunks() == [1]
    assert TeacherPairs(spec, tmp_path / "shared").build(tiny_teacher, task_index=1, task_count=2, log=None)
    whole = TeacherPairs(spec, tmp_path / "whole")
    whole.build(tiny_teacher, log=None)
    np.testing.assert_array_equal(np.asarray(shared.outputs()), np.asarray(whole.outputs()))
    with pytest.raises(ValueError, match="task_index"):
        TeacherPairs(_spec(tiny_teacher, num_pairs=5), tmp_path).build(tiny_teacher, task_index=2, task_count=2)


def test_key_covers_teacher_and_solver_and_float16_error(tiny_teacher, tmp_path):
    base = _spec(tiny_teacher)
    assert base.key() != _spec(tiny_teacher, num_steps=4).key()
    assert base.key() != PairSpec("0" * 64, 25, 1, 8, 10, num_steps=3, chunk_size=10, dtype="float32").key()
    assert base.key() != _spec(tiny_teacher, dtype="float16").key()
    exact, half = TeacherPairs(base, tmp_path), TeacherPairs(_spec(tiny_teacher, dtype="float16"), tmp_path)
    exact.build(tiny_teacher, log=None)
    half.build(tiny_teacher, log=None)
    y32, y16 = np.asarray(exact.outputs()), np.asarray(half.outputs()).astype(np.float32)
    err = float(np.abs(y32 - y16).max())
    assert err == pytest.approx(half.info()["max_abs_error_vs_float32"], abs=1e-6)
    assert err <= 2.0 ** -11 * max(1.0, float(np.abs(y32).max()))  # float16 rounding: half its spacing


def test_plugin_prepare_builds_once_and_trains_on_pairs(tiny_teacher, monkeypatch):
    over = {"method.pairs": 12, "method.pair_steps": 3, "method.pair_chunk": 6, "method.pair_batch": 6,
            "loop.batch_size": 4}
    spec = DataSpec(8, 1, 10)
    m, loop = instantiate_method("dmd", "smoke", over, teacher=tiny_teacher, data_spec=spec)
    ctx = LoopContext(0, 4, torch.device("cpu"), "fp32", None, "dmd")
    m.prepare(ctx)
    assert m.pairs.is_complete() and m.pairs.spec.num_steps == 3 and m.pairs.spec.teacher_sha256 == state_checksum(tiny_teacher)
    monkeypatch.setattr(TeacherPairs, "_generate", lambda *a, **k: (_ for _ in ()).throw(AssertionError("regenerated")))
    m2, _ = instantiate_method("dmd", "smoke", over, teacher=tiny_teacher, data_spec=spec)
    m2.prepare(ctx)  # a second run (or a resume) finds the cached dataset
    ctx.begin_step(0, 0)
    logs = m2.step(None, ctx)
    assert {"loss_dm", "loss_reg", "loss_fake"} <= set(logs) and all(np.isfinite(list(logs.values())))
