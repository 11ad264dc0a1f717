"""SFD's smoke presets on the digits teacher (paper 004's claim in miniature).

At NFE 2 the distilled sampler's FD-digits (1000 samples vs the real digits) must be clearly
below the best the teacher reaches with any of its solvers at NFE 2 (Euler/DDIM, Heun,
DPM-Solver-2, DPM-Solver++(3M), t_min 0.002 or 0.006, with or without AFS); the second stage
at NFE 1 must be clearly below what the first-stage student does at NFE 1. Measured on the
digits-test teacher: teacher's best at NFE 2 = DPM-Solver++(3M), 4 levels, t_min 0.002, AFS:
12.73; SFD `smoke` NFE 2: 6.18; first stage at NFE 1: 30.92 -> second stage: 8.34. Verified by
hand (issue 14's report): training the student against teacher states read two levels early
(tea_slice i(M+1) - 2, the wrong levels) gives FD 23.15 at NFE 2, so the NFE-2 case fails.
"""
import pytest
import torch

from onestep.benchmarks.datasets import load_digits, to_model_range
from onestep.methods.solvers import SFDGenerator, save_generator

from test_gdd_smoke import embed, fd_digits, run_smoke

MARGIN = 0.6  # "clearly better": at least 40% below the reference (measured: 0.49 at NFE 2, 0.27 at NFE 1)


def teacher_candidates(teacher, nfe: int):
    """Every solver set-up of the teacher with exactly `nfe` network evaluations."""
    for t_min in (0.002, 0.006):
        for solver in ("euler", "heun", "dpm_solver_2", "dpm_solver_pp_3m"):
            for afs in (False, True):
                for levels in range(2, nfe + 3):
                    try:
                        G = SFDGenerator(teacher, levels, t_min, afs=afs, solver=solver)
                    except ValueError:
                        continue
                    if G.nfe == nfe:
                        yield f"{solver} levels={levels} t_min={t_min} afs={afs}", G


@pytest.fixture(scope="module")
def setup(digits_teacher, digits_feature_net):
    ds = load_digits(8, 1, "all")
    real = embed(digits_feature_net, to_model_range(torch.as_tensor(ds.images)))
    return ds, real


@pytest.fixture(scope="module")
def first_stage(setup, digits_teacher, tmp_path_factory):
    ds, _ = setup
    return run_smoke("sfd", "smoke", digits_teacher, ds, tmp_path_factory.mktemp("sfd"))


def test_sfd_nfe2_beats_the_teachers_best_solver_at_nfe2(setup, first_stage, digits_teacher, digits_feature_net):
    ds, real = setup
    scores = {name: fd_digits(G, digits_feature_net, real, 10) for name, G in teacher_candidates(digits_teacher, 2)}
    best = min(scores, key=scores.get)
    method, result, seconds = first_stage
    assert result.generator.nfe == 2 and result.step == 100
    fd = fd_digits(result.generator, digits_feature_net, real, 10)
    print(f"SFD NFE 2: FD-digits {fd:.2f} in {seconds:.0f}s; teacher's best at NFE 2: {best} {scores[best]:.2f}")
    assert fd < MARGIN * scores[best], (fd, best, scores[best])


def test_second_stage_nfe1(setup, first_stage, digits_teacher, digits_feature_net, tmp_path):
    ds, real = setup
    _, stage1, _ = first_stage
    path = save_generator(tmp_path / "stage1", stage1.generator)
    before = fd_digits(SFDGenerator(stage1.generator.denoiser, 3), digits_feature_net, real, 10)  # stage 1 at NFE 1
    method, result, seconds = run_smoke("sfd", "smoke-second-stage", digits_teacher, ds, tmp_path / "stage2",
                                        {"method.first_stage": str(path)})
    assert result.generator.nfe == 1
    fd = fd_digits(result.generator, digits_feature_net, real, 10)
    print(f"second stage NFE 1: FD-digits {before:.2f} -> {fd:.2f} in {seconds:.0f}s")
    assert fd < MARGIN * before, (before, fd)
