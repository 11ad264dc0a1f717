"""SFD / SFD-v (paper 004): the pure functions, the trajectory-returning solvers, the
step-conditioned networks, the sampler and the plugin's update structure."""
import math
import random

import pytest
import torch

from onestep.benchmarks.training import LoopContext, instantiate_method
from onestep.methods.losses import (afs_direction, dynamic_thresholding, sfd_schedule, sfd_second_stage_loss,
                                    sfd_segment_loss, sfd_student_step, sfd_teacher_levels, sfd_teacher_trajectory,
                                    sfd_total, sfd_v_num_steps)
from onestep.methods.plugin import DataSpec, Batch
from onestep.methods.solvers import (GaussianDenoiser, SFDGenerator, exact_ode_solution, load_generator, save_generator,
                                     solve)
from onestep.methods.zoo import DDPMPP, NCSNPP, EDMPrecond, network_config, step_conditioned_from, step_conditioned_network


def test_afs_step_equals_its_formula():
    x = torch.randn(3, 1, 4, 4, dtype=torch.float64) * 80
    t0, t1 = 80.0, 10.9
    got = sfd_student_step(x, t0, t1)  # no denoiser: the analytical first step
    assert torch.allclose(got, x + (t1 - t0) * x / math.sqrt(1 + t0 ** 2), rtol=0, atol=1e-12)
    assert torch.allclose(afs_direction(x, torch.tensor(t0, dtype=torch.float64)), x / math.sqrt(1 + 6400), atol=1e-15)
    den = torch.randn_like(x)
    assert torch.allclose(sfd_student_step(x, t0, t1, den), x + (t1 - t0) * (x - den) / t0, atol=1e-12)


def test_schedule_and_teacher_levels():
    s = sfd_schedule(4)
    assert s.shape == (4,) and s[0] == 80.0 and abs(float(s[-1]) - 0.006) < 1e-12  # no trailing 0
    i = torch.arange(4, dtype=torch.float64)
    want = (80 ** (1 / 7) + i / 3 * (0.006 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    assert torch.allclose(s, want, rtol=1e-12)
    assert sfd_teacher_levels(4, 3) == (13, [4, 8, 12])
    assert sfd_teacher_levels(3, 2) == (7, [3, 6])
    # the student's levels are the teacher's levels k(M+1)
    assert torch.allclose(sfd_schedule(13)[[0, 4, 8, 12]], s, rtol=1e-12)


# Minimum error ratio per halving of the step: 2^order with slack. DPM-Solver++(3M) as SFD runs
# it (published -phi_3 D2, measured order 2; lower_order_final ends with first-order steps)
# measures ~3 at these resolutions.
@pytest.mark.parametrize("solver, order, ratio", [("euler", 1, 1.6), ("heun", 2, 3.2), ("dpm_solver_2", 2, 3.2),
                                                  ("dpm_solver_pp_3m", 2, 2.8)])
def test_one_pass_teacher_trajectory_matches_the_gaussian_ode_to_the_solver_order(solver, order, ratio):
    # Data N(0.2, 0.5^2): exact states along the ODE; the error at every read-out level must
    # shrink by ~2^order when the teacher's sub-steps per segment double (M+1 = 4 -> 8).
    m, sd = 0.2, 0.5
    teacher = GaussianDenoiser(mean=m, std=sd)
    eps = torch.randn(8, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    N = 4
    errors = []
    for M in (3, 7, 15):
        n_tea, tea_slice = sfd_teacher_levels(N, M)
        levels = sfd_schedule(n_tea)
        traj = sfd_teacher_trajectory(teacher, eps * 80, levels, tea_slice, solver)
        assert traj.shape == (N - 1, 8, 1, 4, 4)
        exact = torch.stack([exact_ode_solution(eps * 80, 80.0, t, m, sd) for t in sfd_schedule(N)[1:]])
        errors.append((traj - exact).abs().max().item())
    assert errors[0] < 0.5, errors  # states are O(10) at t_1
    for coarse, fine in zip(errors, errors[1:]):
        assert coarse / fine > ratio, (solver, order, errors)


def test_trajectory_is_one_pass_not_restarted_per_segment():
    # DPM-Solver++ keeps its multistep history across segments: the state at level 8 equals the
    # full pass's, and differs from restarting the solver at the level-4 state.
    teacher = GaussianDenoiser(mean=0.1, std=0.5)
    x = torch.randn(2, 1, 4, 4, dtype=torch.float64) * 80
    levels = sfd_schedule(13)
    traj = sfd_teacher_trajectory(teacher, x, levels, [4, 8, 12])
    full = solve("dpm_solver_pp_3m", teacher, x, levels, return_states=list(range(13))).x
    assert torch.equal(traj, full[[4, 8, 12]])
    assert torch.equal(full[12], solve("dpm_solver_pp_3m", teacher, x, levels).x)
    restart = solve("dpm_solver_pp_3m", teacher, traj[0], levels[4:9]).x
    assert (restart - traj[1]).abs().max() > 1e-6


def test_return_states_checks_indices():
    teacher = GaussianDenoiser()
    x = torch.randn(1, 1, 2, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="return_states"):
        solve("euler", teacher, x, sfd_schedule(3), return_states=[5])
    out = solve("heun", teacher, x, sfd_schedule(3), return_states=[0, 2])
    assert torch.equal(out.x[0], x) and out.nfe == 4


def test_dynamic_thresholding_by_hand():
    x0 = torch.zeros(2, 1, 10, 20)
    x0[0].view(-1)[:] = torch.linspace(-3, 3, 200)  # quantile 0.995 of |x0| > 1: clamp and rescale
    x0[1].view(-1)[:] = torch.linspace(-0.5, 0.5, 200)  # below 1: s = 1, unchanged
    s = torch.quantile(x0[0].abs().flatten(), 0.995)
    out = dynamic_thresholding(x0)
    assert torch.allclose(out[0], x0[0].clamp(-s, s) / s) and out[0].abs().max() <= 1 + 1e-6
    assert torch.equal(out[1], x0[1])
    assert torch.equal(dynamic_thresholding(x0.half()), x0.half())  # fp16: the official no-op
    # the DPM++ option thresholds every data prediction in the history
    teacher = GaussianDenoiser(mean=2.0, std=0.5)
    x = torch.randn(2, 1, 4, 4, dtype=torch.float64) * 80
    a = sfd_teacher_trajectory(teacher, x, sfd_schedule(7), [6], dynamic_threshold=True)
    b = sfd_teacher_trajectory(teacher, x, sfd_schedule(7), [6], dynamic_threshold=False)
    assert (a - b).abs().max() > 0.1


def test_losses():
    s, t = torch.randn(4, 3, 8, 8, requires_grad=True), torch.randn(4, 3, 8, 8)
    assert torch.equal(sfd_segment_loss(s, t), (s - t).abs())
    assert torch.allclose(sfd_total(sfd_segment_loss(s, t), 4), (s - t).abs().sum() / 4)
    assert torch.allclose(sfd_segment_loss(s, t, "l2"), (s - t) ** 2)
    const = lambda a, b: torch.full((a.shape[0],), 0.25)  # noqa: E731
    last = sfd_second_stage_loss(s, t, const, last_step=True)
    # the LPIPS scalar is added to every element: it enters sum / B with weight C*H*W
    assert torch.allclose(sfd_total(last, 4), (s - t).abs().sum() / 4 + 0.25 * 3 * 8 * 8)
    assert torch.equal(sfd_second_stage_loss(s, t, const, last_step=False), (s - t).abs())
    sfd_total(last, 4).backward()
    assert s.grad is not None


def test_sfd_v_draws_are_pythons_seeded_randint():
    random.seed(42)  # training_loop.py: random.seed(42) once, then random.randint(4, 7) per iteration
    assert sfd_v_num_steps(50) == [random.randint(4, 7) for _ in range(50)]
    assert set(sfd_v_num_steps(200)) == {4, 5, 6, 7}


def _randomized(net):
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.3)
    return net.eval()


@pytest.mark.parametrize("arch", ["ddpmpp", "ncsnpp", "adm"])
def test_step_conditioned_network(arch):
    torch.manual_seed(0)
    if arch == "adm":
        plain = EDMPrecond(8, 1, 10, model_type="DhariwalUNet", model_channels=16, channel_mult=[1, 2], num_blocks=1,
                           attn_resolutions=[4], dropout=0)
    else:
        plain = EDMPrecond(8, 1, 10, model_type="SongUNet", model_channels=16, channel_mult=[1, 2], num_blocks=1,
                           attn_resolutions=[4], dropout=0, **(DDPMPP if arch == "ddpmpp" else NCSNPP))
    plain = _randomized(plain)
    net = step_conditioned_from(plain).eval()
    extra = set(net.state_dict()) - set(plain.state_dict())
    assert set(plain.state_dict()) <= set(net.state_dict())
    assert {k for k in extra if k.startswith("model.map_step")} >= {"model.map_step_layer0.weight", "model.map_step_layer1.bias"}
    assert all(k.startswith("model.map_step") or ".affine_step." in k for k in extra)
    n_blocks = sum(1 for k in plain.state_dict() if k.endswith(".affine.weight"))
    assert sum(1 for k in extra if k.endswith(".affine_step.weight")) == n_blocks  # one in every UNetBlock
    if arch == "ncsnpp":
        assert "model.map_step.freqs" in extra
    x, y = torch.randn(3, 1, 8, 8), torch.nn.functional.one_hot(torch.arange(3), 10).float()
    with torch.no_grad():
        ref = plain(x, 1.3, y)
        assert torch.equal(net(x, 1.3, y), ref)  # no step condition: the parent's computation
        moved = net(x, 1.3, y, step_condition=5)
        assert (moved - ref).abs().max() > 1e-3 and (net(x, 1.3, y, step_condition=6) - moved).abs().max() > 1e-4
        for name, p in net.named_parameters():
            if ".affine_step." in name:
                p.zero_()  # zero step modulation: plain SFD's network output at any N
        for n in (4, 7):
            assert torch.allclose(net(x, 1.3, y, step_condition=n), ref, atol=1e-5)
    # the config round trip builds the same class
    again = step_conditioned_network(network_config(plain))
    assert type(again.model) is type(net.model) and set(again.state_dict()) == set(net.state_dict())


def test_sfd_generator_is_euler_with_afs_ending_at_t_min_and_round_trips(tmp_path):
    teacher = GaussianDenoiser(mean=0.1, std=0.5)
    G = SFDGenerator(teacher, 4)
    assert G.nfe == 2
    z = torch.randn(2, 1, 8, 8)
    t = sfd_schedule(4).float()
    x = z * 80
    for k in range(3):
        x = sfd_student_step(x, t[k], t[k + 1], None if k == 0 else teacher(x, t[k]))
    assert torch.allclose(G(z), x, atol=1e-5)
    net = _randomized(step_conditioned_from(EDMPrecond(8, 1, 0, model_type="SongUNet", model_channels=16,
                                                       channel_mult=[1], num_blocks=1, attn_resolutions=[], **DDPMPP)))
    Gv = SFDGenerator(net, 5, step_condition=True)
    path = save_generator(tmp_path / "g", Gv)
    back = load_generator(path)
    assert isinstance(back, SFDGenerator) and back.step_condition and back.num_steps == 5 and back.nfe == 3
    with torch.no_grad():
        assert torch.allclose(back(z), Gv(z), atol=1e-6)
        assert load_generator(path, steps=6).nfe == 4  # SFD-v: any N it was trained for


class _Counting(LoopContext):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.calls = []

    def optimizer_step(self, optimizer, params, clip=None):
        self.calls.append(clip)
        super().optimizer_step(optimizer, params, clip)


def _tiny_teacher():
    torch.manual_seed(0)
    return EDMPrecond(8, 1, 10, model_type="SongUNet", model_channels=16, channel_mult=[1], num_blocks=1,
                      attn_resolutions=[], dropout=0, **DDPMPP).eval().requires_grad_(False)


def test_plugin_one_update_per_trained_segment_and_lr_drop():
    teacher = _tiny_teacher()
    method, loop = instantiate_method("sfd", "smoke", {"method.num_steps": 5}, teacher=teacher,
                                      data_spec=DataSpec(8, 1, 10))
    ctx = _Counting(0, 4, torch.device("cpu"), "fp32", None, "sfd")
    ctx.total_nimg = 40
    ctx.begin_step(0, 0)
    logs = method.step(Batch(None, None), ctx)
    assert len(ctx.calls) == 3 and all(c.nan_to_num for c in ctx.calls)  # N-1 = 4 segments, AFS untrained
    assert logs["lr"] == pytest.approx(2e-4) and math.isfinite(logs["loss"])
    ctx.begin_step(5, 20)
    assert method.step(Batch(None, None), ctx)["lr"] == pytest.approx(2e-5)  # lr / 10 at half the run
    assert method.ema_modules() == {} and method.student.training
    G = method.build_generator({})
    assert isinstance(G, SFDGenerator) and G.nfe == 3 and G.sigma_min == 0.006
    # no AFS: every segment is trained
    method, _ = instantiate_method("sfd", "smoke", {"method.afs": False}, teacher=teacher, data_spec=DataSpec(8, 1, 10))
    ctx.calls.clear()
    method.step(Batch(None, None), ctx)
    assert len(ctx.calls) == 3


def test_sfd_v_plugin_draws_n_and_conditions_the_student():
    teacher = _tiny_teacher()
    method, _ = instantiate_method("sfd", "smoke-v", teacher=teacher, data_spec=DataSpec(8, 1, 10))
    ctx = _Counting(0, 2, torch.device("cpu"), "fp32", None, "sfd")
    ctx.total_nimg = 100
    draws = sfd_v_num_steps(3)
    for step in range(3):
        ctx.begin_step(step, 2 * step)
        ctx.calls.clear()
        logs = method.step(Batch(None, None), ctx)
        assert logs["num_steps"] == draws[step] and len(ctx.calls) == draws[step] - 2
    assert type(method.student.model).__name__ == "StepSongUNet"
    assert method.build_generator({}).step_condition


def test_teacher_solver_baselines():
    teacher = GaussianDenoiser(mean=0.1, std=0.5)
    method, loop = instantiate_method("teacher_solver", "heun-5", teacher=teacher, data_spec=DataSpec(8, 1, 0))
    G = method.build_generator({})
    assert G.nfe == 10 and G.sigma_min == 0.002 and not G.afs and loop.total_steps == 1
    z = torch.randn(2, 1, 8, 8)
    want = solve("heun", teacher, z * 80, sfd_schedule(6, 0.002).float()).x
    assert torch.allclose(G(z), want, atol=1e-5)


def test_teacher_solver_runs_through_the_loop_and_saves_its_generator(tmp_path):
    from onestep.benchmarks.training import train

    teacher = _tiny_teacher()
    method, loop = instantiate_method("teacher_solver", "smoke", teacher=teacher, data_spec=DataSpec(8, 1, 10))
    result = train(method, None, loop, tmp_path, resume=False, log=lambda s: None)
    assert result.step == 1 and isinstance(result.generator, SFDGenerator) and result.generator.nfe == 2
    saved = sorted(tmp_path.rglob("generator.json"))
    assert saved
    back = load_generator(saved[0])
    z = torch.randn(2, 1, 8, 8)
    y = torch.nn.functional.one_hot(torch.arange(2), 10).float()
    with torch.no_grad():
        assert torch.allclose(back(z, y), result.generator(z, y), atol=1e-6)
